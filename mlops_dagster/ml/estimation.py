"""Performance estimated without outcomes, from the model's own outputs. No Dagster.

Classification: CBPE (confidence-based performance estimation, as published by NannyML). The
model's probabilities are calibrated on reference data with known outcomes (isotonic regression);
a calibrated probability ``p`` says a row is positive with chance ``p``, so the confusion matrix
and the ROC curve of a batch have expected values without its outcomes.

Regression: DLE (direct loss estimation, NannyML's). A loss model learnt on reference data predicts
each row's absolute and squared error from its features and prediction; their means estimate MAE
and MSE (RMSE its root).

Both see a change of the inputs (covariate shift) only: a world where the same inputs lead to other
outcomes (concept shift) leaves the estimate where it was until outcomes say otherwise.

Each estimate has a band of ``z`` standard errors of sampling: ROC AUC by Hanley and McNeil (1982),
the rates as binomial proportions of their expected denominators, MAE and MSE by the spread of the
reference's losses (RMSE by the delta method)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

CLASSIFICATION_ESTIMATES = ("roc_auc", "precision", "recall", "accuracy")
REGRESSION_ESTIMATES = ("rmse", "mae")


@dataclass(frozen=True)
class Estimate:
    """An estimated metric on ``rows`` rows and its band (``lower`` to ``upper``)."""

    value: float
    lower: float
    upper: float
    rows: int

    def holds(self, realized: float) -> bool:
        return self.lower <= realized <= self.upper


def _band(value: float, error: float, z: float, rows: int, bounded: bool = True) -> Estimate:
    low, high = max(value - z * error, 0.0), value + z * error
    return Estimate(float(value), float(low), float(min(high, 1.0) if bounded else high), rows)


def calibrator(scores: Sequence[float], labels: Sequence[int]):
    """An isotonic map from the model's probabilities to observed frequencies, fitted on reference
    rows with outcomes (``predict`` calibrates)."""
    from sklearn.isotonic import IsotonicRegression

    return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
        np.asarray(scores, dtype=float), np.asarray(labels, dtype=float)
    )


def expected_roc_auc(scores: Sequence[float], calibrated: Sequence[float]) -> float:
    """The ROC AUC expected when each row is positive with its ``calibrated`` chance: rows ranked by
    ``scores`` (highest first, ties as one step), true positives counted as the sum of the chances
    and false positives as the sum of their complements; the area under that curve."""
    s, p = np.asarray(scores, dtype=float), np.asarray(calibrated, dtype=float)
    order = np.argsort(-s, kind="stable")
    s, p = s[order], p[order]
    last_of_tie = np.r_[s[1:] != s[:-1], True]
    tp, fp = np.cumsum(p)[last_of_tie], np.cumsum(1.0 - p)[last_of_tie]
    tpr, fpr = np.r_[0.0, tp / tp[-1]], np.r_[0.0, fp / fp[-1]]
    return float(np.sum((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2.0))


def roc_auc_error(auc: float, positives: float, negatives: float) -> float:
    """Hanley and McNeil's standard error of a ROC AUC measured on ``positives`` and ``negatives``."""
    q1, q2 = auc / (2.0 - auc), 2.0 * auc**2 / (1.0 + auc)
    variance = (auc * (1.0 - auc) + (positives - 1.0) * (q1 - auc**2) + (negatives - 1.0) * (q2 - auc**2)) / (
        positives * negatives
    )
    return float(np.sqrt(max(variance, 0.0)))


def cbpe(
    scores: Sequence[float], calibrated: Sequence[float], threshold: float, z: float
) -> dict[str, Estimate]:
    """CBPE's estimates of one batch: expected ROC AUC, precision, recall and accuracy at
    ``threshold`` (a row is predicted positive when its score reaches it), each with a band of
    ``z`` standard errors."""
    s, p = np.asarray(scores, dtype=float), np.asarray(calibrated, dtype=float)
    n = len(s)
    predicted = s >= threshold
    tp, fp = p[predicted].sum(), (1.0 - p[predicted]).sum()
    fn, tn = p[~predicted].sum(), (1.0 - p[~predicted]).sum()
    positives, negatives = tp + fn, fp + tn
    auc = expected_roc_auc(s, p)
    rates = {
        "precision": (tp / (tp + fp) if tp + fp else 0.0, tp + fp),
        "recall": (tp / positives if positives else 0.0, positives),
        "accuracy": ((tp + tn) / n, n),
    }
    return {
        "roc_auc": _band(auc, roc_auc_error(auc, positives, negatives), z, n),
        **{m: _band(v, np.sqrt(v * (1.0 - v) / max(d, 1.0)), z, n) for m, (v, d) in rates.items()},
    }


def encoded(frame: pd.DataFrame, categorical: Sequence[str], prediction: Sequence[float]) -> pd.DataFrame:
    """The loss model's inputs: the features (categories as pandas categories) and the prediction."""
    inputs = frame.copy()
    for column in categorical:
        inputs[column] = inputs[column].astype("string").astype("category")
    inputs["_prediction"] = np.asarray(prediction, dtype=float)
    return inputs


@dataclass(frozen=True)
class LossModel:
    """DLE's loss models, learnt on reference rows, and the spread of the reference's losses."""

    absolute: object
    squared: object
    categories: dict[str, list[str]]
    absolute_std: float
    squared_std: float

    def inputs(self, frame: pd.DataFrame, prediction: Sequence[float]) -> pd.DataFrame:
        inputs = encoded(frame, list(self.categories), prediction)
        for column, known in self.categories.items():  # the reference's categories, in its order
            inputs[column] = pd.Categorical(inputs[column].astype("string"), categories=known)
        return inputs


def loss_model(
    frame: pd.DataFrame,
    categorical: Sequence[str],
    prediction: Sequence[float],
    label: Sequence[float],
    seed: int,
) -> LossModel:
    """DLE's loss models fitted on reference rows (their features, the model's ``prediction`` and the
    outcome ``label``): gradient-boosted trees predicting the absolute and the squared error."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    inputs = encoded(frame, categorical, prediction)
    error = np.asarray(label, dtype=float) - np.asarray(prediction, dtype=float)
    fitted = [
        HistGradientBoostingRegressor(categorical_features="from_dtype", random_state=seed).fit(inputs, loss)
        for loss in (np.abs(error), error**2)
    ]
    categories = {c: list(inputs[c].cat.categories) for c in categorical}
    return LossModel(*fitted, categories, float(np.std(np.abs(error))), float(np.std(error**2)))


def dle(
    absolute: Sequence[float], squared: Sequence[float], model: LossModel, z: float
) -> dict[str, Estimate]:
    """DLE's estimates of one batch from its rows' predicted ``absolute`` and ``squared`` errors
    (negative predictions count as 0): MAE and RMSE, each with a band of ``z`` standard errors."""
    a, s = (
        np.clip(np.asarray(absolute, dtype=float), 0, None),
        np.clip(np.asarray(squared, dtype=float), 0, None),
    )
    n = len(a)
    mae, mse = float(a.mean()), float(s.mean())
    rmse = float(np.sqrt(mse))
    rmse_error = model.squared_std / np.sqrt(n) / (2.0 * rmse) if rmse else 0.0
    return {
        "rmse": _band(rmse, rmse_error, z, n, bounded=False),
        "mae": _band(mae, model.absolute_std / np.sqrt(n), z, n, bounded=False),
    }


def estimate_dle(
    model: LossModel, frame: pd.DataFrame, prediction: Sequence[float], z: float
) -> dict[str, Estimate]:
    """DLE on a batch: its rows' losses predicted by ``model``, then ``dle``."""
    inputs = model.inputs(frame, prediction)
    return dle(model.absolute.predict(inputs), model.squared.predict(inputs), model, z)


ALL = ("all", "all")


def per_group(
    frame: pd.DataFrame, slices: Sequence[str], min_rows: int, measure
) -> dict[tuple[str, str], object]:
    """``measure`` of the whole ``frame`` (slice and group ``all``), then of each group of each slice
    column with at least ``min_rows`` rows: (slice, group as text) -> what ``measure`` returned."""
    found = {ALL: measure(frame)}
    for column in slices:
        for value, part in frame.groupby(column):
            if len(part) >= min_rows:
                found[(column, str(value))] = measure(part)
    return found


def history(
    estimates: dict[tuple[str, str], dict[str, Estimate]],
    realized: dict[tuple[str, str], object],
    base: dict,
    metric: str,
    validated: float | None,
) -> pd.DataFrame:
    """Rows of the estimated-performance history: one per slice group and estimated metric, the
    realized figure beside it when outcomes judged the group (``realized``: group -> ``Figures``),
    and the validated figure beside the whole batch's ``metric``."""
    rows = [
        {
            **base,
            "slice": group[0],
            "group": group[1],
            "metric": name,
            "estimated": e.value,
            "lower": e.lower,
            "upper": e.upper,
            "rows": e.rows,
            "realized": realized[group].metrics.get(name) if group in realized else None,
            "labelled_rows": realized[group].rows if group in realized else 0,
            "validated": validated if group == ALL and name == metric else None,
        }
        for group, by_metric in estimates.items()
        for name, e in by_metric.items()
    ]
    types = {"realized": "float64", "validated": "float64", "rows": "int64", "labelled_rows": "int64"}
    return pd.DataFrame(rows).astype(types)


WINDOW_START = "window_start"


def by_window(frame: pd.DataFrame, at: str, hours: float) -> list[tuple[str, pd.Timestamp, pd.DataFrame]]:
    """``frame``'s rows per served model version and window of ``hours`` (each row's time ``at``
    floored to a multiple of ``hours`` since the epoch, UTC): (version, window start, rows), in order."""
    starts = pd.to_datetime(frame[at], utc=True).dt.floor(pd.Timedelta(hours=hours))
    return [
        (str(version), start, part.drop(columns=WINDOW_START))
        for (version, start), part in frame.assign(**{WINDOW_START: starts}).groupby(
            ["model_version", WINDOW_START], sort=True
        )
    ]


def window_history(
    answers: pd.DataFrame,
    labelled: pd.DataFrame,
    hours: float,
    min_rows: int,
    estimate,
    judge,
    base: dict,
    metric: str,
    validated: dict[str, float],
) -> pd.DataFrame:
    """The history rows of an endpoint's answers estimated per model version and window: each
    window of ``answers`` (``model_version``, ``scored_at`` and what ``estimate`` reads) with at
    least ``min_rows`` rows estimated by ``estimate(rows)`` (slice group -> estimates); the realized
    figure of the whole window beside it from ``judge`` on the window's ``labelled`` answers (those
    an outcome judged); the version's ``validated`` figure beside its ``metric``. Empty when no
    window was estimated."""
    realized = (
        {(v, start): rows for v, start, rows in by_window(labelled, "scored_at", hours)}
        if len(labelled)
        else {}
    )
    parts = []
    for version, start, rows in by_window(answers, "scored_at", hours):
        if len(rows) < min_rows:
            continue
        judged = realized.get((version, start))
        part = history(
            estimate(rows),
            {ALL: judge(judged)} if judged is not None else {},
            {
                **base,
                "model_version": version,
                WINDOW_START: start,
                "window_end": start + pd.Timedelta(hours=hours),
            },
            metric,
            validated.get(version),
        )
        parts.append(part)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
