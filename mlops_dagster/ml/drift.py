"""Data drift between a reference (training) set and current data, with Evidently's DataDriftPreset."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..settings import INGESTED_AT

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

SHOWN_IN_ALERT = 8  # drifted columns named in an alert's summary


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    method: str
    score: float
    threshold: float
    drifted: bool


@dataclass
class DriftResult:
    dataset_drift: bool
    drift_share: float  # share of columns that drifted
    drifted_columns: int
    columns: list[ColumnDrift]
    threshold_share: float
    snapshot: Any = field(repr=False)
    # The model's own output (probability or predicted value) on both sides, apart from the features.
    prediction: ColumnDrift | None = None

    def save_html(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.snapshot.save_html(str(path))
        return path

    @property
    def verdict(self) -> str:
        return "DRIFT" if self.dataset_drift else "no drift"

    def drifted(self) -> list[str]:
        """The feature columns that drifted, in the report's order."""
        return [c.column for c in self.columns if c.drifted]

    def summary(self) -> dict[str, Any]:
        """The verdict in figures, as the drift history records them."""
        return {
            "dataset_drift": self.dataset_drift,
            "drift_share": self.drift_share,
            "drifted_columns": self.drifted_columns,
            "columns_checked": len(self.columns),
            "threshold_share": self.threshold_share,
        }

    def alert_text(self) -> str:
        """One line for a drift alert: how many columns drifted against the threshold, and the first of them."""
        drifted = self.drifted()
        return (
            f"{self.drifted_columns} of {len(self.columns)} feature columns drifted (share "
            f"{self.drift_share:.2f}, threshold {self.threshold_share:.2f}): {', '.join(drifted[:SHOWN_IN_ALERT])}"
            + (", ..." if len(drifted) > SHOWN_IN_ALERT else "")
        )

    def column_scores(self) -> list[dict[str, Any]]:
        """A row per feature column, the highest score first (scores to 4 decimals)."""
        return [
            {
                "column": c.column,
                "method": c.method,
                "score": round(c.score, 4),
                "threshold": c.threshold,
                "drifted": c.drifted,
            }
            for c in sorted(self.columns, key=lambda c: -c.score)
        ]


def newest_batch(features: DataFrame) -> DataFrame:
    """The rows of the latest ingestion (the newest landing batch) of a feature table (Spark)."""
    from pyspark.sql import functions as F

    newest = features.agg(F.max(INGESTED_AT)).first()[0]
    return features.where(F.col(INGESTED_AT) == F.lit(newest))


def drift_sample(
    frame: DataFrame,
    label: str | None,
    table_rows: int,
    max_rows: int,
    columns: list[str],
    seed: int,
    key: str,
) -> tuple[pd.DataFrame, int]:
    """At most ``max_rows`` rows of ``frame`` (seeded, stratified on ``label``, or not stratified when
    None) as pandas, and how many rows it had. When ``table_rows`` (the Delta row count of the table
    ``frame`` comes from) says it fits, it is read as it is, without counting it."""
    from pyspark.sql import functions as F

    from .sampling import stratified_sample
    from .training import to_pandas

    if table_rows <= max_rows:
        picked = to_pandas(frame, columns)
        return picked, len(picked)
    if label is None:
        frame, label = frame.withColumn("_all", F.lit(0)), "_all"
    sampled = stratified_sample(frame, label, max_rows, seed, key)
    return to_pandas(sampled.frame, columns), sampled.available_rows


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numerical: list[str],
    categorical: list[str],
    drift_share: float = 0.5,
    metadata: dict[str, str] | None = None,
    prediction: str | None = None,
) -> DriftResult:
    """Run DataDriftPreset on the given columns; per-column verdicts are Evidently's own tests.
    ``metadata`` (e.g. which rows each side sampled) is stored with the report. ``prediction``: a
    numeric column of the model's output on both sides, tested on its own (prediction drift) and
    not counted in the features' drift share."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    if current.empty:
        raise ValueError("no current data to compare with the reference: the current window is empty")
    columns = [*numerical, *categorical]
    extra = [prediction] if prediction else []
    definition = DataDefinition(numerical_columns=[*numerical, *extra], categorical_columns=categorical)
    metrics = [
        DataDriftPreset(columns=columns, drift_share=drift_share),
        *(ValueDrift(column=c) for c in extra),
    ]
    current, reference = _shared_categories(
        current[[*columns, *extra]], reference[[*columns, *extra]], categorical
    )
    snapshot = Report(metrics, include_tests=True).run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
        metadata=metadata or {},
    )
    result = snapshot.dict()
    failed = {t["metric_config"]["metric_id"] for t in result["tests"] if t["status"] == "FAIL"}
    per_column, share, count, dataset_drift = [], 0.0, 0, False
    for metric in result["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":ValueDrift"):
            per_column.append(
                ColumnDrift(
                    column=config["column"],
                    method=config["method"],
                    score=float(metric["value"]),
                    threshold=float(config["threshold"]),
                    drifted=metric["id"] in failed,
                )
            )
        elif config["type"].endswith(":DriftedColumnsCount"):
            share, count = float(metric["value"]["share"]), int(metric["value"]["count"])
            dataset_drift = metric["id"] in failed
    predicted = next((c for c in per_column if c.column == prediction), None)
    features = [c for c in per_column if c.column != prediction]
    return DriftResult(dataset_drift, share, count, features, drift_share, snapshot, predicted)


def _shared_categories(current: pd.DataFrame, reference: pd.DataFrame, categorical: list[str]):
    """Both frames with their categorical columns as pandas categoricals over the same categories:
    Evidently's per-column work (distinct values, counts, missing values) takes about half the time
    it takes on Python strings (100,000 rows a side: 2.4-2.6 s against 4.8-5.1 s), for the same scores."""
    from pandas.api.types import union_categoricals

    current, reference = current.copy(), reference.copy()
    for column in categorical:
        sides = [frame[column].astype("category") for frame in (current, reference)]
        categories = pd.CategoricalDtype(union_categoricals(sides, ignore_order=True).categories)
        current[column], reference[column] = (side.astype(categories) for side in sides)
    return current, reference


def previous_batch(features: DataFrame) -> DataFrame | None:
    """The rows of the ingestion before the newest in a feature table (Spark); None when there is one batch."""
    from pyspark.sql import functions as F

    times = features.select(INGESTED_AT).distinct().orderBy(F.desc(INGESTED_AT)).limit(2).collect()
    if len(times) < 2:
        return None
    return features.where(F.col(INGESTED_AT) == F.lit(times[1][0]))


def column_history(result: DriftResult, reference: str, base: dict[str, Any]) -> pd.DataFrame:
    """A row per feature column of ``result`` (and one for the model's output when measured):
    its score, threshold and verdict against ``reference`` (what the current data was compared with)."""
    columns = [*result.columns, *([result.prediction] if result.prediction else [])]
    return pd.DataFrame(
        [
            {
                **base,
                "reference": reference,
                "column": c.column,
                "method": c.method,
                "score": float(c.score),
                "threshold": float(c.threshold),
                "drifted": bool(c.drifted),
            }
            for c in columns
        ]
    )
