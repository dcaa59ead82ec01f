"""Batch scoring on Spark: a model's output turned into the prediction columns, stamped with the
model, and what the prediction log keeps of each row. No Dagster."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..settings import INGESTED_AT

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame


def prediction_columns(score: Column, classifies: bool, threshold: float, probability: str) -> list[Column]:
    """The prediction columns from the model's output ``score``. A classifier's ``score`` is
    ``predict_proba``'s leftmost column, P(label 0): P(1) is its complement, named ``probability``,
    and ``prediction`` is 1 from ``threshold`` on. A regressor's ``score`` is the prediction."""
    from pyspark.sql import functions as F

    if not classifies:
        return [score.alias("prediction")]
    positive = F.lit(1.0) - score
    return [positive.alias(probability), (positive >= F.lit(threshold)).cast("int").alias("prediction")]


def scored_rows(
    features: DataFrame,
    key: str,
    outputs: list[Column],
    slices: list[str],
    model_name: str,
    model_version: str,
) -> DataFrame:
    """Per feature row: the key, its ingestion time, the predictions, the slice columns (performance
    is judged per group), the model's name and version and the scoring time."""
    from pyspark.sql import functions as F

    return features.select(
        F.col(key),
        F.col(INGESTED_AT),
        *outputs,
        *slices,
        F.lit(model_name).alias("model_name"),
        F.lit(model_version).alias("model_version"),
        F.current_timestamp().alias("scored_at"),
    )


def prediction_log_columns(key: str, score_column: str, slices: list[str]) -> list[str]:
    """What the prediction log keeps of a scored row (the score once when it is the prediction)."""
    return [
        key,
        *dict.fromkeys([score_column, "prediction"]),
        *slices,
        "model_name",
        "model_version",
        "scored_at",
    ]
