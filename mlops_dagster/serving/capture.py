"""Inference tables: every request an endpoint answers is appended to a Delta table, in batches,
off the response path, journaled on disk until committed and flushed on shutdown, so no record is
lost, even when the gateway is killed."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CAPTURE_COLUMNS = [
    "request_id",
    "request_time",
    "endpoint",
    "served_model_name",
    "model_name",
    "model_version",
    "status_code",
    "latency_ms",
    "request",
    "response",
    "error",
    "mirrored",
]


def answered(requests, since):
    """The rows of an inference table (a Spark frame) whose requests the endpoint answered: HTTP 200,
    not a mirror sent to a shadow model, at or after ``since``."""
    from pyspark.sql import functions as F

    return requests.where(
        (F.col("status_code") == 200) & ~F.col("mirrored") & (F.col("request_time") >= F.lit(since))
    )


class InferenceCapture:
    """Buffers records in memory and appends them to a table every ``flush_seconds`` or
    ``batch_size`` records, from one background thread. ``write(rows, once)`` receives a list of
    dicts and the batch's name, to pass on as the appends' ``once`` (one commit per batch).

    With a ``journal`` folder, each record is also appended (one JSON line) to the batch's file
    there before the request is answered, and the file is deleted once the batch is committed: a
    gateway killed with SIGKILL loses nothing, since the next one to start commits the files it
    finds, and a batch that was committed just before the kill is not committed twice (``once``)."""

    def __init__(
        self,
        write: Callable[[list[dict[str, Any]], str], None],
        batch_size: int = 2000,
        flush_seconds: float = 1.0,
        journal: Path | None = None,
    ):
        self._write, self._batch_size, self._flush_seconds = write, batch_size, flush_seconds
        self._journal = journal
        self._buffer: list[dict[str, Any]] = []
        self._file = None  # the open journal file of the batch being buffered
        self._name = ""
        self._pending: list[tuple[str, list[dict[str, Any]]]] = []  # batches to commit, oldest first
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inference-capture", daemon=True)
        self.written = 0
        self.failures = 0
        self.recovered = 0
        if journal is not None:
            journal.mkdir(parents=True, exist_ok=True)
            self._pending = [(f.stem, _read_journal(f)) for f in sorted(journal.glob("*.jsonl"))]
            self.recovered = sum(len(rows) for _, rows in self._pending)
        self._new_batch()

    def start(self) -> InferenceCapture:
        self._thread.start()
        return self

    def record(self, row: dict[str, Any]) -> None:
        with self._lock:
            self._buffer.append(row)
            if self._file is not None:
                self._file.write(json.dumps(row, default=str) + "\n")
                self._file.flush()  # in the OS's hands: a killed process loses nothing
            full = len(self._buffer) >= self._batch_size
        if full:
            self._wake.set()

    def pending(self) -> int:
        with self._lock:
            return len(self._buffer) + sum(len(rows) for _, rows in self._pending)

    def _new_batch(self) -> None:
        """Start the next batch (under the lock, or before the thread starts)."""
        self._name = f"{time.time_ns()}-{os.getpid()}"
        if self._journal is not None:
            self._file = (self._journal / f"{self._name}.jsonl").open("a", encoding="utf-8")

    def _drain(self) -> None:
        with self._lock:
            if self._buffer:
                if self._file is not None:
                    self._file.close()
                self._pending.append((self._name, self._buffer))
                self._buffer = []
                self._new_batch()
            batches = list(self._pending)
        for name, rows in batches:
            try:
                self._write(rows, f"mlops_dagster/capture/{name}")
            except Exception:  # keep the batch (and its journal file): retried on the next flush
                self.failures += 1
                log.exception("inference table write failed; %d records kept for retry", len(rows))
                return
            with self._lock:
                self._pending.remove((name, rows))
            self.written += len(rows)
            if self._journal is not None:
                (self._journal / f"{name}.jsonl").unlink(missing_ok=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._flush_seconds)
            self._wake.clear()
            self._drain()

    def close(self, timeout: float = 30.0) -> None:
        """Stop the thread and write everything still buffered."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        deadline = time.monotonic() + timeout
        while self.pending() and time.monotonic() < deadline:
            self._drain()
        with self._lock:
            if self._file is not None:
                self._file.close()
                if not self._buffer:
                    (self._journal / f"{self._name}.jsonl").unlink(missing_ok=True)
                self._file = None


def _read_journal(path: Path) -> list[dict[str, Any]]:
    """The records of a journal file a killed gateway left; a last line cut short by the kill (the
    request it recorded was never answered) is left out."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            log.warning("%s: a record cut short by the gateway's end is left out", path.name)
    return rows
