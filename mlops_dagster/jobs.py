"""Jobs: the whole lifecycle, and the stack's three recurring pipelines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dagster import AssetSelection, define_asset_job

from .resources.mlflow_tracking import end_mlflow_on_run_finished
from .settings import Settings

_mlflow_hooks = {end_mlflow_on_run_finished}

LIFECYCLE_GROUPS = ("ingestion", "features", "training", "registry", "serving", "inference", "monitoring")


@dataclass(frozen=True)
class Jobs:
    """The use case's asset jobs (what ``define_asset_job`` returns), named the same for every use case."""

    lifecycle: Any
    training: Any
    batch_inference: Any
    monitoring: Any

    @property
    def all(self) -> list:
        return [self.lifecycle, self.training, self.batch_inference, self.monitoring]


def build_jobs(settings: Settings) -> Jobs:
    names = settings.names
    return Jobs(
        lifecycle=define_asset_job(
            "lifecycle_job", AssetSelection.groups(*LIFECYCLE_GROUPS), hooks=_mlflow_hooks,
            description="Landing files to champion model, batch predictions and drift report, in one run.",
        ),
        training=define_asset_job(
            "training_job", AssetSelection.groups("ingestion", "features", "training", "registry"), hooks=_mlflow_hooks,
            description="Ingest new files, rebuild features, train, register the challenger, validate and promote.",
        ),
        batch_inference=define_asset_job(
            "batch_inference_job", AssetSelection.assets(names.predictions),
            description=f"Score every {settings.dataset.key} with the current champion.",
        ),
        monitoring=define_asset_job(
            "monitoring_job", AssetSelection.assets(names.drift_report), hooks=_mlflow_hooks,
            description="Compare the newest data with the champion's training data (Evidently drift report).",
        ),
    )
