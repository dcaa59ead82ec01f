"""Library output that tells our users nothing, silenced where it starts: a logger's level, or a
filter that matches one known message. Real warnings and every error still get through.

Spark's own logging is configured with the session (``resources/spark.py``: ``log4j2.properties``).
"""

from __future__ import annotations

import logging
import warnings


class _DropMessage(logging.Filter):
    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def quiet_libraries() -> None:
    """Called once when the code location loads (cheap: no library is imported)."""
    from dagster import BetaWarning

    # dagster-mlflow's resource, class and hook are marked beta by Dagster; we use them knowingly
    # (docs/libraries.md). Other beta warnings still show.
    warnings.filterwarnings(
        "ignore", category=BetaWarning, message=r".*\b(mlflow_tracking|MlFlow|_create_mlflow_run_hook)\b"
    )
    # MLflow announces creating and upgrading its SQLite store, and which backend serves a model.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    logging.getLogger("mlflow.models.flavor_backend_registry").setLevel(logging.WARNING)
    # spark_udf(env_manager="local") warns that it does not rebuild the training environment: batch
    # scoring runs in that very environment on purpose (the project's virtualenv, or the cluster's
    # runtime with the same pinned libraries).
    logging.getLogger("mlflow.pyfunc").addFilter(_DropMessage("does not recreate the same environment"))
