"""Drift against the champion's training data: a fresh sample of the same world is not drift,
the world after a price rise and contract shift is."""

from __future__ import annotations

import pytest

from .project import project_at

pytestmark = pytest.mark.integration

NEW_DATA_AND_DRIFT = [
    "raw_customers",
    "raw_customers_quarantine",
    "churn_features",
    "churn_labels",
    "churn_drift_report",
]


def test_drift_is_detected_on_drifted_data_and_not_on_a_fresh_sample(tmp_path):
    with project_at(tmp_path / "drift") as project:
        project.land(2000, seed=2)
        assert project.run("lifecycle_job").success
        reference_version = project.registry.by_alias("champion").tags["training_set_version"]

        project.land(800, seed=7, name="fresh.csv")
        assert project.run("lifecycle_job", selection=NEW_DATA_AND_DRIFT).success
        fresh = project.metadata("churn_drift_report")
        assert fresh["current_rows"] == 800
        assert fresh["dataset_drift"] is False, fresh["column_scores"]
        assert fresh["drift_share"] < 0.3

        project.land(800, seed=8, drifted=True, name="drifted.csv")
        result = project.run("lifecycle_job", selection=NEW_DATA_AND_DRIFT)
        assert result.success  # drift warns; it does not fail the run
        drifted = project.metadata("churn_drift_report")
        assert drifted["current_rows"] == 800
        assert drifted["dataset_drift"] is True
        assert drifted["drift_share"] >= 0.5
        for column in ("contract", "monthlyCharges", "paymentMethod"):
            assert f"| {column} |" in drifted["column_scores"]
        # Both reports measured against the same reference: the champion's exact training data.
        assert str(reference_version) in drifted["reference"] and str(reference_version) in fresh["reference"]

        [check] = project.check_evaluations(result, "no_dataset_drift")
        assert not check.passed
        assert check.severity.value == "WARN"
        history = project.lakehouse.read(project.table("churn_drift_metrics")).sort_values("report_time")
        assert history["dataset_drift"].tolist() == [False, False, True]

        # Per column over time, against both references: the first report had no batch before it.
        columns = project.lakehouse.read(project.table("churn_drift_columns"))
        reports = columns.groupby("report_time")["reference"].apply(set).sort_index().tolist()
        both = {"champion_training", "previous_batch"}
        assert reports == [{"champion_training"}, both, both]
        newest = columns[columns["report_time"] == columns["report_time"].max()]
        consecutive = newest[newest["reference"] == "previous_batch"].set_index("column")
        assert consecutive.loc["contract", "drifted"] and consecutive.loc["monthlyCharges", "drifted"]
        assert drifted["previous_batch_drift_share"] == pytest.approx(consecutive["drifted"].mean())
        # Against the fresh sample of the same world before it, the fresh batch did not drift.
        middle = columns[columns["report_time"] == sorted(columns["report_time"].unique())[1]]
        assert middle[middle["reference"] == "previous_batch"]["drifted"].mean() < 0.5
        assert "previous_batch_drift_share" in fresh
