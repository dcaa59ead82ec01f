"""detect_drift on small synthetic frames: same distribution is not drift, a strong shift is; the
drift summaries and the samples each side is drawn from, on hand-made results and frames."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from mlops_dagster.ml.drift import ColumnDrift, DriftResult, detect_drift, drift_sample, newest_batch
from mlops_dagster.settings import INGESTED_AT

NUMERICAL = ["charges", "tenure"]
CATEGORICAL = ["contract", "payment"]
COLUMNS = [*NUMERICAL, *CATEGORICAL]
SHIFTED = {"charges", "tenure", "contract"}


def sample(rows: int, seed: int, shifted: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "charges": rng.normal(90 if shifted else 60, 15, rows),
            "tenure": rng.uniform(0, 24 if shifted else 72, rows),
            "contract": rng.choice(
                ["Month-to-month", "One year", "Two year"],
                rows,
                p=[0.9, 0.05, 0.05] if shifted else [0.5, 0.25, 0.25],
            ),
            "payment": rng.choice(["Electronic check", "Mailed check"], rows, p=[0.4, 0.6]),
            "unused": rng.normal(size=rows),  # not passed to detect_drift: must be ignored
        }
    )


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return sample(1500, seed=1)


@pytest.fixture(scope="module")
def same(reference) -> DriftResult:
    return detect_drift(reference, sample(800, seed=2), NUMERICAL, CATEGORICAL)


@pytest.fixture(scope="module")
def shifted(reference) -> DriftResult:
    return detect_drift(reference, sample(800, seed=3, shifted=True), NUMERICAL, CATEGORICAL, drift_share=0.5)


def test_same_distribution_is_not_drift(same):
    assert same.dataset_drift is False
    assert same.drifted_columns == 0
    assert same.drift_share == 0.0
    assert same.threshold_share == 0.5
    assert sorted(c.column for c in same.columns) == sorted(COLUMNS)
    assert not any(c.drifted for c in same.columns)


def test_strong_shift_is_dataset_drift(shifted):
    assert shifted.dataset_drift is True
    assert shifted.drift_share >= 0.5
    assert shifted.drift_share == pytest.approx(3 / 4)
    assert shifted.drifted_columns == 3


def test_per_column_flags(shifted):
    by_column = {c.column: c for c in shifted.columns}
    assert set(by_column) == set(COLUMNS)
    assert "unused" not in by_column
    assert {name for name, c in by_column.items() if c.drifted} == SHIFTED
    assert by_column["payment"].drifted is False
    for c in shifted.columns:
        assert isinstance(c, ColumnDrift)
        assert c.method and np.isfinite(c.score) and c.threshold > 0


def test_scores_are_distances_consistent_with_the_flags(same, shifted):
    before = {c.column: c.score for c in same.columns}
    for c in shifted.columns:
        # With more than 1000 reference rows Evidently uses distances: larger means more drift.
        assert "distance" in c.method.lower(), c.method
        assert c.drifted == (c.score >= c.threshold), c
    for column in SHIFTED:
        after = next(c.score for c in shifted.columns if c.column == column)
        assert after > 2 * before[column], column


def test_save_html(shifted, tmp_path):
    path = shifted.save_html(tmp_path / "reports" / "drift.html")
    assert path == tmp_path / "reports" / "drift.html"
    text = path.read_text(errors="replace")
    assert len(text) > 1000
    assert "<html" in text.lower()


def test_empty_current_frame_raises(reference):
    with pytest.raises(ValueError, match="current window is empty"):
        detect_drift(reference, reference.iloc[0:0], NUMERICAL, CATEGORICAL)


def test_categories_only_one_side_has_and_missing_values_score_as_evidently_scores_the_strings(reference):
    """detect_drift hands Evidently its categorical columns as pandas categoricals (faster): the scores
    and verdicts must be those Evidently gives for the same columns as Python strings, also with a
    category only the current side has, one only the reference has, and missing values."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    current = sample(800, seed=4, shifted=True)
    current.loc[::7, "contract"] = "Three year"  # only in the current data
    current.loc[::5, "payment"] = None
    current.loc[current["contract"] == "Two year", "contract"] = None  # a reference category gone
    ours = {c.column: c for c in detect_drift(reference, current, NUMERICAL, CATEGORICAL).columns}

    definition = DataDefinition(numerical_columns=NUMERICAL, categorical_columns=CATEGORICAL)
    assert current["contract"].dtype == object  # the caller's frames are left as they are
    snapshot = (
        Report([DataDriftPreset(columns=COLUMNS)])
        .run(
            current_data=Dataset.from_pandas(current[COLUMNS], data_definition=definition),
            reference_data=Dataset.from_pandas(reference[COLUMNS], data_definition=definition),
        )
        .dict()
    )
    theirs = {
        m["config"]["column"]: float(m["value"])
        for m in snapshot["metrics"]
        if m["config"]["type"].endswith(":ValueDrift")
    }
    assert set(theirs) == set(COLUMNS)
    for column, score in theirs.items():
        assert ours[column].score == pytest.approx(score, abs=1e-12), column
    assert ours["contract"].drifted and ours["contract"].score > 0.1


def hand_made(drifted: int, steady: int = 1) -> DriftResult:
    """A result with ``drifted`` drifted columns (scores 0.2, 0.3, ...) and ``steady`` ones (score 0.01)."""
    columns = [
        ColumnDrift(f"d{i}", "Wasserstein distance (normed)", 0.2 + i / 10, 0.1, True) for i in range(drifted)
    ]
    columns += [ColumnDrift(f"s{i}", "Jensen-Shannon distance", 0.01, 0.1, False) for i in range(steady)]
    share = drifted / len(columns)
    return DriftResult(share >= 0.5, share, drifted, columns, 0.5, snapshot=None)


def test_the_summaries_of_a_result():
    result = hand_made(drifted=2, steady=2)
    assert result.verdict == "DRIFT" and hand_made(drifted=1, steady=2).verdict == "no drift"
    assert result.drifted() == ["d0", "d1"]
    assert result.summary() == {
        "dataset_drift": True,
        "drift_share": 0.5,
        "drifted_columns": 2,
        "columns_checked": 4,
        "threshold_share": 0.5,
    }
    assert result.alert_text() == "2 of 4 feature columns drifted (share 0.50, threshold 0.50): d0, d1"
    assert [(r["column"], r["score"], r["drifted"]) for r in result.column_scores()] == [
        ("d1", 0.3, True),
        ("d0", 0.2, True),
        ("s0", 0.01, False),
        ("s1", 0.01, False),
    ]  # highest first
    assert result.column_scores()[0] == {
        "column": "d1",
        "method": "Wasserstein distance (normed)",
        "score": 0.3,
        "threshold": 0.1,
        "drifted": True,
    }


def test_an_alert_names_the_first_eight_drifted_columns():
    text = hand_made(drifted=10, steady=0).alert_text()
    assert text == (
        "10 of 10 feature columns drifted (share 1.00, threshold 0.50): d0, d1, d2, d3, d4, d5, d6, d7, ..."
    )
    assert hand_made(drifted=8, steady=0).alert_text().endswith("d6, d7")


def test_the_newest_batch_is_the_rows_of_the_latest_ingestion(spark):
    first, second = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    features = spark.createDataFrame(
        pd.DataFrame(
            {
                "id": ["a", "b", "c", "d"],
                "x": [1.0, 2.0, 3.0, 4.0],
                INGESTED_AT: [first, second, first, second],
            }
        )
    )
    assert sorted(newest_batch(features).toPandas()["id"]) == ["b", "d"]


def test_a_side_that_fits_is_read_whole_and_a_larger_one_is_sampled_by_class(spark):
    frame = spark.createDataFrame(
        pd.DataFrame(
            {"id": [f"k{i}" for i in range(10)], "y": [1] * 4 + [0] * 6, "x": [float(i) for i in range(10)]}
        )
    )
    whole, available = drift_sample(frame, "y", table_rows=10, max_rows=10, columns=["x"], seed=1, key="id")
    assert available == 10 and sorted(whole["x"]) == [float(i) for i in range(10)]
    assert list(whole.columns) == ["x"]
    # 5 of 10 rows, stratified on y: 2 of the 4 ones (keys k0-k3, x 0-3) and 3 of the 6 zeros.
    sampled, available = drift_sample(
        frame, "y", table_rows=10, max_rows=5, columns=["x", "y"], seed=1, key="id"
    )
    assert available == 10 and len(sampled) == 5 and sorted(sampled["y"]) == [0, 0, 0, 1, 1]
    assert sampled["x"].between(0, 9).all() and sampled["x"].is_unique
    # Not stratified (the newest batch): any 4 rows; the table's row count (20) only says it may not fit.
    plain, available = drift_sample(
        frame.where("x < 8"), None, table_rows=20, max_rows=4, columns=["x"], seed=1, key="id"
    )
    assert available == 8 and len(plain) == 4 and plain["x"].lt(8).all()
