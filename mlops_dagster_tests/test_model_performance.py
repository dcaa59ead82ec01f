"""Model performance on outcomes that arrive after the predictions: the figures, the join that says
which prediction an outcome judges, decay -> alert -> one retraining request, slices, bad outcome
rows, and an alert webhook that is up or down."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dagster import build_sensor_context
from sklearn import metrics

from mlops_dagster.cli import write_outcomes
from mlops_dagster.ml.performance import Figures, drop, figures, labelled_predictions, slice_gaps
from mlops_dagster.ml.problem import problem_type

from .project import Project, free_port, gateway_token, project_at
from .webhook import CLOSED, webhook  # noqa: F401 (a fixture)

CLASSIFICATION = problem_type("classification")


def test_figures_are_scikit_learns_on_the_same_rows():
    rng = np.random.default_rng(3)
    label = rng.integers(0, 2, 500)
    score = np.clip(label * 0.3 + rng.random(500) * 0.7, 0, 1)
    got = figures(pd.DataFrame({"label": label, "p": score}), "p", CLASSIFICATION, 0.5, min_rows=100)
    predicted = (score >= 0.5).astype(int)
    assert got.rows == 500 and got.reason == ""
    assert got.metrics["roc_auc"] == pytest.approx(metrics.roc_auc_score(label, score))
    assert got.metrics["f1"] == pytest.approx(metrics.f1_score(label, predicted))
    assert got.metrics["precision"] == pytest.approx(metrics.precision_score(label, predicted))
    assert got.metrics["recall"] == pytest.approx(metrics.recall_score(label, predicted))
    assert got.metrics["log_loss"] == pytest.approx(metrics.log_loss(label, score))
    assert got.metrics["brier_score"] == pytest.approx(metrics.brier_score_loss(label, score))
    assert got.metrics["positive_rate"] == pytest.approx(predicted.mean())

    regression = figures(
        pd.DataFrame({"label": [1.0, 2.0, 4.0], "prediction": [1.5, 2.0, 3.0]}),
        "prediction",
        problem_type("regression"),
        0.5,
        min_rows=1,
    )
    assert regression.metrics["mae"] == pytest.approx(metrics.mean_absolute_error([1, 2, 4], [1.5, 2, 3]))
    assert regression.metrics["r2"] == pytest.approx(metrics.r2_score([1, 2, 4], [1.5, 2, 3]))


def test_too_few_or_one_class_outcomes_are_not_judged():
    few = figures(pd.DataFrame({"label": [1, 0], "p": [0.9, 0.1]}), "p", CLASSIFICATION, 0.5, min_rows=100)
    assert few.metrics == {} and "fewer than monitoring.min_labelled_rows (100)" in few.reason
    one = figures(pd.DataFrame({"label": [1] * 10, "p": [0.9] * 10}), "p", CLASSIFICATION, 0.5, min_rows=5)
    assert one.metrics == {} and "both classes" in one.reason


def test_drop_points_the_way_of_the_metric():
    assert drop("roc_auc", 0.84, 0.70) == pytest.approx(0.14)
    assert drop("log_loss", 0.40, 0.55) == pytest.approx(0.15)  # lower is better: higher now is worse
    assert drop("rmse", 10.0, 8.0) == pytest.approx(-2.0)


def test_slice_gaps_name_the_groups_furthest_apart():
    judged = {
        "a": Figures(200, {"recall": 0.9}),
        "b": Figures(200, {"recall": 0.5}),
        "c": Figures(200, {"recall": 0.7}),
        "tiny": Figures(3, {}, "too few"),
    }
    [gap] = slice_gaps({"gender": judged, "contract": judged}, {"gender": ("recall",)})
    assert (gap.slice, gap.metric, gap.best, gap.worst) == ("gender", "recall", "a", "b")
    assert gap.gap == pytest.approx(0.4)


def test_an_outcome_judges_the_newest_prediction_made_before_it(spark):
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    day = timedelta(days=1)
    predictions = spark.createDataFrame(
        pd.DataFrame(
            [
                {"id": "a", "p": 0.1, "model_version": "1", "scored_at": t0},
                {"id": "a", "p": 0.2, "model_version": "2", "scored_at": t0 + 5 * day},
                {
                    "id": "a",
                    "p": 0.3,
                    "model_version": "3",
                    "scored_at": t0 + 20 * day,
                },  # after the outcome: never
                {"id": "b", "p": 0.4, "model_version": "1", "scored_at": t0},  # 100 days before: too old
                {
                    "id": "c",
                    "p": 0.5,
                    "model_version": "2",
                    "scored_at": t0 + 10 * day,
                },  # at the outcome's time
            ]
        )
    )
    outcomes = spark.createDataFrame(
        pd.DataFrame(
            [
                {"id": "a", "y": "Yes", "label_time": t0 + 10 * day},
                {"id": "b", "y": "No", "label_time": t0 + 100 * day},
                {"id": "c", "y": "No", "label_time": t0 + 10 * day},
                {"id": "d", "y": "Yes", "label_time": t0 + 10 * day},  # never scored
            ]
        )
    )
    target = lambda column: CLASSIFICATION.label(column, "Yes")  # noqa: E731
    judged = labelled_predictions(outcomes, predictions, "id", "y", "label_time", 90, target).toPandas()
    got = {r.id: (r.model_version, r.p, r.label) for r in judged.itertuples()}
    assert got == {"a": ("2", 0.2, 1), "c": ("2", 0.5, 0)}


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """One project whose champion (v1) scored the 7,043 demo customers; the alert webhook's URL is
    set per test through ``project.rebuild``."""
    with project_at(tmp_path_factory.mktemp("performance") / "home") as project:
        project.land(7043, seed=42)
        result = project.run("lifecycle_job")
        assert result.success, project.failures(result)
        yield project


def _monitor(project, **alerting):
    """Run the monitoring job (new outcomes, performance, drift) as configured; its result."""
    project = project.rebuild({"automation": alerting}) if alerting else project
    result = project.run("monitoring_job")
    assert result.success, project.failures(result)
    return project, result


def _ask_endpoint(project, keys):
    """Score ``keys`` on the running endpoint and wait until its inference table holds the answers."""
    table = project.settings.inference_table()
    before = project.lakehouse.row_count(table) if project.lakehouse.exists(table) else 0
    body = json.dumps({"dataframe_records": [{"customerID": k} for k in keys]}).encode()
    request = urllib.request.Request(
        project.metadata("churn_endpoint")["url"],
        data=body,
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {gateway_token(project.settings)}",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert len(json.load(response)["predictions"]) == len(keys)
    deadline = time.monotonic() + 30
    while not (project.lakehouse.exists(table) and project.lakehouse.row_count(table) > before):
        assert time.monotonic() < deadline, f"the endpoint's answer did not reach {table} in 30 s"
        time.sleep(0.5)


def _decay_tick(project, cursor):
    sensor = project.defs.get_repository_def().get_sensor_def("churn_decay_retraining_sensor")
    result = sensor.evaluate_tick(build_sensor_context(instance=project.instance, cursor=cursor))
    return result.run_requests or [], result.skip_message, result.cursor


def _check(result, name):
    [check] = Project.check_evaluations(result, name)
    return check


@pytest.mark.integration
def test_the_loop_outcomes_performance_decay_alert_retrain(scored, webhook):
    url, received = webhook
    project = scored
    # Outcomes from the same world, three of them bad: the good ones judge v1, which has not decayed.
    same = write_outcomes(project.settings, 7043, 42, False, False, "same_world.csv")
    with same.open("a") as f:
        f.write("0000-XXXXX,Maybe,2026-11-23T00:00:00Z\n7590-VHVEG,Yes,yesterday\n,No,2026-11-23\n")
    project, result = _monitor(project, alert_webhook=url)
    truth = project.metadata("churn_ground_truth")
    assert truth["rows_loaded"] == 7043
    quarantined = project.lakehouse.read(project.table("churn_ground_truth_quarantine"))
    reasons = " | ".join(quarantined["reason"])
    assert len(quarantined) == 3
    assert "'Maybe' is not one of" in reasons and "'yesterday' is not a date or time" in reasons
    assert "customerID is empty" in reasons
    same_world = project.metadata("churn_model_performance")
    assert same_world["judged"] is True and same_world["decayed"] is False, same_world["verdict"]
    assert same_world["labelled_predictions"] == 7043
    assert abs(same_world["performance_drop"]) < 0.05
    assert _check(result, "no_performance_decay").passed
    assert received == []  # nothing to alert on
    requests, skip, cursor = _decay_tick(project, None)
    assert requests == [] and skip.startswith("latest report: no decay (roc_auc")

    # Three customers are scored by the endpoint (by key: it looks their features up) after the batch.
    keys = project.lakehouse.read(project.table("churn_predictions"))["customerID"].head(3).tolist()
    _ask_endpoint(project, keys)
    time.sleep(1.1)  # outcomes are stamped to the second: observed after the answers

    # The world changed (a competitor undercuts prices): the champion decays.
    write_outcomes(project.settings, 7043, 42, False, True, "changed_world.csv")
    project, result = _monitor(project, alert_webhook=url)
    decayed = project.metadata("churn_model_performance")
    # Those three outcomes judge the endpoint's newer answers, the others the batch predictions.
    assert (decayed["judged_endpoint_answers"], decayed["judged_batch_predictions"]) == (3, 7040)
    assert decayed["decayed"] is True and decayed["performance_drop"] > 0.1, decayed["verdict"]
    assert decayed["champion_roc_auc"] < decayed["validated_roc_auc"] - 0.1
    assert decayed["decay_alert_webhook"] == "HTTP 204"
    assert not _check(result, "no_performance_decay").passed
    [posted] = [r for r in received if r["kind"] == "decay"]
    assert (
        posted["use_case"] == "churn"
        and "roc_auc" in posted["text"]
        and posted["details"]["model_version"] == "1"
    )
    alerts = project.lakehouse.read(project.table("alerts"))
    assert alerts[alerts["kind"] == "decay"]["webhook_status"].tolist() == ["HTTP 204"]
    history = project.lakehouse.read(project.table("churn_model_performance"))
    overall = history[history["slice"] == "all"].sort_values("evaluated_at")
    assert overall["decayed"].tolist() == [False, True]
    assert set(history["slice"]) == {"all", "gender", "seniorCitizen", "contract", "day"}
    assert str(datetime.now(UTC).date()) in set(history[history["slice"] == "day"]["group"])

    # Exactly one retraining is requested for this decay, and it says why.
    [request], _, cursor = _decay_tick(project, cursor)
    assert request.tags["mlops/trigger"] == "decay" and request.tags["mlops/decay_metric"] == "roc_auc"
    assert float(request.tags["mlops/decay_measured"]) < float(request.tags["mlops/decay_validated"])
    requests, skip, cursor = _decay_tick(project, cursor)
    assert requests == [] and "already handled" in skip

    # The retraining learns from the outcomes: the new model beats the decayed one on them.
    retrain = project.run("lifecycle_job", tags=request.tags)
    assert retrain.success, project.failures(retrain)
    training_set = project.metadata("churn_training_set")
    assert training_set["outcomes_table"] == project.table("churn_ground_truth")
    champion = project.registry.by_alias("champion")
    assert str(champion.version) == "2", project.metadata("champion_model_version")["decision"]


@pytest.mark.integration
def test_a_built_in_bias_fails_the_slice_check_and_a_down_webhook_loses_no_alert(scored):
    project = scored
    # Outcomes with a bias built in: every man the champion flagged churned and no other man did
    # (recall 1), while half the women it did not flag churned too (recall far lower).
    predictions = project.lakehouse.read(project.table("churn_predictions"))
    churned = (predictions["prediction"] == 1) | (
        (predictions["gender"] == "Female") & (predictions.index % 2 == 0)
    )
    folder = project.settings.ground_truth_path
    pd.DataFrame(
        {
            "customerID": predictions["customerID"],
            "churnString": np.where(churned, "Yes", "No"),
            "label_time": datetime.now(UTC).isoformat(),
        }
    ).to_csv(f"{folder}/biased.csv", index=False)
    project, result = _monitor(project, alert_webhook=CLOSED)
    check = _check(result, "no_slice_disparity")
    assert not check.passed and check.severity.value == "WARN"
    assert "gender: recall" in check.description and "'Male' and 'Female'" in check.description
    performance = project.metadata("churn_model_performance")
    assert performance["largest_slice_gap"] > 0.2
    assert performance["bias_alert_webhook"].startswith("failed: URLError")
    alerts = project.lakehouse.read(project.table("alerts"))
    [bias] = alerts[alerts["kind"] == "bias"].to_dict("records")
    assert "gender: recall" in bias["summary"] and bias["webhook_status"].startswith("failed")
    assert "9/unreachable" not in " ".join(alerts["webhook_status"])  # the webhook's URL is never stored


@pytest.mark.integration
def test_every_report_is_a_snapshot_in_evidentlys_own_ui(scored):
    from evidently.ui.workspace import Workspace

    project = scored
    folder = project.settings.evidently_path
    workspace = Workspace(folder)
    [churn] = workspace.search_project("churn")
    # One drift report per run that made one, one performance report per judged evaluation.
    drift_runs = project.lakehouse.row_count(project.table("churn_drift_metrics"))
    judged = project.lakehouse.read(project.table("churn_model_performance"))
    performance_runs = judged[(judged["slice"] == "all") & judged["is_champion"] & judged["reason"].eq("")][
        "evaluated_at"
    ].nunique()
    snapshots = [workspace.get_run(churn.id, s) for s in workspace.list_runs(churn.id)]
    assert sum(not s.tags for s in snapshots) == drift_runs + performance_runs
    # Our own figures, one snapshot per run of the asset that computed them: plotted from the first
    # day, before any outcome.
    figures = {
        tag: [s for s in snapshots if tag in s.tags] for tag in ("estimated_performance", "data_quality")
    }
    lake = project.lakehouse
    estimates = lake.read(project.table("churn_estimated_performance"))
    assert len(figures["estimated_performance"]) == estimates["estimated_at"].nunique() >= 1
    profiles = lake.read(project.table("churn_data_quality"))
    assert len(figures["data_quality"]) == profiles["profiled_at"].nunique() >= 1
    whole = estimates[(estimates["slice"] == "all") & (estimates["metric"] == "roc_auc")]
    plotted = {
        result.metric_value_location.metric.params["column"]: result.value
        for snapshot in figures["estimated_performance"]
        for result in snapshot.metric_results.values()
    }  # one column per figure: what the estimate panel's lines read
    assert plotted["estimated_roc_auc"] in set(whole["estimated"])
    assert plotted["estimated_roc_auc_lower"] in set(whole["lower"])
    assert {p.title for p in workspace.get_dashboard(churn.id).panels} >= {
        "Share of drifted feature columns",
        "Share of drifted feature columns against the previous batch",
        "Data quality of the newest batch",
        "Rows per batch",
        "ROC AUC on outcomes",
        "ROC AUC estimated before outcomes (CBPE), realized once they arrive",
    }
    port = free_port()
    ui = subprocess.Popen(
        [str(Path(sys.executable).parent / "evidently"), "ui", "--workspace", folder, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/projects", timeout=2) as response:
                    listed = json.load(response)
                break
            except OSError:
                assert time.monotonic() < deadline, "evidently ui did not answer within 60 s"
                time.sleep(0.5)
        assert [p["name"] for p in listed] == ["churn"]
    finally:
        ui.terminate()
        ui.wait(timeout=30)
