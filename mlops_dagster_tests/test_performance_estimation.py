"""Performance estimated before outcomes arrive (CBPE for classifiers, DLE for regressors): the
estimators against hand-computed figures, then on the demos as a user runs them."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from dagster import DefaultSensorStatus, build_sensor_context
from sklearn.metrics import roc_auc_score

from mlops_dagster.automation.retraining import estimated_decay_sensor
from mlops_dagster.cli import write_outcomes
from mlops_dagster.data.csv_files import write_csv
from mlops_dagster.data.houses import generate_houses
from mlops_dagster.data.telco import generate_customers
from mlops_dagster.ml.estimation import (
    ALL,
    Estimate,
    LossModel,
    calibrator,
    cbpe,
    dle,
    estimate_dle,
    expected_roc_auc,
    loss_model,
    roc_auc_error,
    window_history,
)
from mlops_dagster.ml.performance import Figures

from .project import project_at
from .test_model_performance import _ask_endpoint

SCORES = [0.9, 0.8, 0.3, 0.1]
STOPPED = DefaultSensorStatus.STOPPED


def test_expected_roc_auc_counts_each_pair_by_its_chances():
    # Pairs ranked i above j add p_i (1 - p_j), each row half its own p (1 - p); over P N.
    # P = 2.1, N = 1.9; pairs: .18 + .63 + .81 + .56 + .72 + .27 = 3.17; halves: .275.
    assert expected_roc_auc(SCORES, SCORES) == pytest.approx((3.17 + 0.275) / (2.1 * 1.9))


def test_expected_roc_auc_of_certain_chances_is_the_realized_one():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 300)
    scores = np.round(labels * 0.2 + rng.random(300), 2)  # ties included
    assert expected_roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))


def test_hanley_mcneil_error():
    # AUC .8 on 50 positives and 100 negatives: Q1 = .8/1.2, Q2 = 1.28/1.8,
    # variance = (.16 + 49 (Q1 - .64) + 99 (Q2 - .64)) / 5000 = 8.506667 / 5000.
    assert roc_auc_error(0.8, 50, 100) == pytest.approx(np.sqrt(8.506667 / 5000), rel=1e-6)


def test_cbpe_expected_confusion_matrix_and_bands():
    got = cbpe(SCORES, SCORES, threshold=0.5, z=2)
    # Predicted positive: .9 and .8 -> TP 1.7, FP .3; negative: FN .4, TN 1.6.
    assert got["precision"].value == pytest.approx(0.85)
    assert got["recall"].value == pytest.approx(1.7 / 2.1)
    assert got["accuracy"].value == pytest.approx(3.3 / 4)
    error = np.sqrt(0.85 * 0.15 / 2.0)
    assert (got["precision"].lower, got["precision"].upper) == pytest.approx((0.85 - 2 * error, 1.0))
    auc = cbpe(SCORES, SCORES, threshold=0.5, z=0.1)["roc_auc"]  # a band narrow enough not to be cut at 1
    error = roc_auc_error(3.445 / 3.99, 2.1, 1.9)
    assert (auc.value, auc.lower, auc.upper) == pytest.approx(
        (3.445 / 3.99, 3.445 / 3.99 - 0.1 * error, 3.445 / 3.99 + 0.1 * error)
    )
    assert auc.rows == 4


def test_calibration_maps_scores_to_observed_frequencies():
    # Scores of .9 that are right half the time are worth .5; .2 that never are, 0.
    fitted = calibrator([0.2, 0.2, 0.9, 0.9], [0, 0, 1, 0])
    assert fitted.predict([0.2, 0.9]) == pytest.approx([0.0, 0.5])


def test_dle_means_of_predicted_losses_and_their_bands():
    model = LossModel(None, None, {}, absolute_std=1.0, squared_std=2.0)
    got = dle([1, 2, 3, -1], [1, 4, 9, -2], model, z=2)  # negatives count as 0
    assert got["mae"].value == pytest.approx(1.5)
    assert (got["mae"].lower, got["mae"].upper) == pytest.approx((0.5, 2.5))  # 1.5 -/+ 2 * 1 / sqrt(4)
    rmse = np.sqrt(3.5)
    error = 2.0 / np.sqrt(4) / (2 * rmse)  # MSE's error through d sqrt(x) = dx / (2 sqrt(x))
    assert got["rmse"].value == pytest.approx(rmse)
    assert (got["rmse"].lower, got["rmse"].upper) == pytest.approx((rmse - 2 * error, rmse + 2 * error))


def test_dle_sees_a_batch_move_to_where_the_model_errs_more():
    rng = np.random.default_rng(0)
    n = 4000
    kind = rng.choice(["a", "b"], n)
    area = rng.uniform(50, 150, n)
    prediction = area * 2
    label = prediction + rng.normal(0, np.where(kind == "a", 1.0, 3.0))
    reference = pd.DataFrame({"kind": kind, "area": area})
    model = loss_model(reference, ["kind"], prediction, label, seed=0)
    for group, sigma in (("a", 1.0), ("b", 3.0)):
        batch = pd.DataFrame({"kind": [group] * 500, "area": rng.uniform(50, 150, 500)})
        got = estimate_dle(model, batch, batch["area"] * 2, z=3)
        assert got["rmse"].value == pytest.approx(sigma, rel=0.1)
        assert got["rmse"].holds(sigma)


NEW_BATCH = [
    "raw_customers",
    "raw_customers_quarantine",
    "churn_features",
    "churn_labels",
    "churn_predictions",
    "churn_estimated_performance",
]


def test_endpoint_answers_are_estimated_per_version_and_window_with_the_realized_figure_beside():
    at = pd.Timestamp("2026-12-01T00:00:00Z")
    hour = pd.Timedelta(hours=1)
    answers = pd.DataFrame(
        {
            "model_version": ["1"] * 5 + ["2"] * 2 + ["1"],
            # v1: three answers in the window from 06:00 (one at its start), two in the one from 12:00,
            # one alone from 18:00 (below the 2 rows asked for); v2: two from 06:00.
            "scored_at": [at + 6 * hour, at + 7 * hour, at + 11.9 * hour, at + 12 * hour, at + 13 * hour]
            + [at + 8 * hour, at + 9 * hour, at + 18 * hour],
            "_score": [0.9, 0.2, 0.7, 0.6, 0.1, 0.8, 0.3, 0.5],
        }
    )
    labelled = answers.iloc[[0, 1]].assign(label=[1, 0])  # outcomes judged two answers of v1 at 06:00
    seen = []

    def estimate(rows):
        seen.append(sorted(rows["_score"]))
        return {ALL: {"roc_auc": Estimate(float(rows["_score"].mean()), 0.0, 1.0, len(rows))}}

    def judge(rows):
        return Figures(len(rows), {"roc_auc": float(rows["label"].mean())})

    rows = window_history(
        answers, labelled, 6, 2, estimate, judge, {"method": "CBPE"}, "roc_auc", {"1": 0.75}
    )
    assert seen == [[0.2, 0.7, 0.9], [0.1, 0.6], [0.3, 0.8]]  # v1 06:00, v1 12:00, v2 06:00
    assert list(zip(rows["model_version"], rows["window_start"], rows["window_end"])) == [
        ("1", at + 6 * hour, at + 12 * hour),
        ("1", at + 12 * hour, at + 18 * hour),
        ("2", at + 6 * hour, at + 12 * hour),
    ]
    assert rows["estimated"].tolist() == pytest.approx([0.6, 0.35, 0.55])
    assert rows["realized"].tolist()[0] == 0.5 and rows["realized"].isna().tolist() == [False, True, True]
    assert rows["labelled_rows"].tolist() == [2, 0, 0] and rows["rows"].tolist() == [3, 2, 2]
    assert rows["validated"].tolist()[:2] == [0.75, 0.75] and np.isnan(rows["validated"].iloc[2])
    assert set(rows["method"]) == {"CBPE"}
    empty = window_history(answers.iloc[:1], labelled.iloc[:0], 6, 2, estimate, judge, {}, "roc_auc", {})
    assert empty.empty  # one answer is not a window worth estimating


def _whole(project, metric: str) -> pd.Series:
    """The newest history row of ``metric`` for the whole batch."""
    rows = project.lakehouse.read(project.table("churn_estimated_performance"))
    rows = rows[(rows["slice"] == "all") & (rows["metric"] == metric)]
    return rows.sort_values("estimated_at").iloc[-1]


def _plotted_last(project) -> dict[str, float]:
    """The figures of the newest estimate snapshot in the use case's Evidently workspace, and the
    dashboard's panel for the endpoint's windows."""
    from evidently.ui.workspace import Workspace

    workspace = Workspace(project.settings.evidently_path)
    [churn] = workspace.search_project("churn")
    titles = {p.title for p in workspace.get_dashboard(churn.id).panels}
    assert "ROC AUC of the endpoint's newest window, estimated (CBPE) and realized" in titles
    snapshots = [workspace.get_run(churn.id, s) for s in workspace.list_runs(churn.id)]
    [newest] = sorted((s for s in snapshots if "estimated_performance" in s.tags), key=lambda s: s.timestamp)[
        -1:
    ]
    return {r.metric_value_location.metric.params["column"]: r.value for r in newest.metric_results.values()}


def _land_monthly_customers(project, seed: int) -> None:
    """A batch of the same world's customers on month-to-month contracts only: the mix moves to
    where churn is harder to rank (the contract no longer separates them), the reasons stay."""
    customers = pa.Table.from_pandas(generate_customers(7043, seed), preserve_index=False)
    monthly = customers.filter(pc.equal(customers["contract"], "Month-to-month"))
    write_csv(Path(project.settings.landing_path) / "monthly.csv", customers.schema, [monthly])


@pytest.mark.integration
def test_cbpe_sees_the_mix_move_before_outcomes_but_not_a_changed_world(tmp_path):
    with project_at(tmp_path / "home") as project:
        project.land(7043, seed=42)
        result = project.run("lifecycle_job")
        assert result.success, project.failures(result)
        validated = float(project.registry.by_alias("champion").tags["metric.roc_auc"])
        same = project.metadata("churn_estimated_performance")
        assert same["method"] == "CBPE" and same["labelled_rows"] == 0
        assert same["estimated_roc_auc_lower"] <= validated <= same["estimated_roc_auc_upper"]

        # 300 of the customers are scored by the endpoint too (by key), before their outcomes arrive.
        keys = project.lakehouse.read(project.table("churn_predictions"))["customerID"].head(300).tolist()
        _ask_endpoint(project, keys)
        time.sleep(1.1)  # outcomes are observed (to the second) after the answers

        # Outcomes of a world whose reasons to churn changed: the customers did not, so neither does
        # the estimate; only the realized figure shows it, below the band (what CBPE cannot see).
        write_outcomes(project.settings, 7043, 42, False, True, "changed_world.csv")
        result = project.run("monitoring_job")
        assert result.success, project.failures(result)
        changed = _whole(project, "roc_auc")
        assert changed["estimated"] == pytest.approx(same["estimated_roc_auc"])
        assert changed["labelled_rows"] == 7043 and changed["realized"] < changed["lower"], changed.to_dict()
        # The endpoint's window alike: its estimate holds the validated figure, its realized one does not.
        windows = project.lakehouse.read(project.table("churn_endpoint_estimated_performance"))
        [window] = windows[(windows["slice"] == "all") & (windows["metric"] == "roc_auc")].itertuples()
        assert window.model_version == "1" and window.method == "CBPE" and window.rows >= 300
        assert window.lower <= validated <= window.upper, window
        assert window.labelled_rows >= 300 and window.realized < window.lower, window
        assert window.window_end - window.window_start == pd.Timedelta(hours=24)
        assert {"contract", "gender"} <= set(windows["slice"])  # slices from the keys' features
        shown = project.metadata("churn_estimated_performance")
        assert shown["endpoint_windows"] == 1
        assert shown["endpoint_estimated_roc_auc"] == pytest.approx(window.estimated)
        assert shown["endpoint_realized_roc_auc"] == pytest.approx(window.realized)
        assert shown["endpoint_estimated_drop"] == pytest.approx(validated - window.estimated)
        assert _plotted_last(project)["endpoint_estimated_roc_auc"] == pytest.approx(window.estimated)

        # Only monthly customers this time, no outcome yet: the estimate falls below the validated figure.
        _land_monthly_customers(project, seed=9)
        result = project.run("lifecycle_job", selection=NEW_BATCH)
        assert result.success, project.failures(result)
        before = _whole(project, "roc_auc")
        assert before["labelled_rows"] == 0 and np.isnan(before["realized"])
        assert before["upper"] < validated, (before.to_dict(), validated)
        assert [c.passed for c in project.check_evaluations(result, "no_estimated_decay")] == [False]
        # With `automation.decay_sensor.on_estimates`, the estimate alone asks for a retraining.
        sensor = estimated_decay_sensor(
            project.settings, project.defs.resolve_job_def(project.job("lifecycle")), STOPPED
        )
        [request] = sensor.evaluate_tick(build_sensor_context(instance=project.instance)).run_requests
        assert request.tags["mlops/trigger"] == "estimated_decay"
        assert float(request.tags["mlops/decay_estimated"]) == pytest.approx(before["estimated"], abs=1e-4)
        sliced = project.lakehouse.read(project.table("churn_estimated_performance"))
        assert {"contract", "gender"} <= set(sliced["slice"])

        # Their outcomes arrive (the same reasons to churn): the realized figure lands in the band.
        write_outcomes(project.settings, 7043, 9, False, False, "monthly_outcomes.csv")
        result = project.run("monitoring_job")
        assert result.success, project.failures(result)
        after = _whole(project, "roc_auc")
        assert after["labelled_rows"] == before["rows"]
        assert after["lower"] <= after["realized"] <= after["upper"], after.to_dict()
        assert after["estimated"] == pytest.approx(before["estimated"])


HOUSES_BATCH = [
    "raw_houses",
    "raw_houses_quarantine",
    "house_prices_features",
    "house_prices_labels",
    "house_prices_predictions",
    "house_prices_estimated_performance",
]


def _land_houses_with_outcomes_later(project, seed: int, drifted: bool) -> pd.DataFrame:
    """A batch of houses scored and estimated; the outcome file of its prices, to drop in later."""
    project.land(5000, seed=seed, drifted=drifted, name=f"houses_{seed}.csv")
    result = project.run("lifecycle_job", selection=HOUSES_BATCH)
    assert result.success, project.failures(result)
    sold = generate_houses(5000, seed, drifted)[["houseID", "price"]]
    return sold.assign(label_time=datetime.now(UTC).isoformat(timespec="seconds"))


def _newest(project, metric: str) -> pd.Series:
    rows = project.lakehouse.read(project.table("house_prices_estimated_performance"))
    rows = rows[(rows["slice"] == "all") & (rows["metric"] == metric)]
    return rows.sort_values("estimated_at").iloc[-1]


def _outcomes_arrive(project, sold: pd.DataFrame, name: str) -> pd.Series:
    folder = Path(project.settings.ground_truth_path)
    folder.mkdir(parents=True, exist_ok=True)
    sold.to_csv(folder / name, index=False)
    result = project.run("monitoring_job")
    assert result.success, project.failures(result)
    return _newest(project, "rmse")


@pytest.mark.integration
def test_dle_sees_houses_move_to_where_the_model_errs_more_but_not_prices_rising(tmp_path):
    with project_at(tmp_path / "home", overrides={"use_cases": {}}) as root:  # the shipped use cases
        project = root.use_case("house_prices")
        project.land(5000, seed=42)
        result = project.run("lifecycle_job")
        assert result.success, project.failures(result)
        validated = float(project.registry.by_alias("champion").tags["metric.rmse"])

        # A fresh batch of the same market: the estimate holds, and its outcomes land in the band.
        sold = _land_houses_with_outcomes_later(project, 9, drifted=False)
        fresh = _newest(project, "rmse")
        assert fresh["method"] == "DLE" and fresh["labelled_rows"] == 0
        assert fresh["lower"] <= validated <= fresh["upper"], (fresh.to_dict(), validated)
        judged = _outcomes_arrive(project, sold, "fresh.csv")
        assert judged["labelled_rows"] == 5000
        assert judged["lower"] <= judged["realized"] <= judged["upper"], judged.to_dict()

        # A year later: more large houses far out, where the model errs more. DLE sees the error
        # rise before any sale; the 12% price rise for the same house it cannot see.
        sold = _land_houses_with_outcomes_later(project, 7, drifted=True)
        before = _newest(project, "rmse")
        assert np.isnan(before["realized"]) and before["lower"] > validated, (before.to_dict(), validated)
        after = _outcomes_arrive(project, sold, "year_later.csv")
        assert after["realized"] > after["upper"], after.to_dict()
