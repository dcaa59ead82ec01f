"""Model performance on outcomes that arrived after the predictions: which prediction each outcome
judges, the problem type's metrics per model version and per slice, decay and slice gaps.

An outcome observed at ``t`` judges the newest prediction made for its key at or before ``t``
(and not longer than ``max_delay`` before): never a prediction made after the outcome was known.
The join runs on Spark; figures are computed on bounded, seeded samples in pandas. No Dagster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..settings import LOWER_IS_BETTER

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from .problem import ProblemType

LABEL = "label"
SCORED_AT = "scored_at"


def labelled_predictions(outcomes: "DataFrame", predictions: "DataFrame", key: str, label: "str",
                         label_time: str, max_delay_days: float, target) -> "DataFrame":
    """Each outcome with the prediction it judges: the newest one for its key made at or before the
    outcome's time and at most ``max_delay_days`` before it. ``target(column)`` turns the label
    column into the model's target (1/0 or a number), as training does. Outcomes without such a
    prediction are left out (count them as outcomes minus rows)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    judged = outcomes.select(F.col(key), target(F.col(label)).alias(LABEL), F.col(label_time)).join(
        predictions, key, "inner").where(
        (F.col(SCORED_AT) <= F.col(label_time))
        & (F.col(SCORED_AT) >= F.col(label_time) - F.make_dt_interval(secs=F.lit(max_delay_days * 86400.0))))
    newest = Window.partitionBy(key, label_time).orderBy(F.desc(SCORED_AT))
    return judged.withColumn("_rank", F.row_number().over(newest)).where(F.col("_rank") == 1).drop("_rank")


@dataclass(frozen=True)
class Figures:
    """The problem type's metrics on one group of labelled predictions (``metrics`` empty, and
    ``reason`` set, when the group cannot be judged)."""

    rows: int
    metrics: dict[str, float]
    reason: str = ""


def figures(frame: pd.DataFrame, score: str, problem: "ProblemType", threshold: float, min_rows: int) -> Figures:
    """Metrics of ``frame`` (columns ``label`` and ``score``); classification adds the Brier score
    and the positive-prediction rate."""
    rows = len(frame)
    if rows < min_rows:
        return Figures(rows, {}, f"{rows} labelled predictions, fewer than monitoring.min_labelled_rows ({min_rows})")
    y, scores = frame[LABEL].to_numpy(), frame[score].to_numpy(dtype=float)
    if problem.classifies and len(np.unique(y)) < 2:
        return Figures(rows, {}, f"every outcome is {int(y[0])}: ranking metrics need both classes")
    metrics = problem.evaluate(y, scores, threshold)
    if problem.classifies:
        from sklearn.metrics import brier_score_loss

        metrics["brier_score"] = float(brier_score_loss(y.astype(int), scores))
        metrics["positive_rate"] = float(np.mean(scores >= threshold))
    return Figures(rows, metrics)


def drop(metric: str, validated: float, now: float) -> float:
    """How much worse ``now`` is than ``validated`` (positive: worse), whichever way the metric points."""
    return now - validated if metric in LOWER_IS_BETTER else validated - now


@dataclass(frozen=True)
class SliceGap:
    """The largest difference of one metric between the groups of one slice."""

    slice: str
    metric: str
    gap: float
    best: str
    worst: str


def slice_gaps(per_group: dict[str, dict[str, Figures]], metrics: dict[str, tuple[str, ...]]) -> list[SliceGap]:
    """For each slice (column -> group -> figures) and each of its ``metrics``, the gap between the
    groups that could be judged: largest value minus smallest. Fewer than two judged groups: no gap."""
    gaps = []
    for column, groups in per_group.items():
        judged = {g: f.metrics for g, f in groups.items() if f.metrics}
        for metric in metrics.get(column, ()):
            values = {g: m[metric] for g, m in judged.items() if metric in m}
            if len(values) < 2:
                continue
            high, low = max(values, key=values.get), min(values, key=values.get)
            gaps.append(SliceGap(column, metric, values[high] - values[low], high, low))
    return gaps


def performance_report(frame: pd.DataFrame, score: str, problem: "ProblemType", threshold: float,
                       metadata: dict[str, str]):
    """Evidently's ClassificationPreset (or RegressionPreset) on labelled predictions (``label`` and
    ``score`` columns): a snapshot to save as HTML."""
    from evidently import BinaryClassification, DataDefinition, Dataset, Regression, Report
    from evidently.presets import ClassificationPreset, RegressionPreset

    if problem.classifies:
        definition = DataDefinition(classification=[BinaryClassification(target=LABEL, prediction_probas=score,
                                                                          pos_label=1)], numerical_columns=[score])
        preset = ClassificationPreset(probas_threshold=threshold)
    else:
        definition = DataDefinition(regression=[Regression(target=LABEL, prediction=score)],
                                    numerical_columns=[LABEL, score])
        preset = RegressionPreset()
    data = frame[[LABEL, score]].astype({LABEL: int if problem.classifies else float})
    return Report([preset]).run(current_data=Dataset.from_pandas(data, data_definition=definition),
                                reference_data=None, metadata=metadata)
