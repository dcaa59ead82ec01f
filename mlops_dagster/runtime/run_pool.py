"""The warm run pool: a process that imports what every run imports (Dagster, MLflow, skops,
scikit-learn, pandas, Arrow, PySpark, delta-rs, Evidently) once, then forks each run's process from
itself. A run launched from ``dagster dev`` then starts working in a fraction of a second instead of
paying a new interpreter and seconds of imports (``docs/spark-connect.md``, "Warm runs").

Nothing of the project is imported here: each forked run imports the code location from disk, as a
new process would, so an edit is in the next run. Each run gets the launcher's environment and
working folder, its own random state and temporary folder; it then runs as ``dagster api
execute_run`` does. The pool never forks with a second thread alive.

``WarmRunLauncher`` (``warm_launcher.py``) starts it as ``python -m mlops_dagster.runtime.run_pool
FD`` and talks over the socket ``FD``, one JSON line each way: ``{"ready": true}`` once imported;
``{"id", "args", "env", "cwd"}`` to fork a run, answered ``{"id", "pid", "started"}``. The pool ends
when the launcher's end of the socket closes; runs it forked go on to their end.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import sys
from collections.abc import Callable

# What runs of this project import, heaviest first; a name that is not installed is skipped.
PRELOADED = (
    "dagster",
    "dagster._cli.api",
    "dagster_pyspark",
    "mlflow",
    "mlflow.sklearn",
    "mlflow.pyfunc",
    "skops.io",
    "sklearn.pipeline",
    "sklearn.ensemble",
    "sklearn.linear_model",
    "sklearn.metrics",
    "pandas",
    "pyarrow.parquet",
    "pyspark.sql",
    "pyspark.sql.connect.session",
    "deltalake",
    "evidently",
    "databricks.sdk",
    # a run's Dagster instance (SQLite storages and their migrations) and MLflow's SQLite store
    "dagster._core.storage.sqlite_storage",
    "dagster._core.storage.runs",
    "dagster._core.storage.event_log",
    "dagster._core.storage.schedules",
    "dagster._daemon.controller",
    "alembic.command",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
)


def process_started(pid: int) -> str | None:
    """When process ``pid`` started, in the kernel's clock ticks since boot (Linux), so that a later
    check knows the same process from one that reuses its number; None when it is gone, a zombie,
    or the system has no ``/proc``."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def _preload() -> None:
    """Import ``PRELOADED``, then fill the caches that runs would each fill on first use."""
    import importlib
    import inspect

    for name in PRELOADED:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
    # ``inspect.getmodule`` maps every loaded module's file once per process, and pydantic asks it
    # for each settings class's field docstrings.
    inspect.getmodule(inspect.currentframe())
    # Saving a model makes MLflow map every installed distribution's files to its modules (seconds).
    from mlflow.utils import requirements_utils

    getattr(requirements_utils, "_init_packages_to_modules_map", lambda: None)()
    # The first figure a process draws loads matplotlib's fonts and text layout (the evaluation plots).
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, 1], label="warm")
    ax.set_title("warm")
    ax.legend()
    fig.tight_layout()
    fig.savefig(io.BytesIO(), format="png", dpi=80)
    plt.close(fig)


def fork_process(child: Callable[[], int]) -> int:
    """Fork a process that runs ``child`` and exits with the code it returns, after what a normal
    exit runs (atexit functions: Spark's gateway, MLflow's runs; flushed output); in this process,
    its id. Only call it with no second thread alive."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        import atexit
        import traceback

        try:
            code = child()
        except BaseException:
            traceback.print_exc()
        atexit._run_exitfuncs()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def reap(running: set[int]) -> list[tuple[int, int]]:
    """The processes of ``running`` that ended, with their exit codes (negative: the signal), taken
    out of it, so that none lingers as a zombie."""
    ended = []
    while running:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            break
        running.discard(pid)
        ended.append((pid, os.waitstatus_to_exitcode(status)))
    return ended


def fresh_process(env: dict[str, str], cwd: str) -> None:
    """In a forked process: the environment and working folder it was asked for, its own random
    state, and the temporary folder of that environment (not the one the pool's imports read)."""
    import random
    import tempfile

    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    random.seed()
    tempfile.tempdir = None


def _run(request: dict, control: socket.socket) -> int:
    """In the forked process: become the run's own process and execute the run; its exit code."""
    from .dagster_internals import execute_run

    control.close()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    fresh_process(request["env"], request["cwd"])
    return execute_run(request["args"])


def serve(control: socket.socket) -> None:
    """The pool's loop (see the module's doc)."""
    _preload()

    def say(message: dict) -> None:
        control.sendall((json.dumps(message) + "\n").encode())

    say({"ready": True})
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    pending, running = b"", set()
    while True:
        if selector.select(timeout=0.5):
            chunk = control.recv(1 << 20)
            if not chunk:
                return
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                request = json.loads(line)
                pid = fork_process(lambda request=request: _run(request, control))
                running.add(pid)
                # None only when the run's process already ended: then it is reported gone at once
                say({"id": request["id"], "pid": pid, "started": process_started(pid)})
        reap(running)


def main() -> None:
    control = socket.socket(fileno=int(sys.argv[1]))
    try:
        serve(control)
    except (KeyboardInterrupt, BrokenPipeError, ConnectionResetError):
        pass  # dagster dev's Ctrl-C, or the launcher gone: the runs go on


if __name__ == "__main__":
    main()
