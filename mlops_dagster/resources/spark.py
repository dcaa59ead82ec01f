"""Spark for assets: a SparkSession built by dagster-pyspark from the target's ``spark`` config.

On ``local`` the session runs in local mode. Under the Databricks step launcher the same resource
runs on the job cluster, where ``getOrCreate`` returns the cluster's session. dagster-pyspark
(and pyspark) are imported on first use, not when the code location loads.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from dagster import ConfigurableResource

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_shipped: set[int] = set()  # SparkContexts that already have this package


_warming = False  # a warm-up was started in this process


class SparkResource(ConfigurableResource):
    """The SparkSession assets compute with."""

    spark_config: dict[str, str] = {}

    def setup_for_execution(self, context) -> None:
        # Local mode: start the JVM and Spark's Python workers while the run sets up its other
        # resources (MLflow's store) and its first steps work; a step that needs the session waits
        # for this start instead of paying for its own. (On a cluster the session already runs.)
        # Once per process: resources are set up again at a run's end (its hooks), and a warm-up job
        # started then would still be running at exit (Spark logs an ERROR for its task).
        global _warming
        if self.spark_config.get("spark.master", "").startswith("local") and not _warming:
            _warming = True
            threading.Thread(target=self._warm_up, name="spark-start", daemon=True).start()

    def _warm_up(self) -> None:
        self.session().range(1).mapInArrow(_batch_sizes, "rows long").collect()

    def session(self) -> "SparkSession":
        from dagster_pyspark.resources import spark_session_from_config

        from .databricks import on_databricks_cluster

        # Python workers must run this interpreter (the project's venv), not whatever is on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        config = dict(self.spark_config)
        if config.get("spark.master", "").startswith("local"):
            # One machine: bind to loopback (Spark otherwise warns that the host name resolves to it),
            # log with this project's levels, start from the class archive when there is one.
            from .spark_jvm import java_options

            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            config.setdefault("spark.driver.extraJavaOptions", java_options())
        spark = spark_session_from_config(config)
        if on_databricks_cluster():
            _ship_package(spark)
        return spark


def _batch_sizes(batches):
    """A Spark task that only starts a Python worker (and says how many rows it saw)."""
    import pyarrow as pa

    for batch in batches:
        yield pa.RecordBatch.from_pydict({"rows": [batch.num_rows]})


def _ship_package(spark: "SparkSession") -> None:
    """Send this package to the cluster's executors: Spark tasks run its Arrow functions (e.g. the
    landing checks), and the step launcher only puts the code on the driver."""
    context = spark.sparkContext
    if id(context) in _shipped:
        return
    package = Path(__file__).resolve().parents[1]
    # Kept for the life of the process: executors may fetch the archive whenever a task needs it.
    folder = tempfile.mkdtemp(prefix="mlops-dagster-pyfiles-")
    archive = shutil.make_archive(str(Path(folder, package.name)), "zip", root_dir=package.parent,
                                  base_dir=package.name)
    context.addPyFile(archive)
    _shipped.add(id(context))
