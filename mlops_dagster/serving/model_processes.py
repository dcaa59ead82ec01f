"""Model worker processes for the serving gateway: scikit-learn's per-call work (input validation,
the column transformer, the estimator) holds Python's lock, so one process scores one batch at a
time whatever its threads. With ``serving.model_processes`` N > 1 the gateway hands batches to N
spawned processes instead, each holding a copy of every model the gateway loaded, so N batches are
scored at once on N cores while the gateway's own process parses, routes and captures.

A worker that dies (killed, out of memory) fails the batch it held with a clear error and is started
again with every model, so the next batch finds it."""

from __future__ import annotations

import multiprocessing
import pickle
import queue
import threading
from typing import Any


def _serve(conn) -> None:
    """A worker: load models, score batches, until told to stop (or its gateway is gone)."""
    from .batching import score_rows

    models: dict[str, tuple[Any, str, list[str]]] = {}
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        kind = message[0]
        if kind == "stop":
            return
        if kind == "load":
            models[message[1]] = pickle.loads(message[2])
            conn.send(("ok", None))
            continue
        try:
            conn.send(("ok", score_rows(*models[message[1]], message[2])))
        except Exception as exc:  # the model failed on this batch: its callers hear why
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class _Worker:
    def __init__(self, context):
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child,), name="mlops-model", daemon=True)
        self.process.start()
        child.close()

    def call(self, message: tuple) -> Any:
        try:
            self.conn.send(message)
            status, value = self.conn.recv()
        except (EOFError, OSError, BrokenPipeError) as exc:
            raise WorkerDied(
                f"a model worker process ended ({type(exc).__name__}): it is started again"
            ) from None
        if status == "error":
            raise RuntimeError(value)
        return value

    def stop(self) -> None:
        try:
            self.conn.send(("stop",))
        except (OSError, BrokenPipeError):
            pass
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()


class WorkerDied(RuntimeError):
    """A model worker process ended while scoring."""


class ModelProcesses:
    """``count`` worker processes; ``predict`` blocks (call it from a thread) until an idle worker
    scored the batch."""

    def __init__(self, count: int):
        self._context = multiprocessing.get_context("spawn")
        self._models: dict[str, bytes] = {}  # every model loaded, for workers started later
        self._lock = threading.Lock()
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self.count = count
        for _ in range(count):
            self._idle.put(_Worker(self._context))

    def add(self, key: str, model: Any, method: str, names: list[str]) -> None:
        """Give every worker ``model`` under ``key`` (once: a key already given is kept)."""
        with self._lock:
            if key in self._models:
                return
            self._models[key] = pickle.dumps((model, method, names))
            workers = [self._idle.get() for _ in range(self.count)]  # each between two batches
            try:
                for worker in workers:
                    worker.call(("load", key, self._models[key]))
            finally:
                for worker in workers:
                    self._idle.put(worker)

    def predict(self, key: str, rows: list[list[Any]]) -> list:
        worker = self._idle.get()
        try:
            return worker.call(("predict", key, rows))
        except WorkerDied:
            worker = self._restarted()
            raise
        finally:
            self._idle.put(worker)

    def _restarted(self) -> _Worker:
        worker = _Worker(self._context)
        for key, payload in list(self._models.items()):
            worker.call(("load", key, payload))
        return worker

    def pids(self) -> list[int]:
        """The workers' process ids (idle ones; all of them between requests)."""
        return [w.process.pid for w in list(self._idle.queue)]

    def close(self) -> None:
        while not self._idle.empty():
            self._idle.get().stop()
