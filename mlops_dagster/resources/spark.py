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
from pathlib import Path
from typing import TYPE_CHECKING

from dagster import ConfigurableResource

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_shipped: set[int] = set()  # SparkContexts that already have this package
LOG_CONFIG = Path(__file__).resolve().parents[1] / "conf" / "log4j2.properties"


class SparkResource(ConfigurableResource):
    """The SparkSession assets compute with."""

    spark_config: dict[str, str] = {}

    def session(self) -> "SparkSession":
        from dagster_pyspark.resources import spark_session_from_config

        from .databricks import on_databricks_cluster

        # Python workers must run this interpreter (the project's venv), not whatever is on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        config = dict(self.spark_config)
        if config.get("spark.master", "").startswith("local"):
            # One machine: bind to loopback (Spark otherwise warns that the host name resolves to it),
            # and log with this project's levels instead of Spark's shell defaults.
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            config.setdefault("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={LOG_CONFIG.as_uri()}")
        spark = spark_session_from_config(config)
        if on_databricks_cluster():
            _ship_package(spark)
        return spark


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
