"""Jobs: the whole lifecycle, and the stack's three recurring pipelines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dagster import AssetSelection, define_asset_job

from ..resources.mlflow_tracking import end_mlflow_on_run_finished
from ..settings import USE_CASE_TAG, Settings

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
    """The use case's jobs, named ``<use case>_lifecycle_job`` and so on, each run tagged with the use case."""
    names = settings.names
    tags = {USE_CASE_TAG: names.use_case}

    def groups(*stages: str) -> AssetSelection:
        return AssetSelection.groups(*(names.group(s) for s in stages))

    return Jobs(
        lifecycle=define_asset_job(
            names.job("lifecycle"),
            groups(*LIFECYCLE_GROUPS),
            hooks=_mlflow_hooks,
            tags=tags,
            description="Landing files to champion model, batch predictions and drift report, in one run.",
        ),
        # The outcomes sit in the ingestion group (they feed the training set) but arrive on their own:
        # the monitoring job and the outcome file sensor ingest them, the training job does not.
        training=define_asset_job(
            names.job("training"),
            groups("ingestion", "features", "training", "registry")
            - AssetSelection.assets(names.key(names.ground_truth), names.key(names.ground_truth_quarantine)),
            hooks=_mlflow_hooks,
            tags=tags,
            description="Ingest new files, rebuild features, train, register the challenger, validate and promote.",
        ),
        batch_inference=define_asset_job(
            names.job("batch_inference"),
            AssetSelection.assets(names.key(names.predictions)),
            tags=tags,
            description=f"Score every {settings.dataset.key} with the current champion.",
        ),
        monitoring=define_asset_job(
            names.job("monitoring"),
            AssetSelection.assets(
                *(
                    names.key(n)
                    for n in (
                        names.drift_report,
                        names.ground_truth,
                        names.ground_truth_quarantine,
                        names.model_performance,
                        names.estimated_performance,
                    )
                )
            ),
            hooks=_mlflow_hooks,
            tags=tags,
            description="Compare the newest data with the champion's training data (Evidently drift report); "
            "ingest new outcomes and judge the predictions they answer (model performance).",
        ),
    )
