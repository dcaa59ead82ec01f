"""detect_drift on small synthetic frames: same distribution is not drift, a strong shift is."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_dagster.ml.drift import ColumnDrift, DriftResult, detect_drift

NUMERICAL = ["charges", "tenure"]
CATEGORICAL = ["contract", "payment"]
COLUMNS = [*NUMERICAL, *CATEGORICAL]
SHIFTED = {"charges", "tenure", "contract"}


def sample(rows: int, seed: int, shifted: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "charges": rng.normal(90 if shifted else 60, 15, rows),
        "tenure": rng.uniform(0, 24 if shifted else 72, rows),
        "contract": rng.choice(["Month-to-month", "One year", "Two year"], rows,
                               p=[0.9, 0.05, 0.05] if shifted else [0.5, 0.25, 0.25]),
        "payment": rng.choice(["Electronic check", "Mailed check"], rows, p=[0.4, 0.6]),
        "unused": rng.normal(size=rows),  # not passed to detect_drift: must be ignored
    })


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
    snapshot = Report([DataDriftPreset(columns=COLUMNS)]).run(
        current_data=Dataset.from_pandas(current[COLUMNS], data_definition=definition),
        reference_data=Dataset.from_pandas(reference[COLUMNS], data_definition=definition),
    ).dict()
    theirs = {m["config"]["column"]: float(m["value"]) for m in snapshot["metrics"]
              if m["config"]["type"].endswith(":ValueDrift")}
    assert set(theirs) == set(COLUMNS)
    for column, score in theirs.items():
        assert ours[column].score == pytest.approx(score, abs=1e-12), column
    assert ours["contract"].drifted and ours["contract"].score > 0.1
