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
        assert "cancellation_training_set" in tables and not [
            t for t in tables if "churn" in t or "customers" in t
        ]


def test_another_teams_files_in_other_formats_by_configuration_alone(tmp_path):
    """Semicolon-separated Latin-1 CSV, Parquet written by pandas and gzip-compressed JSON lines in
    one landing folder (issue 14): every good row loads with its file as lineage, every bad one is
    quarantined with its reason, and a second run ingests nothing."""
    import gzip
    import json

    formats = {
        **SUBSCRIBERS,
        "dataset": {
            **SUBSCRIBERS["dataset"],
            "file_pattern": "subs_*",
            "csv": {"delimiter": ";", "encoding": "latin-1"},
        },
    }
    with project_at(tmp_path / "formats", overrides=formats) as project:
        landing = Path(project.settings.landing_path)
        landing.mkdir(parents=True)
        csv_rows, parquet_rows, json_rows = (
            subscribers(200, seed=1),
            subscribers(200, seed=2),
            subscribers(200, seed=3),
        )
        csv_rows.loc[0, "subscriber_id"] = "Søren-1"
        csv_rows.to_csv(landing / "subs_a.csv", sep=";", encoding="latin-1", index=False)
        parquet_rows = parquet_rows.astype({"months": str})
        parquet_rows.loc[7, "months"] = "seven"
        parquet_rows.to_parquet(landing / "subs_b.parquet", index=False)
        lines = [json.dumps(r) for r in json_rows.replace({float("nan"): None}).to_dict("records")]
        lines[3] = lines[3][:-5]  # cut short
        (landing / "subs_c.jsonl.gz").write_bytes(gzip.compress("\n".join(lines).encode()))

        ingestion = ["raw_subscribers", "raw_subscribers_quarantine"]
        result = project.run(selection=ingestion)
        assert result.success, project.failures(result)

        raw = project.lakehouse.read(project.table("raw_subscribers"))
        assert len(raw) == 600 - 2 and "Søren-1" in set(raw["subscriber_id"])
        assert raw.groupby(raw["_source_file"].str.rsplit("/", n=1).str[-1]).size().to_dict() == {
            "subs_a.csv": 200,
            "subs_b.parquet": 199,
            "subs_c.jsonl.gz": 199,
        }
        quarantine = project.lakehouse.read(project.table("raw_subscribers_quarantine")).sort_values(
            "source_file"
        )
        assert quarantine["line_number"].tolist() == [8, 4]
        assert quarantine["reason"].iloc[0] == "months: 'seven' is not a number"
        assert quarantine["reason"].iloc[1].startswith("line is not valid JSON")
        assert project.metadata("raw_subscribers")["files_ingested"] == 3

        assert project.run(selection=ingestion).success
        assert project.metadata("raw_subscribers")["files_ingested"] == 0
