"""Promotion: a worse model never becomes champion, whether it fails thresholds or just loses."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from .project import project_at

pytestmark = pytest.mark.integration

TRAIN_AND_REGISTER = ["churn_model", "challenger_model_version", "champion_model_version"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    with project_at(tmp_path_factory.mktemp("promotion")) as project:
        project.land(2000, seed=2)
        assert project.run("training_job").success
        assert str(project.registry.by_alias("champion").version) == "1"
        yield project


def test_a_challenger_that_passes_thresholds_but_is_worse_stays_challenger(project):
    weak = project.rebuild(
        {
            "training": {
                "model": {"class": "sklearn.tree.DecisionTreeClassifier", "params": {"max_depth": 1}}
            },
            "validation": {
                "thresholds": {"roc_auc": {"min": 0.5}, "f1": {"min": 0.0}, "log_loss": {"max": 1.0}}
            },
        }
    )
    result = weak.run("training_job", selection=TRAIN_AND_REGISTER)
    assert result.success, weak.failures(result)
    assert str(project.registry.by_alias("challenger").version) == "2"
    assert str(project.registry.by_alias("champion").version) == "1"
    decision = project.metadata("champion_model_version")
    assert decision["promoted"] is False
    assert "challenger 2 not promoted" in decision["decision"]
    assert "roc_auc" in decision["decision"] and "vs champion" in decision["decision"]
    audit = project.lakehouse.read(project.table("audit_log"))
    refused = audit[(audit["action"] == "refused") & (audit["object"] == "churn_model v2")]
    assert len(refused) == 1 and "vs champion" in refused["details"].iloc[0]


def test_a_challenger_that_fails_validation_is_blocked_before_promotion(project):
    dummy = project.rebuild(
        {"training": {"model": {"class": "sklearn.dummy.DummyClassifier", "params": {"strategy": "prior"}}}}
    )
    result = dummy.run("training_job", selection=TRAIN_AND_REGISTER)
    challenger = project.registry.by_alias("challenger")
    assert str(challenger.version) == "3"
    assert challenger.tags["validation_status"] == "failed"
    assert "roc_auc 0.5000 (required >= 0.75): FAIL" in challenger.tags["validation_details"]
    assert str(project.registry.by_alias("champion").version) == "1"
    # The blocking check stopped the run before the champion step.
    assert not result.success
    promotion_steps = [
        e for e in result.all_events if e.step_key == "champion_model_version" and e.is_step_success
    ]
    assert promotion_steps == []
    [check] = project.check_evaluations(result)
    assert check.check_name == "passes_validation" and not check.passed

    # Promotion on its own (no check in the selection) still refuses the failed version.
    alone = dummy.run("training_job", selection=["champion_model_version"])
    assert alone.success, dummy.failures(alone)
    decision = project.metadata("champion_model_version")
    assert decision["promoted"] is False and "has not passed validation" in decision["decision"]
    assert str(project.registry.by_alias("champion").version) == "1"


def test_beyond_max_rows_a_challenger_learns_from_a_bounded_sample_and_says_so(project):
    # 2,000 rows: 1,600 train, 400 test. 600 train rows are sampled, and the holdout by the same
    # fraction (150 of 400): for the challenger's metrics and for the champion it is compared with.
    sampled = project.rebuild({"training": {"max_rows": 600}})
    result = sampled.run("training_job", selection=TRAIN_AND_REGISTER)
    assert result.success, sampled.failures(result)
    model = project.metadata("churn_model")
    assert (model["train_rows_used"], model["train_rows_available"]) == (600, 1600)
    assert (model["holdout_rows_used"], model["holdout_rows_available"]) == (150, 400)
    params = (
        MlflowClient(tracking_uri=project.settings.mlflow.tracking_uri)
        .get_run(model["mlflow_run_id"])
        .data.params
    )
    assert (params["train_rows"], params["train_rows_available"], params["max_rows"]) == (
        "600",
        "1600",
        "600",
    )
    assert (params["test_rows"], params["test_rows_available"]) == ("150", "400")
    decision = project.metadata("champion_model_version")
    assert "| previous champion | 1 |" in decision["holdout_metrics"]
