"""Spark for assets: a SparkSession built by dagster-pyspark from the target's ``spark`` config.

On ``local`` the session runs in local mode. Under the Databricks step launcher the same resource
runs on the job cluster, where ``getOrCreate`` returns the cluster's session. dagster-pyspark
(and pyspark) are imported on first use, not when the code location loads.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from dagster import ConfigurableResource

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class SparkResource(ConfigurableResource):
    """The SparkSession assets compute with."""

    spark_config: dict[str, str] = {}

    def session(self) -> "SparkSession":
        from dagster_pyspark.resources import spark_session_from_config

        # Python workers must run this interpreter (the project's venv), not whatever is on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        return spark_session_from_config(self.spark_config)
