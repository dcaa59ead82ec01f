"""Spark for assets: a SparkSession built by dagster-pyspark from the target's ``spark`` config.

On ``local`` the session runs in local mode. Under the Databricks step launcher the same resource
runs on the job cluster, where ``getOrCreate`` returns the cluster's session. dagster-pyspark
(and pyspark) are imported on first use, not when the code location loads.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import tempfile
import threading
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from dagster import ConfigurableResource

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_shipped: set[int] = set()  # SparkContexts that already have this package


_warming = False  # a warm-up was started in this process
_sessions: dict[str, SparkSession] = {}  # this process's Spark Connect sessions, by server
_connecting = threading.Lock()


def spark_remote(spark_config: dict[str, str]) -> str | None:
    """The Spark Connect server of a target (``spark.remote`` in the ``spark`` settings, or
    pyspark's ``SPARK_REMOTE``, where a URL holding a token belongs), if any."""
    return spark_config.get("spark.remote") or os.environ.get("SPARK_REMOTE") or None


def shown_url(url: str) -> str:
    """A Spark Connect URL without its parameters (``;token=...`` is a secret), safe to show."""
    return url.split(";", 1)[0] + ("; parameters not shown" if ";" in url else "")


def _without_secrets(text: str) -> str:
    """``text`` with any ``token=...`` of a Spark Connect URL masked."""
    import re

    return re.sub(r"(token=)[^;\s]+", r"\1***", text)


class SparkResource(ConfigurableResource):
    """The SparkSession assets compute with."""

    spark_config: dict[str, str] = {}

    @property
    def remote(self) -> str | None:
        """The Spark Connect server steps use instead of a session of their own, if any."""
        return spark_remote(self.spark_config)

    @property
    def _local(self) -> bool:
        """Local mode (a JVM of this process on this machine), not a cluster or a Connect server."""
        return not self.remote and self.spark_config.get("spark.master", "").startswith("local")

    def setup_for_execution(self, context) -> None:
        # Local mode: start the JVM and Spark's Python workers while the run sets up its other
        # resources (MLflow's store) and its first steps work; a step that needs the session waits
        # for this start instead of paying for its own. (On a cluster the session already runs.)
        # Once per process: resources are set up again at a run's end (its hooks), and a warm-up job
        # started then would still be running at exit (Spark logs an ERROR for its task).
        global _warming
        if self._local and not _warming:
            _warming = True
            threading.Thread(target=self._warm_up, name="spark-start", daemon=True).start()

    def _warm_up(self) -> None:
        self.session().range(1).mapInArrow(_batch_sizes, "rows long").collect()

    def import_in_python_workers(self, modules: tuple[str, ...]) -> threading.Thread | None:
        """Local mode: import ``modules`` in Spark's idle Python workers, in the background, so that a
        later job whose tasks need them finds them imported (a worker that first loads an MLflow
        model spends 3-4 s importing MLflow, scikit-learn and skops). A step that works in one Python
        thread for a while calls this to use the other core meanwhile; returns at once.

        Spark hands idle workers out first in first out: the job runs several tasks per task slot,
        so that it passes through every idle worker, not only the first ones. Returns the thread that
        runs the job. On a cluster it does nothing and returns None (each step has its own cluster,
        and its executors are other machines)."""
        if not self._local:
            return None
        session = self.session()
        tasks = 4 * session.sparkContext.defaultParallelism

        def run() -> None:
            try:
                session.sparkContext.setJobDescription(f"importing {', '.join(modules)} in Python workers")
                session.range(0, tasks, 1, tasks).mapInArrow(
                    partial(_import_modules, modules), "rows long"
                ).collect()
            except Exception as exc:  # noqa: BLE001 - only a head start: the job that needs the modules imports them
                logging.getLogger(__name__).debug("importing %s in Python workers failed: %s", modules, exc)

        thread = threading.Thread(target=run, name="spark-python-imports", daemon=True)
        thread.start()
        return thread

    def session(self) -> SparkSession:
        from dagster_pyspark.resources import spark_session_from_config

        from .databricks import on_databricks_cluster

        remote = self.remote
        if remote:
            return connect_session(remote)
        # Python workers must run this interpreter (the project's venv), not whatever is on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        config = dict(self.spark_config)
        if self._local:
            # One machine: bind to loopback (Spark otherwise warns that the host name resolves to it),
            # log with this project's levels, start from the class archive when there is one.
            from .spark_jvm import java_options

            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            config.setdefault("spark.driver.extraJavaOptions", java_options())
        spark = spark_session_from_config(config)
        if on_databricks_cluster():
            _ship_package(spark)
        return spark


def connect_session(url: str) -> SparkSession:
    """This process's Spark Connect session to ``url`` (one per server: ``getOrCreate`` would hand
    back a session to whichever server came first), with a clear error when nothing answers there."""
    from pyspark.errors import PySparkException
    from pyspark.sql import SparkSession

    with _connecting:
        if url in _sessions:
            return _sessions[url]
        try:
            _reachable(url)  # the client retries an unreachable server for minutes
            spark = SparkSession.builder.remote(url).create()
            spark.range(1).collect()  # Connect is lazy: the first call tells whether the server answers
        except (PySparkException, OSError) as exc:
            raise RuntimeError(
                f"no Spark Connect server answers at {shown_url(url)} (spark.remote): start one with "
                f"`mlops spark-connect start`, or remove spark.remote to start Spark in the run "
                f"({type(exc).__name__}: {_without_secrets(str(exc).splitlines()[0] if str(exc) else '')})"
            ) from None
        # Ended before the interpreter's own exit, while the server still answers: a client left
        # open releases its work on the server at exit, and retries for minutes if it is gone.
        atexit.register(spark.stop)
        _sessions[url] = spark
        return spark


def _reachable(url: str, timeout: float = 10) -> None:
    """Raise OSError unless something accepts connections at the host and port of ``url``
    (``sc://host:port/;params``; Spark Connect's default port when not given)."""
    import socket
    from urllib.parse import urlparse

    from .spark_connect import DEFAULT_PORT

    address = urlparse(url.split("/;", 1)[0])
    socket.create_connection((address.hostname or "localhost", address.port or DEFAULT_PORT), timeout).close()


def _import_modules(modules: tuple[str, ...], batches):
    """A Spark task that imports ``modules`` in its Python worker (and passes its batches' sizes on)."""
    import importlib

    for module in modules:
        importlib.import_module(module)
    yield from _batch_sizes(batches)


def _batch_sizes(batches):
    """A Spark task that only starts a Python worker (and says how many rows it saw)."""
    import pyarrow as pa

    for batch in batches:
        yield pa.RecordBatch.from_pydict({"rows": [batch.num_rows]})


def _ship_package(spark: SparkSession) -> None:
    """Send this package to the cluster's executors: Spark tasks run its Arrow functions (e.g. the
    landing checks), and the step launcher only puts the code on the driver."""
    context = spark.sparkContext
    if id(context) in _shipped:
        return
    package = Path(__file__).resolve().parents[1]
    # Kept for the life of the process (executors may fetch the archive whenever a task needs it),
    # then removed: an all-purpose cluster's driver runs many steps' processes.
    folder = tempfile.mkdtemp(prefix="mlops-dagster-pyfiles-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    archive = shutil.make_archive(
        str(Path(folder, package.name)), "zip", root_dir=package.parent, base_dir=package.name
    )
    context.addPyFile(archive)
    _shipped.add(id(context))
