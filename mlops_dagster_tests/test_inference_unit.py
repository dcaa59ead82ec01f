"""Batch scoring's columns, computed on Spark from a known model output (no model, no Dagster)."""

from __future__ import annotations

from datetime import datetime

import pytest

from mlops_dagster.ml.inference import prediction_columns, prediction_log_columns, scored_rows
from mlops_dagster.settings import INGESTED_AT


def _features(spark):
    at = datetime(2026, 1, 1)
    return spark.createDataFrame(
        [("a", at, 0.3, "x"), ("b", at, 0.6, "y"), ("c", at, 0.5, "x")], ["id", INGESTED_AT, "out", "region"]
    )


def test_a_classifier_scores_the_positive_class_from_the_threshold_on(spark):
    from pyspark.sql import functions as F

    rows = (
        scored_rows(
            _features(spark), "id", prediction_columns(F.col("out"), True, 0.5, "p_yes"), ["region"], "m", "4"
        )
        .orderBy("id")
        .collect()
    )
    assert rows[0].__fields__ == [
        "id",
        INGESTED_AT,
        "p_yes",
        "prediction",
        "region",
        "model_name",
        "model_version",
        "scored_at",
    ]
    # The model's output is P(label 0): P(1) = 1 - it; 0.5 is on the threshold, so positive.
    assert [r.p_yes for r in rows] == pytest.approx([0.7, 0.4, 0.5])
    assert [r.prediction for r in rows] == [1, 0, 1]
    assert {(r.model_name, r.model_version) for r in rows} == {("m", "4")}
    assert all(r.scored_at is not None for r in rows)


def test_a_regressor_predicts_its_output(spark):
    from pyspark.sql import functions as F

    rows = (
        scored_rows(
            _features(spark), "id", prediction_columns(F.col("out"), False, 0.5, "unused"), [], "m", "1"
        )
        .orderBy("id")
        .collect()
    )
    assert rows[0].__fields__ == ["id", INGESTED_AT, "prediction", "model_name", "model_version", "scored_at"]
    assert [r.prediction for r in rows] == [0.3, 0.6, 0.5]


def test_the_prediction_log_keeps_the_score_once():
    assert prediction_log_columns("id", "p_yes", ["region"]) == [
        "id",
        "p_yes",
        "prediction",
        "region",
        "model_name",
        "model_version",
        "scored_at",
    ]
    assert prediction_log_columns("id", "prediction", []) == [
        "id",
        "prediction",
        "model_name",
        "model_version",
        "scored_at",
    ]
