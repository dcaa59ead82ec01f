"""Inference tables: every request an endpoint answers is appended to a Delta table, in batches,
off the response path, and flushed on shutdown so no record is lost."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
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
    ``batch_size`` records, from one background thread. ``write`` receives a list of dicts."""

    def __init__(
        self,
        write: Callable[[list[dict[str, Any]]], None],
        batch_size: int = 2000,
        flush_seconds: float = 1.0,
    ):
        self._write, self._batch_size, self._flush_seconds = write, batch_size, flush_seconds
        self._buffer: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inference-capture", daemon=True)
        self.written = 0
        self.failures = 0

    def start(self) -> InferenceCapture:
        self._thread.start()
        return self

    def record(self, row: dict[str, Any]) -> None:
        with self._lock:
            self._buffer.append(row)
            full = len(self._buffer) >= self._batch_size
        if full:
            self._wake.set()

    def pending(self) -> int:
        with self._lock:
            return len(self._buffer)

    def _drain(self) -> None:
        with self._lock:
            batch, self._buffer = self._buffer, []
        if not batch:
            return
        try:
            self._write(batch)
            self.written += len(batch)
        except Exception:  # keep the records: put them back in front and retry on the next flush
            self.failures += 1
            log.exception("inference table write failed; %d records kept for retry", len(batch))
            with self._lock:
                self._buffer[:0] = batch

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
