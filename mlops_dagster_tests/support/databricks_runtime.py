"""The emulator's cluster: runs one ``spark_python_task`` as the Databricks runtime does.

Takes its task (file, parameters, DBFS root, secrets), starts a local SparkSession, maps
``/dbfs/...`` parameters and files opened under ``/dbfs/`` onto the emulator's DBFS root, puts
``spark``, ``sc`` and ``dbutils`` into the script's globals and runs the script as ``__main__``.
Exit code 0 is SUCCESS; an exception's traceback goes to stderr and the run FAILS, as on a cluster.

``python databricks_runtime.py`` runs the task it reads from stdin. ``--serve`` is the emulator's
pool of clusters: it imports the libraries every task imports once, then forks a fresh process per
task it is sent (its own session, environment, working folder, output files and Spark), so a run
does not spend seconds importing what a cluster's image has ready. It reports each task's process
id and then its exit code, one JSON line each; it never forks with a second thread alive.
"""

from __future__ import annotations

import json
import os
import runpy
import selectors
import shutil
import sys
from pathlib import Path

# What every task imports (Dagster, Pipes, MLflow, pandas, Arrow, scikit-learn, PySpark, delta-rs,
# databricks-sdk): imported once by the pool, shared by each forked task. Nothing of the project,
# whose settings a task reads from its own environment.
PRELOADED = (
    "dagster",
    "dagster_pipes",
    "mlflow",
    "pandas",
    "pyarrow",
    "sklearn.pipeline",
    "pyspark.sql",
    "deltalake",
    "databricks.sdk",
)


class _Secrets:
    def __init__(self, secrets: dict[str, dict[str, str]]):
        self._secrets = secrets

    def get(self, scope: str, key: str) -> str:
        try:
            return self._secrets[scope][key]
        except KeyError:
            raise ValueError(f"Secret does not exist with scope: {scope} and key: {key}") from None


class _Fs:
    def __init__(self, to_local):
        self._local = to_local

    def ls(self, path: str) -> list[str]:
        return sorted(str(p) for p in Path(self._local(path)).iterdir())

    def put(self, path: str, contents: str, overwrite: bool = False) -> bool:
        target = Path(self._local(path))
        if target.exists() and not overwrite:
            raise FileExistsError(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(contents)
        return True

    def head(self, path: str, max_bytes: int = 65536) -> str:
        with open(self._local(path), "rb") as handle:
            return handle.read(max_bytes).decode(errors="replace")

    def cp(self, source: str, destination: str) -> bool:
        shutil.copy(self._local(source), self._local(destination))
        return True

    def rm(self, path: str, recurse: bool = False) -> bool:
        target = Path(self._local(path))
        shutil.rmtree(target) if recurse and target.is_dir() else target.unlink()
        return True


class DBUtils:
    """The part of ``dbutils`` scripts on a job cluster use: ``fs`` and ``secrets``."""

    def __init__(self, to_local, secrets):
        self.fs = _Fs(to_local)
        self.secrets = _Secrets(secrets)


def mount_dbfs(to_local) -> None:
    """The cluster's DBFS mount: ``open("/dbfs/x")`` opens the emulator's DBFS file ``x`` (what
    Dagster Pipes' DBFS context loader and message writer do on a cluster)."""
    import builtins
    import io

    real_open = builtins.open

    def open_mounted(file, *args, **kwargs):
        if isinstance(file, str) and file.startswith("/dbfs/"):
            file = to_local(file)
            if args[:1] and args[0][:1] in ("w", "a") or str(kwargs.get("mode", ""))[:1] in ("w", "a"):
                os.makedirs(os.path.dirname(file), exist_ok=True)
        return real_open(file, *args, **kwargs)

    builtins.open = io.open = open_mounted


def run_task(spec: dict) -> None:
    root = spec["dbfs_root"]

    def to_local(path: str) -> str:
        for prefix in ("dbfs:", "/dbfs"):
            if path.startswith(prefix):
                return os.path.join(root, path[len(prefix) :].lstrip("/"))
        return path

    mount_dbfs(to_local)

    from pyspark.sql import SparkSession

    from mlops_dagster.resources.spark_jvm import java_options

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # The emulated cluster's JVM starts like a local session's (class archive, quiet logging): what
    # is emulated is the workspace, not how long a JVM takes to start.
    builder = (
        SparkSession.builder.master("local[1]")
        .appName("databricks-emulator")
        .config("spark.driver.extraJavaOptions", java_options())
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        # What the Databricks runtime sets on every cluster's session (Pipes' DBFS writer reads them).
        .config("spark.databricks.clusterUsageTags.clusterId", spec["cluster_id"])
        .config("spark.databricks.clusterUsageTags.clusterLogDeliveryEnabled", "false")
        .config("spark.databricks.clusterUsageTags.clusterLogDestination", "")
    )
    for key, value in spec["spark_conf"].items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    script = spec["python_file"]
    sys.argv = [script, *(to_local(p) for p in spec["parameters"])]
    try:
        runpy.run_path(
            script,
            init_globals={
                "spark": spark,
                "sc": spark.sparkContext,
                "dbutils": DBUtils(to_local, spec["secrets"]),
            },
            run_name="__main__",
        )
    finally:
        spark.stop()


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None or isinstance(exc.code, int):
        return exc.code or 0
    print(exc.code, file=sys.stderr)
    return 1


def _run_forked(task: dict) -> int:
    """In the forked process (``run_pool.fork_process``): become the task's own process (session,
    folder, environment, stdin and output files, random state) and run it; its exit code."""
    from mlops_dagster.runtime.run_pool import fresh_process

    os.setsid()
    fresh_process(task["env"], task["workdir"])
    for fd, path, flags in (
        (0, os.devnull, os.O_RDONLY),
        (1, task["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        (2, task["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
    ):
        opened = os.open(path, flags, 0o644)
        os.dup2(opened, fd)
        os.close(opened)
    try:
        run_task(task["spec"])
    except SystemExit as exc:
        return _exit_code(exc)
    return 0


def serve() -> None:
    """The pool: one task per JSON line on stdin, ``{"id", "pid"}`` when forked and
    ``{"pid", "exit"}`` when it ends, on stdout. Stops when stdin closes (the emulator is gone)."""
    import importlib

    from mlops_dagster.runtime.run_pool import fork_process, reap

    for name in PRELOADED:
        importlib.import_module(name)
    selector = selectors.DefaultSelector()
    selector.register(0, selectors.EVENT_READ)
    pending, running = b"", set()

    def say(message: dict) -> None:
        os.write(1, (json.dumps(message) + "\n").encode())

    while True:
        if selector.select(timeout=0.05):
            chunk = os.read(0, 1 << 20)
            if not chunk:
                return
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                task = json.loads(line)
                pid = fork_process(lambda task=task: _run_forked(task))
                running.add(pid)
                say({"id": task["id"], "pid": pid})
        for pid, code in reap(running):
            say({"pid": pid, "exit": code})


def main() -> None:
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        run_task(json.loads(sys.stdin.read()))


if __name__ == "__main__":
    main()
