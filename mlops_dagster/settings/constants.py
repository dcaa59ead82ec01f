"""Names and fixed values the whole code base shares with the configuration."""

from pathlib import Path

CONF_DIR = Path(__file__).parent.parent / "conf"
TARGETS = ("local", "dev", "staging", "prod")
# When a raw row was ingested: a column of the raw table, and the feature table's timestamp key.
INGESTED_AT = "_ingested_at"
# The table of every landing file ingested (size, mtime, rows loaded and quarantined), by path.
LANDING_LOG = "landing_file_log"
# Which landing file a raw row came from.
SOURCE_FILE = "_source_file"
# The run tag naming the use case a run works for (set on every use case job).
USE_CASE_TAG = "mlops/use_case"
# What a model predicts, and the metrics it is judged by on its holdout (ml/ computes them).
PROBLEM_METRICS = {
    "classification": ("roc_auc", "f1", "precision", "recall", "log_loss", "accuracy"),
    "regression": ("rmse", "mae", "r2"),
}
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})


def reported_metrics(problem_type: str, classifies: bool) -> tuple[str, ...]:
    """The figures reported per model version and group: the problem type's metrics, and for a
    classifier the Brier score and the positive-prediction rate."""
    return (*PROBLEM_METRICS[problem_type], *(("brier_score", "positive_rate") if classifies else ()))


# A remote step's environment variable holding its run's resolved project (see load_project).
SETTINGS_JSON_ENV = "MLOPS_SETTINGS_JSON"
# The format of local state under a home (MLOPS_HOME): 1 was the release before use cases (tables
# in schema FORMAT_1_SCHEMA, landing files flat in `landing/`), 2 is today's. Recorded in the home's
# `format.json`, and on a Databricks target as a property of the project's schema (`mlops bootstrap`).
HOME_FORMAT = 2
HOME_FORMAT_FILE = "format.json"
FORMAT_PROPERTY = "mlops_dagster.format"
# Format 1 kept every table of the project in this schema, whatever the configuration said.
FORMAT_1_SCHEMA = "churn"
