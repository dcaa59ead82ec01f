"""Jobs: the whole lifecycle, and the stack's three recurring pipelines."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from .resources.mlflow_tracking import end_mlflow_on_run_finished

_mlflow_hooks = {end_mlflow_on_run_finished}

LIFECYCLE_GROUPS = ("ingestion", "features", "training", "registry", "serving", "inference", "monitoring")

lifecycle_job = define_asset_job(
    "lifecycle_job", AssetSelection.groups(*LIFECYCLE_GROUPS), hooks=_mlflow_hooks,
    description="Landing files to champion model, batch predictions and drift report, in one run.",
)
training_job = define_asset_job(
    "training_job", AssetSelection.groups("ingestion", "features", "training", "registry"), hooks=_mlflow_hooks,
    description="Ingest new files, rebuild features, train, register the challenger, validate and promote.",
)
batch_inference_job = define_asset_job(
    "batch_inference_job", AssetSelection.assets("churn_predictions"),
    description="Score every customer with the current champion.",
)
monitoring_job = define_asset_job(
    "monitoring_job", AssetSelection.assets("churn_drift_report"), hooks=_mlflow_hooks,
    description="Compare the newest data with the champion's training data (Evidently drift report).",
)

jobs = [lifecycle_job, training_job, batch_inference_job, monitoring_job]
