"""``WarmRunLauncher``: Dagster's default run launcher, with runs forked from the warm run pool
(``run_pool.py``) once the pool is ready. ``dagster.yaml`` (what ``make dev`` uses) names it.

The first run a ``dagster dev`` launches goes the default way (a process of the code server); once
it has ended the pool starts, and later runs fork from it, so they do not pay a new interpreter
and its imports.
``MLOPS_WARM_RUNS=0`` (``make dev ARGS=--cold``) keeps every run on the default way. A run forked
from the pool is tagged with its process (``mlops/run_pid``): terminating it sends that process
SIGINT, as Ctrl-C would, and run monitoring fails it when the process is gone.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from dagster import DefaultRunLauncher

PID_TAG = "mlops/run_pid"
STARTED_TAG = "mlops/run_process_started"


class PoolGone(RuntimeError):
    """The pool process ended or its socket failed."""


class _Pool:
    """The launcher's end of one ``run_pool`` process."""

    def __init__(self):
        self.control, theirs = socket.socketpair()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlops_dagster.runtime.run_pool", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self.ready = threading.Event()
        self._lines = self.control.makefile("r")
        self._ids = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._wait_ready, name="mlops-run-pool", daemon=True).start()

    def _wait_ready(self) -> None:
        try:
            if json.loads(self._lines.readline() or "{}").get("ready"):
                self.ready.set()
        except (OSError, ValueError):
            pass

    def fork(self, args: str) -> tuple[int, str | None]:
        """Fork a process that executes the run ``args`` describe; its id and start time."""
        with self._lock:
            self._ids += 1
            request = {"id": self._ids, "args": args, "env": dict(os.environ), "cwd": os.getcwd()}
            try:
                self.control.sendall((json.dumps(request) + "\n").encode())
                answer = json.loads(self._lines.readline() or "{}")
            except (OSError, ValueError) as exc:
                raise PoolGone(str(exc)) from exc
            if answer.get("id") != self._ids:
                raise PoolGone(f"the run pool answered {answer!r}")
            return answer["pid"], answer["started"]

    def close(self) -> None:
        self.control.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()


class WarmRunLauncher(DefaultRunLauncher):
    """Runs fork from a warm process once it is ready; before that, and when it fails, the default
    launcher runs them (see the module's doc)."""

    def __init__(self, inst_data=None):
        super().__init__(inst_data=inst_data)
        self._pool: _Pool | None = None
        self._starting = False  # a thread waits to start the pool
        self._pool_lock = threading.Lock()

    def _ready_pool(self) -> _Pool | None:
        """The pool if it is ready to fork, else None (and it is started once no run is going)."""
        if os.environ.get("MLOPS_WARM_RUNS", "1") == "0":
            return None
        with self._pool_lock:
            if self._live_pool() is None and not self._starting:
                self._starting = True
                threading.Thread(target=self._start_when_idle, name="mlops-run-pool", daemon=True).start()
            return self._pool if self._pool is not None and self._pool.ready.is_set() else None

    def _start_when_idle(self) -> None:
        """Start the pool once no run this launcher started is going: its imports take a core for
        seconds, which a run should have (a cold run is then no slower than without the pool)."""
        time.sleep(1)  # the run being launched the default way is in ``_run_ids`` by then
        while any(self._going(run_id) for run_id in list(self._run_ids)):
            time.sleep(1)
        with self._pool_lock:
            if self._pool is None:
                self._pool = _Pool()
            self._starting = False

    def _live_pool(self) -> _Pool | None:
        """The pool unless there is none or it died (then forgotten, so that another starts)."""
        if self._pool is not None and self._pool.process.poll() is not None:
            self._pool = None
        return self._pool

    def _going(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        return run is not None and not run.is_finished

    def warm_up(self, timeout: float) -> bool:
        """Start the pool now, if need be, and wait up to ``timeout`` seconds for it to be ready."""
        with self._pool_lock:
            if self._live_pool() is None:
                self._pool = _Pool()
            pool = self._pool
        return pool.ready.wait(timeout)

    def launch_run(self, context) -> None:
        from .dagster_internals import execute_run_args

        run = context.dagster_run
        pool = self._ready_pool() if run.job_code_origin is not None else None
        if pool is None:
            return super().launch_run(context)
        try:
            pid, started = pool.fork(execute_run_args(run, self._instance))
        except PoolGone as exc:
            self._instance.report_engine_event(
                f"The warm run pool failed ({exc}); launching the run the default way.", run
            )
            return super().launch_run(context)
        self._instance.add_run_tags(run.run_id, {PID_TAG: str(pid), STARTED_TAG: started or ""})
        self._instance.report_engine_event(
            f"Forked the run's process (pid {pid}) from the warm run pool.", run
        )
        self._run_ids.add(run.run_id)

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or PID_TAG not in run.tags:
            return super().terminate(run_id)
        if run.is_finished or not self._alive(run):
            return False
        self._instance.report_run_canceling(run)
        os.kill(int(run.tags[PID_TAG]), signal.SIGINT)
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run):
        from .dagster_internals import run_worker_health

        if PID_TAG not in run.tags:  # launched through the code server, which watches it itself
            return run_worker_health("RUNNING", "launched by the code server: not checked")
        if self._alive(run):
            return run_worker_health("RUNNING")
        return run_worker_health("FAILED", f"the run's process (pid {run.tags[PID_TAG]}) is gone")

    @staticmethod
    def _alive(run) -> bool:
        from .run_pool import process_started

        started = run.tags.get(STARTED_TAG)
        return bool(started) and process_started(int(run.tags[PID_TAG])) == started

    def dispose(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None
