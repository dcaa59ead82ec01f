"""Pointing the lifecycle at other data is configuration only: another file contract, key,
label, features and model run end to end without a code change."""

from __future__ import annotations

from pathlib import Path

import pytest

from .project import project_at
from .support.subscribers import SUBSCRIBERS as SUBSCRIBER_USE_CASE
from .support.subscribers import subscribers

pytestmark = pytest.mark.integration

# Today's single-use-case format: `name` names every asset, table, model and endpoint.
SUBSCRIBERS = {"name": "cancellation", **SUBSCRIBER_USE_CASE}


def test_another_dataset_runs_end_to_end_by_configuration_alone(tmp_path):
    with project_at(tmp_path / "own", overrides=SUBSCRIBERS) as project:
        landing = Path(project.settings.landing_path)
        landing.mkdir(parents=True)
        frame = subscribers(800, seed=5)
        frame.to_csv(landing / "subs_2026_11.csv", index=False)
        (landing / "not_mine.txt").write_text("ignored: does not match the file pattern")

        result = project.run("lifecycle_job")
        assert result.success, project.failures(result)

        raw = project.lakehouse.read(project.table("raw_subscribers"))
        assert len(raw) == 800 and raw["spend"].isna().sum() == frame["spend"].isna().sum()
        features = project.lakehouse.read(project.table("cancellation_features"))
        assert list(features.columns[:5]) == ["subscriber_id", "plan", "months", "spend", "spend_per_month"]
        assert features["spend"].notna().all()
        model = project.metadata("cancellation_model")
        assert model["roc_auc"] > 0.65
        run = project.registry.client().get_run(model["mlflow_run_id"])
        assert run.data.params["model_class"] == "sklearn.ensemble.HistGradientBoostingClassifier"
        assert run.data.params["model.max_iter"] == "60"
        champion = project.registry.by_alias("champion")
        assert champion is not None and champion.name == "cancellation_model"
        predictions = project.lakehouse.read(project.table("cancellation_predictions"))
        assert sorted(predictions["subscriber_id"]) == sorted(frame["subscriber_id"])
        assert predictions["cancellation_probability"].between(0, 1).all()
        assert project.metadata("cancellation_drift_report")["dataset_drift"] is False
        endpoint = project.metadata("cancellation_endpoint")
        assert endpoint["endpoint"] == "cancellation-endpoint" and endpoint["state"] == "READY"
        # Nothing is named for the demo's use case: no churn asset, table or check.
        keys = [k.to_user_string() for k in project.defs.resolve_asset_graph().get_all_asset_keys()]
        assert not [k for k in keys if "churn" in k or "customers" in k]
        schema = Path(project.lakehouse.location(project.table("x"))).parent
        tables = [p.name for p in schema.iterdir()]
        assert "cancellation_training_set" in tables and not [t for t in tables if "churn" in t or "customers" in t]
