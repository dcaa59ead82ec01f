"""What registering a challenger records besides the version itself: its model card (what it is,
what it learned from, how validation judged it) and the one-paragraph description the registry
shows. ``trained`` is the training step's record of the run (``assets.training.TrainedModel``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .lineage import data_commit
from .model_card import render_model_card

if TYPE_CHECKING:
    from ..ml.evaluation import Validation


def training_data(lakehouse, training_set: str, training_set_version: int) -> dict[str, str]:
    """The tables and versions a training set version was built from: itself, and the features and
    labels its Delta commit recorded."""
    commit = data_commit(lakehouse, training_set, training_set_version, "features_table")
    data = {"training set": f"{training_set} v{training_set_version}"}
    for role in ("features", "labels"):
        if f"{role}_table" in commit:
            data[role] = f"{commit[f'{role}_table']} v{commit[f'{role}_version']}"
    return data


def challenger_card(
    settings, lakehouse, trained: Any, version: str, validation: Validation, run_id: str
) -> str:
    """The model card of a newly registered ``version`` (Markdown)."""
    lineage = {
        "MLflow run": trained.run_id,
        "model URI": trained.model_uri,
        "Dagster run": run_id,
        "target": settings.target,
    }
    return render_model_card(
        settings.mlflow.model_name,
        version,
        settings.governance,
        training_data(lakehouse, trained.training_set, trained.training_set_version),
        settings.features.columns,
        trained.metrics,
        validation.results,
        lineage,
    )


def challenger_description(settings, trained: Any, validation: Validation) -> str:
    """The registry's description of the version: owner, training data, validation outcome."""
    return (
        f"{settings.governance.use_case} Owner: {settings.governance.owner}. Trained on "
        f"{trained.training_set} v{trained.training_set_version}; validation "
        f"{'passed' if validation.passed else 'FAILED'} ({validation.summary}). Full card: model_card.md in "
        f"run {trained.run_id}."
    )
