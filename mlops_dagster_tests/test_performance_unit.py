"""The arithmetic of model performance on outcomes (ml/performance.py), on small hand-made frames
whose expected figures are worked out by hand in the comments."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pandas as pd
import pytest

from mlops_dagster.ml.performance import (
    LABEL,
    Criteria,
    Decay,
    Evaluation,
    Figures,
    Judge,
    SliceGap,
    Tally,
    breaches,
    count_judged,
    decay,
    endpoint_scores,
    estimated_drops,
    evaluate,
    gap_text,
    history,
    judge_versions,
    labelled_sample,
    slice_figures,
    tally,
    version_summary,
)
from mlops_dagster.ml.problem import problem_type
from mlops_dagster.settings import reported_metrics

CLASSIFICATION, REGRESSION = problem_type("classification"), problem_type("regression")
DAY1, DAY2 = datetime(2026, 1, 1, 9, tzinfo=UTC), datetime(2026, 1, 2, 17, tzinfo=UTC)
BY_HAND = Judge("prediction", REGRESSION, 0.5, min_rows=1)


def outcomes() -> pd.DataFrame:
    """Six labelled predictions of a regressor. Absolute errors: A 0.5, 0, 1; B 1, 1; no region 0."""
    return pd.DataFrame(
        {
            LABEL: [1.0, 2.0, 4.0, 0.0, 2.0, 3.0],
            "prediction": [1.5, 2.0, 3.0, 1.0, 3.0, 3.0],
            "region": ["A", "A", "A", "B", "B", None],
            "label_time": [DAY1, DAY1, DAY2, DAY2, DAY2, DAY2],
        }
    )


def test_reported_metrics_are_the_problem_types_and_a_classifiers_two_more():
    assert reported_metrics("regression", False) == ("rmse", "mae", "r2")
    assert reported_metrics("classification", True) == (
        "roc_auc",
        "f1",
        "precision",
        "recall",
        "log_loss",
        "accuracy",
        "brier_score",
        "positive_rate",
    )


def test_endpoint_answers_become_predictions_and_answers_without_a_number_are_dropped():
    answers = [
        ("a", [0.3, 0.7], "2", 10),
        ("b", [0.8, 0.2], "2", 20),
        ("c", 0.5, "1", 30),
        ("d", True, "1", 40),
        ("e", "n/a", "1", 50),
        ("f", None, "1", 60),
    ]
    frame = endpoint_scores(answers, "id", "p", classifies=True, threshold=0.5)
    # A classifier's [P(0), P(1)] gives P(1); a bare number is taken as it is; P(1) >= 0.5 predicts 1.
    assert frame.to_dict("list") == {
        "id": ["a", "b", "c"],
        "p": [0.7, 0.2, 0.5],
        "model_version": ["2", "2", "1"],
        "scored_at": [10, 20, 30],
        "prediction": [1, 0, 1],
    }
    assert str(frame["prediction"].dtype) == "int32"

    regression = endpoint_scores([("h", 250, "3", 7)], "id", "price", classifies=False, threshold=0.5)
    assert regression.to_dict("list") == {
        "id": ["h"],
        "price": [250.0],
        "model_version": ["3"],
        "scored_at": [7],
    }
    assert endpoint_scores([("d", False, "1", 1)], "id", "p", classifies=True, threshold=0.5) is None
    assert endpoint_scores([], "id", "p", classifies=True, threshold=0.5) is None


def test_the_tally_sums_per_version_and_per_source():
    counted = tally([("1", "batch", 40), ("2", "batch", 7), ("1", "endpoint", 2), ("2", "endpoint", 1)])
    assert counted == Tally({"1": 42, "2": 8}, {"batch": 47, "endpoint": 3})
    assert counted.total == 50
    assert tally([]) == Tally({}, {"batch": 0, "endpoint": 0})  # both sources are always reported


def test_counted_judged_predictions_and_each_versions_figures_in_version_order(spark):
    joined = spark.createDataFrame(
        outcomes().assign(
            model_version=["10", "10", "10", "2", "2", "2"],
            source=["batch", "batch", "endpoint", "batch", "batch", "batch"],
            id=list("uvwxyz"),
        )
    )
    counted = count_judged(joined)
    assert counted == Tally({"10": 3, "2": 3}, {"batch": 5, "endpoint": 1})

    said = []
    per_version, kept = judge_versions(
        joined,
        counted.versions,
        "10",
        lambda rows, count: labelled_sample(rows, count, 1000, REGRESSION, [LABEL, "prediction"], 7, "id"),
        BY_HAND,
        lambda version, count: said.append((version, count)),
    )
    assert said == [("2", 3), ("10", 3)]  # as numbers: 2 before 10
    assert list(per_version) == ["2", "10"]
    # v10 errors 0.5, 0, 1: MAE 0.5; v2 errors 1, 1, 0: MAE 2/3.
    assert per_version["10"].metrics["mae"] == pytest.approx(0.5)
    assert per_version["2"].metrics["mae"] == pytest.approx(2 / 3)
    assert sorted(kept[LABEL]) == [1.0, 2.0, 4.0]  # the sample of the version asked to keep


def test_a_labelled_sample_keeps_each_outcomes_share(spark):
    frame = spark.createDataFrame(
        pd.DataFrame({"id": [f"k{i}" for i in range(10)], LABEL: [1] * 4 + [0] * 6, "p": [0.5] * 10})
    )
    sampled = labelled_sample(frame, 10, 5, CLASSIFICATION, [LABEL, "p"], seed=3, key="id")
    # 5 of 10 rows, 40% positive: 2 positives and 3 negatives.
    assert sorted(sampled[LABEL]) == [0, 0, 0, 1, 1]
    whole = labelled_sample(frame, 10, 10, CLASSIFICATION, [LABEL, "p"], seed=3, key="id")
    assert len(whole) == 10 and list(whole.columns) == [LABEL, "p"]


def test_a_classifiers_figures_by_hand():
    # Outcomes 0, 0, 1, 1 with P(1) 0.1, 0.6, 0.4, 0.9: of the 4 (positive, negative) pairs, 3 are
    # ranked right (AUC 0.75); at 0.5 it predicts 0, 1, 0, 1: one hit, one false alarm, one miss.
    judged = Judge("p", CLASSIFICATION, 0.5, min_rows=4)(
        pd.DataFrame({LABEL: [0, 0, 1, 1], "p": [0.1, 0.6, 0.4, 0.9]})
    )
    assert judged.rows == 4 and judged.reason == ""
    expected = {
        "roc_auc": 0.75,
        "precision": 0.5,
        "recall": 0.5,
        "f1": 0.5,
        "accuracy": 0.5,
        "positive_rate": 0.5,
        "brier_score": (0.01 + 0.36 + 0.36 + 0.01) / 4,
    }
    for metric, value in expected.items():
        assert judged.metrics[metric] == pytest.approx(value), metric


def test_decay_is_the_drop_from_the_validation_figure_whichever_way_the_metric_points():
    assert decay(Figures(200, {"roc_auc": 0.70}), "roc_auc", "0.84") == pytest.approx(Decay(0.70, 0.84, 0.14))
    assert decay(Figures(200, {"rmse": 12.0}), "rmse", 10.0) == pytest.approx(Decay(12.0, 10.0, 2.0))
    assert decay(Figures(200, {"rmse": 8.0}), "rmse", 10.0).drop == pytest.approx(-2.0)  # better: negative
    assert decay(None, "rmse", 10.0) is None  # no prediction of the version was judged
    assert decay(Figures(3, {}, "too few"), "rmse", 10.0) is None
    assert decay(Figures(200, {"rmse": 8.0}), "rmse", None) is None  # no validation figure recorded


def test_each_estimate_is_judged_against_the_validated_figure_and_missing_ones_are_not():
    estimates = {"batch": 0.80, "endpoint window": 0.70, "nowhere": None}
    assert estimated_drops("roc_auc", 0.84, estimates) == pytest.approx(
        {"batch": 0.04, "endpoint window": 0.14}
    )
    assert estimated_drops("rmse", 10.0, {"batch": 12.0, "endpoint window": float("nan")}) == {"batch": 2.0}
    assert estimated_drops("roc_auc", None, estimates) == {}  # no validation figure recorded
    assert estimated_drops("roc_auc", float("nan"), estimates) == {}


def test_figures_per_slice_group_and_per_day_leave_rows_without_the_value_out():
    groups = slice_figures(outcomes(), ["region"], "label_time", BY_HAND)
    assert {c: sorted(g) for c, g in groups.items()} == {
        "region": ["A", "B"],
        "day": ["2026-01-01", "2026-01-02"],
    }
    assert [groups["region"][g].rows for g in ("A", "B")] == [3, 2]  # the row without a region is in no group
    assert groups["region"]["A"].metrics["mae"] == pytest.approx(0.5)
    assert groups["region"]["B"].metrics["mae"] == pytest.approx(1.0)
    # Day 1: errors 0.5, 0 (MAE 0.25); day 2: errors 1, 1, 1, 0 (MAE 0.75).
    assert groups["day"]["2026-01-01"].metrics["mae"] == pytest.approx(0.25)
    assert groups["day"]["2026-01-02"].metrics["mae"] == pytest.approx(0.75)
    assert groups["day"]["2026-01-02"].rows == 4


def test_a_gap_wider_than_its_limit_is_a_breach_and_says_so():
    wide, narrow = SliceGap("region", "mae", 0.5, "B", "A"), SliceGap("region", "rmse", 0.05, "B", "A")
    assert breaches([wide, narrow], {"region": {"mae": 0.3, "rmse": 0.05}}) == [wide]  # at the limit: allowed
    assert gap_text(wide) == "region: mae 0.500 apart between 'B' and 'A'"


def evaluated(validated="0.4", max_drop=0.1, gap_limits=None) -> Evaluation:
    frame = outcomes()
    per_version = {"1": Figures(50, {}, "50 too few"), "2": BY_HAND(frame)}
    criteria = Criteria(
        "mae",
        max_drop,
        ("region",),
        {"region": {"mae": 0.3}} if gap_limits is None else gap_limits,
        "label_time",
    )
    return evaluate(
        "2",
        Tally({"1": 50, "2": 6}, {"batch": 50, "endpoint": 6}),
        per_version,
        frame,
        validated,
        criteria,
        BY_HAND,
    )


def test_the_champion_decayed_beyond_the_allowed_drop_and_one_slice_is_too_far_apart():
    e = evaluated()
    # Champion errors 0.5, 0, 1, 1, 1, 0: MAE 3.5 / 6 against 0.4 at validation (lower is better).
    assert e.judged.metrics["mae"] == pytest.approx(3.5 / 6)
    assert e.decay == pytest.approx(Decay(3.5 / 6, 0.4, 3.5 / 6 - 0.4)) and e.decayed
    assert e.verdict == "DECAY: mae 0.5833 on outcomes vs 0.4000 at validation"
    [gap] = e.gaps  # only the slice with a limit is measured; region B's MAE 1.0 against A's 0.5
    assert (gap.slice, gap.metric, gap.best, gap.worst) == ("region", "mae", "B", "A")
    assert gap.gap == pytest.approx(0.5) and e.breaches == [gap]
    assert e.slice_verdict == "region: mae 0.500 apart between 'B' and 'A'"


def test_within_the_allowed_drop_and_gaps_or_without_a_champion_judged():
    calm = evaluated(max_drop=0.2, gap_limits={"region": {"mae": 0.5}})
    assert not calm.decayed and calm.decay.drop == pytest.approx(3.5 / 6 - 0.4) and calm.breaches == []
    assert calm.verdict.startswith("no decay: mae 0.5833")
    assert calm.slice_verdict == "every slice within its allowed gap (1 gaps measured)"

    unvalidated = evaluated(validated=None)
    assert unvalidated.decay is None and not unvalidated.decayed
    assert unvalidated.verdict.startswith("not judged")  # judged, but there is nothing to compare with

    nothing = evaluate(
        "3",
        Tally({"1": 50}, {"batch": 50, "endpoint": 0}),
        {"1": Figures(50, {}, "too few")},
        None,
        "0.4",
        Criteria("mae", 0.1, ("region",), {}, "label_time"),
        BY_HAND,
    )
    assert nothing.judged is None and nothing.groups == {} and nothing.gaps == []
    assert nothing.verdict == "not judged: no outcome answers a prediction of v3"
    assert nothing.slice_verdict == "not judged: no slice had two groups with enough labelled predictions"
    too_few = evaluate(
        "1",
        nothing.tally,
        nothing.per_version,
        None,
        "0.4",
        Criteria("mae", 0.1, (), {}, "label_time"),
        BY_HAND,
    )
    assert too_few.verdict == "not judged: too few"


def test_the_history_has_a_row_per_version_then_per_slice_group_with_declared_types():
    rows = history(evaluated(), ("rmse", "mae", "r2"), "m", DAY1, DAY2, "r")
    assert list(zip(rows["model_version"], rows["slice"], rows["group"])) == [
        ("1", "all", "all"),
        ("2", "all", "all"),
        ("2", "region", "A"),
        ("2", "region", "B"),
        ("2", "day", "2026-01-01"),
        ("2", "day", "2026-01-02"),
    ]
    assert rows["labelled_predictions"].tolist() == [50, 6, 3, 2, 2, 4]
    assert rows["rows_used"].tolist() == [50, 6, 3, 2, 2, 4]
    assert rows["is_champion"].tolist() == [False, True, True, True, True, True]
    assert rows["reason"].tolist() == ["50 too few", "", "", "", "", ""]
    assert (rows["compare_metric"] == "mae").all() and (rows["dagster_run_id"] == "r").all()
    assert (rows["model_name"] == "m").all() and (rows["window_start"] == pd.Timestamp(DAY1)).all()
    assert (rows["evaluated_at"] == pd.Timestamp(DAY2)).all() and (
        rows["window_end"] == pd.Timestamp(DAY2)
    ).all()
    champion = rows.iloc[1]
    assert champion["validated_value"] == 0.4 and champion["performance_drop"] == pytest.approx(3.5 / 6 - 0.4)
    assert rows["decayed"].tolist()[1] is True
    assert math.isnan(rows.iloc[0]["mae"]) and math.isnan(rows.iloc[0]["validated_value"])
    assert rows["decayed"].isna().tolist() == [
        True,
        False,
        True,
        True,
        True,
        True,
    ]  # only the champion's verdict
    assert rows.loc[rows["group"] == "B", "rmse"].item() == pytest.approx(1.0)  # errors 1 and 1
    assert {
        c: str(rows[c].dtype)
        for c in ("mae", "decayed", "is_champion", "labelled_predictions", "reason", "window_start")
    } == {
        "mae": "float64",
        "decayed": "boolean",
        "is_champion": "bool",
        "labelled_predictions": "int64",
        "reason": "string",
        "window_start": "datetime64[us, UTC]",
    }
    assert history(Evaluation("1", "mae", Tally({}, {}), {}), ("mae",), "m", DAY1, DAY2, "r").empty


def test_the_version_summary_marks_the_champion_and_rounds_its_figures():
    e = evaluated()
    assert version_summary(e, ("mae", "rmse")) == [
        {
            "model version": "1",
            "labelled predictions": 50,
            "rows used": 50,
            "not judged because": "50 too few",
        },
        {
            "model version": "2 (champion)",
            "labelled predictions": 6,
            "rows used": 6,
            "mae": 0.5833,
            "rmse": round(math.sqrt((0.25 + 0 + 1 + 1 + 1 + 0) / 6), 4),
            "not judged because": "",
        },
    ]
