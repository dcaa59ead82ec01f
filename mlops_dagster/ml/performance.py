"""Model performance on outcomes that arrived after the predictions: which prediction each outcome
judges, the problem type's metrics per model version and per slice, decay and slice gaps.

An outcome observed at ``t`` judges the newest prediction made for its key at or before ``t``
(and not longer than ``max_delay`` before): never a prediction made after the outcome was known.
The join runs on Spark; figures are computed on bounded, seeded samples in pandas. No Dagster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from ..settings import LOWER_IS_BETTER

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from .problem import ProblemType

LABEL = "label"
SCORED_AT = "scored_at"
SOURCES = ("batch", "endpoint")  # where a judged prediction came from: the prediction log or the endpoint


def endpoint_scores(
    answers: Iterable[tuple[Any, Any, str, int]], key: str, score: str, classifies: bool, threshold: float
) -> pd.DataFrame | None:
    """The endpoint's answers as predictions: ``(key, answer, model_version, scored_at)`` tuples
    (``scored_at`` in microseconds since the epoch) to a frame of ``key``, ``score``,
    ``model_version``, ``scored_at`` (and ``prediction`` for a classifier). A classifier's answer
    ``[P(0), P(1)]`` gives P(1); answers without a number are left out. None when none is left."""
    rows = []
    for value_of_key, answer, version, at in answers:
        value = answer[1] if classifies and isinstance(answer, list) else answer
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            rows.append((value_of_key, float(value), version, at))
    if not rows:
        return None
    frame = pd.DataFrame(rows, columns=[key, score, "model_version", SCORED_AT])
    if classifies:
        frame["prediction"] = (frame[score] >= threshold).astype("int32")
    return frame


def labelled_predictions(
    outcomes: DataFrame,
    predictions: DataFrame,
    key: str,
    label: str,
    label_time: str,
    max_delay_days: float,
    target,
) -> DataFrame:
    """Each outcome with the prediction it judges: the newest one for its key made at or before the
    outcome's time and at most ``max_delay_days`` before it. ``target(column)`` turns the label
    column into the model's target (1/0 or a number), as training does. Outcomes without such a
    prediction are left out (count them as outcomes minus rows)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    judged = (
        outcomes.select(F.col(key), target(F.col(label)).alias(LABEL), F.col(label_time))
        .join(predictions, key, "inner")
        .where(
            (F.col(SCORED_AT) <= F.col(label_time))
            & (
                F.col(SCORED_AT)
                >= F.col(label_time) - F.make_dt_interval(secs=F.lit(max_delay_days * 86400.0))
            )
        )
    )
    newest = Window.partitionBy(key, label_time).orderBy(F.desc(SCORED_AT))
    return judged.withColumn("_rank", F.row_number().over(newest)).where(F.col("_rank") == 1).drop("_rank")


@dataclass(frozen=True)
class Tally:
    """How many outcomes judge a prediction: per model version, and per source (``SOURCES``)."""

    versions: dict[str, int]
    sources: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.versions.values())


def tally(counts: Iterable[tuple[str, str, int]]) -> Tally:
    """``(model_version, source, count)`` rows summed per version and per source."""
    versions: dict[str, int] = {}
    sources = dict.fromkeys(SOURCES, 0)
    for version, source, count in counts:
        versions[version] = versions.get(version, 0) + count
        if source in sources:
            sources[source] += count
    return Tally(versions, sources)


def count_judged(joined: DataFrame) -> Tally:
    """The tally of ``labelled_predictions``: one aggregation on Spark, a row per version and source back."""
    rows = joined.groupBy("model_version", "source").count().collect()
    return tally((r["model_version"], r["source"], r["count"]) for r in rows)


def labelled_sample(
    frame: DataFrame, rows: int, max_rows: int, problem: ProblemType, columns: list[str], seed: int, key: str
) -> pd.DataFrame:
    """At most ``max_rows`` of the ``rows`` labelled predictions in ``frame``, as pandas (seeded,
    stratified on the outcome for a classifier; the Spark frame read as it is when it fits)."""
    from .sampling import stratified_sample
    from .training import to_pandas

    if rows > max_rows:
        strata, stratum = problem.strata(frame, LABEL)
        frame = stratified_sample(strata, stratum, max_rows, seed, key).frame
    return to_pandas(frame, columns)


@dataclass(frozen=True)
class Figures:
    """The problem type's metrics on one group of labelled predictions (``metrics`` empty, and
    ``reason`` set, when the group cannot be judged)."""

    rows: int
    metrics: dict[str, float]
    reason: str = ""


def figures(
    frame: pd.DataFrame, score: str, problem: ProblemType, threshold: float, min_rows: int
) -> Figures:
    """Metrics of ``frame`` (columns ``label`` and ``score``); classification adds the Brier score
    and the positive-prediction rate."""
    rows = len(frame)
    if rows < min_rows:
        return Figures(
            rows, {}, f"{rows} labelled predictions, fewer than monitoring.min_labelled_rows ({min_rows})"
        )
    y, scores = frame[LABEL].to_numpy(), frame[score].to_numpy(dtype=float)
    if problem.classifies and len(np.unique(y)) < 2:
        return Figures(rows, {}, f"every outcome is {int(y[0])}: ranking metrics need both classes")
    metrics = problem.evaluate(y, scores, threshold)
    if problem.classifies:
        from sklearn.metrics import brier_score_loss

        metrics["brier_score"] = float(brier_score_loss(y.astype(int), scores))
        metrics["positive_rate"] = float(np.mean(scores >= threshold))
    return Figures(rows, metrics)


@dataclass(frozen=True)
class Judge:
    """How a group of labelled predictions is judged: ``figures`` with these settings."""

    score: str
    problem: ProblemType
    threshold: float
    min_rows: int

    def __call__(self, frame: pd.DataFrame) -> Figures:
        return figures(frame, self.score, self.problem, self.threshold, self.min_rows)


def judge_versions(
    joined: DataFrame,
    counts: dict[str, int],
    keep: str,
    sample: Callable[[DataFrame, int], pd.DataFrame],
    judge: Callable[[pd.DataFrame], Figures],
    say: Callable[[str, int], None] = lambda version, rows: None,
) -> tuple[dict[str, Figures], pd.DataFrame | None]:
    """Figures of each model version in ``counts`` (version -> its labelled predictions in ``joined``),
    in version order, on ``sample(its rows, count)``; and the sample of version ``keep`` (None if it
    has none). One version's sample is in memory at a time (and ``keep``'s)."""
    from pyspark.sql import functions as F

    per_version, kept = {}, None
    for version in sorted(counts, key=int):
        say(version, counts[version])
        frame = sample(joined.where(F.col("model_version") == version), counts[version])
        per_version[version] = judge(frame)
        if version == keep:
            kept = frame
        del frame
    return per_version, kept


def drop(metric: str, validated: float, now: float) -> float:
    """How much worse ``now`` is than ``validated`` (positive: worse), whichever way the metric points."""
    return now - validated if metric in LOWER_IS_BETTER else validated - now


# What an estimate is judged on, and the prefix of its metadata (`<prefix>estimated_<metric>`,
# `<prefix>estimated_drop`): the newest landing batch, and the endpoint's newest window.
ESTIMATED_ON = {"batch": "", "endpoint window": "endpoint_"}


def estimated_drops(
    metric: str, validated: float | None, estimates: dict[str, float | None]
) -> dict[str, float]:
    """How far each estimate given is below ``validated`` (positive: worse), by where it was made;
    nothing to judge without a validated figure."""
    if validated is None or validated != validated:
        return {}
    return {
        where: drop(metric, validated, value)
        for where, value in estimates.items()
        if value is not None and value == value
    }


class Decay(NamedTuple):
    """A model's figure on outcomes, its figure at validation, and the drop between (positive: worse)."""

    measured: float
    validated: float
    drop: float


def decay(judged: Figures | None, metric: str, validated: str | float | None) -> Decay | None:
    """How far ``metric`` fell from its ``validated`` figure (a model version's tag, so maybe text);
    None when the version could not be judged or no validation figure was recorded."""
    if judged is None or not judged.metrics or validated is None:
        return None
    return Decay(
        judged.metrics[metric], float(validated), drop(metric, float(validated), judged.metrics[metric])
    )


@dataclass(frozen=True)
class SliceGap:
    """The largest difference of one metric between the groups of one slice."""

    slice: str
    metric: str
    gap: float
    best: str
    worst: str


def slice_gaps(
    per_group: dict[str, dict[str, Figures]], metrics: dict[str, tuple[str, ...]]
) -> list[SliceGap]:
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


def breaches(gaps: list[SliceGap], limits: dict[str, dict[str, float]]) -> list[SliceGap]:
    """The gaps wider than their slice's limit for their metric."""
    return [g for g in gaps if g.gap > limits[g.slice][g.metric]]


def gap_text(gap: SliceGap) -> str:
    return f"{gap.slice}: {gap.metric} {gap.gap:.3f} apart between {gap.best!r} and {gap.worst!r}"


def slice_figures(
    frame: pd.DataFrame, slices: Iterable[str], time_column: str, judge: Callable[[pd.DataFrame], Figures]
) -> dict[str, dict[str, Figures]]:
    """Figures per group of each slice column, and per day of ``time_column`` (slice ``day``):
    slice -> group (as text) -> figures. Rows without the slice's value (endpoint answers: requests
    carry no slice features) are left out of that slice's groups."""
    by = {**{column: frame[column] for column in slices}, "day": frame[time_column].dt.date}
    return {
        column: {str(value): judge(part) for value, part in frame.groupby(values)}
        for column, values in by.items()
    }


@dataclass(frozen=True)
class Criteria:
    """What the champion is held to: ``metric`` may fall at most ``max_drop`` below its validation
    figure, and the groups of a slice in ``gap_limits`` (slice -> metric -> gap) may differ at most
    by the gap. Figures are reported per group of each of ``slices`` and per day of ``time_column``."""

    metric: str
    max_drop: float
    slices: tuple[str, ...]
    gap_limits: dict[str, dict[str, float]]
    time_column: str


@dataclass(frozen=True)
class Evaluation:
    """One evaluation on outcomes: every model version's figures, and the champion's decay and slice gaps."""

    champion_version: str
    metric: str
    tally: Tally
    per_version: dict[str, Figures]
    decay: Decay | None = None
    decayed: bool = False
    groups: dict[str, dict[str, Figures]] = field(default_factory=dict)
    gaps: list[SliceGap] = field(default_factory=list)
    breaches: list[SliceGap] = field(default_factory=list)

    @property
    def judged(self) -> Figures | None:
        """The champion's figures (None when no outcome judged one of its predictions)."""
        return self.per_version.get(self.champion_version)

    @property
    def verdict(self) -> str:
        if self.decay is None:
            return "not judged: " + (
                self.judged.reason
                if self.judged
                else f"no outcome answers a prediction of v{self.champion_version}"
            )
        return (
            ("DECAY" if self.decayed else "no decay")
            + f": {self.metric} {self.decay.measured:.4f} on outcomes vs {self.decay.validated:.4f} at validation"
        )

    @property
    def slice_verdict(self) -> str:
        if self.breaches:
            return "; ".join(gap_text(g) for g in self.breaches)
        if self.gaps:
            return f"every slice within its allowed gap ({len(self.gaps)} gaps measured)"
        return "not judged: no slice had two groups with enough labelled predictions"


def evaluate(
    champion_version: str,
    counted: Tally,
    per_version: dict[str, Figures],
    champion_frame: pd.DataFrame | None,
    validated: str | float | None,
    criteria: Criteria,
    judge: Callable[[pd.DataFrame], Figures],
) -> Evaluation:
    """The evaluation of ``per_version`` (from ``judge_versions``): the champion's decay from its
    ``validated`` figure of the criteria's metric, and its figures and gaps per slice group (on
    ``champion_frame``, its labelled predictions)."""
    judged = per_version.get(champion_version)
    found = decay(judged, criteria.metric, validated)
    decayed = found is not None and found.drop > criteria.max_drop
    groups, gaps = {}, []
    if judged is not None and judged.metrics:
        groups = slice_figures(champion_frame, criteria.slices, criteria.time_column, judge)
        gaps = slice_gaps(groups, {c: tuple(criteria.gap_limits.get(c, {})) for c in criteria.slices})
    return Evaluation(
        champion_version,
        criteria.metric,
        counted,
        per_version,
        found,
        decayed,
        groups,
        gaps,
        breaches(gaps, criteria.gap_limits),
    )


def history(
    evaluation: Evaluation,
    metrics: tuple[str, ...],
    model_name: str,
    window_start: datetime,
    evaluated_at: datetime,
    run_id: str,
) -> pd.DataFrame:
    """The evaluation's rows of the performance history (the window ends when it was evaluated, by
    run ``run_id``): a row per model version (slice ``all``), then one per group of each of the
    champion's slices. Empty when no version was judged."""
    e, champion = evaluation, evaluation.champion_version
    base = {
        "evaluated_at": pd.Timestamp(evaluated_at),
        "model_name": model_name,
        "window_start": pd.Timestamp(window_start),
        "window_end": pd.Timestamp(evaluated_at),
        "dagster_run_id": run_id,
    }
    rows = [
        {
            **base,
            "model_version": version,
            "slice": "all",
            "group": "all",
            "labelled_predictions": e.tally.versions[version],
            "rows_used": f.rows,
            "reason": f.reason,
            "is_champion": version == champion,
            **{m: f.metrics.get(m) for m in metrics},
            "compare_metric": e.metric,
            "validated_value": e.decay.validated if e.decay and version == champion else None,
            "performance_drop": e.decay.drop if e.decay and version == champion else None,
            "decayed": e.decayed if version == champion else None,
        }
        for version, f in e.per_version.items()
    ]
    rows += [
        {
            **base,
            "model_version": champion,
            "slice": column,
            "group": group,
            "labelled_predictions": f.rows,
            "rows_used": f.rows,
            "reason": f.reason,
            "is_champion": True,
            **{m: f.metrics.get(m) for m in metrics},
            "compare_metric": e.metric,
            "validated_value": None,
            "performance_drop": None,
            "decayed": None,
        }
        for column, by_group in e.groups.items()
        for group, f in by_group.items()
    ]
    if not rows:
        return pd.DataFrame()
    # Declared types: a column that is empty in one evaluation keeps its type in the table.
    types = {
        **{m: "float64" for m in metrics},
        "validated_value": "float64",
        "performance_drop": "float64",
        "decayed": "boolean",
        "is_champion": "bool",
        "labelled_predictions": "int64",
        "rows_used": "int64",
        "reason": "string",
        "window_start": "datetime64[us, UTC]",
        "window_end": "datetime64[us, UTC]",
    }
    return pd.DataFrame(rows).astype(types)


def version_summary(evaluation: Evaluation, metrics: tuple[str, ...]) -> list[dict[str, Any]]:
    """A row per model version: its labelled predictions, rows used, figures (4 decimals) or why not judged."""
    e = evaluation
    return [
        {
            "model version": v + (" (champion)" if v == e.champion_version else ""),
            "labelled predictions": e.tally.versions[v],
            "rows used": f.rows,
            **{m: round(f.metrics[m], 4) for m in metrics if m in f.metrics},
            "not judged because": f.reason,
        }
        for v, f in e.per_version.items()
    ]


def performance_report(
    frame: pd.DataFrame, score: str, problem: ProblemType, threshold: float, metadata: dict[str, str]
):
    """Evidently's ClassificationPreset (or RegressionPreset) on labelled predictions (``label`` and
    ``score`` columns): a snapshot to save as HTML."""
    from evidently import (
        BinaryClassification,
        DataDefinition,
        Dataset,
        Regression,
        Report,
    )
    from evidently.presets import ClassificationPreset, RegressionPreset

    if problem.classifies:
        definition = DataDefinition(
            classification=[BinaryClassification(target=LABEL, prediction_probas=score, pos_label=1)],
            numerical_columns=[score],
        )
        preset = ClassificationPreset(probas_threshold=threshold)
    else:
        definition = DataDefinition(
            regression=[Regression(target=LABEL, prediction=score)], numerical_columns=[LABEL, score]
        )
        preset = RegressionPreset()
    data = frame[[LABEL, score]].astype({LABEL: int if problem.classifies else float})
    return Report([preset]).run(
        current_data=Dataset.from_pandas(data, data_definition=definition),
        reference_data=None,
        metadata=metadata,
    )
