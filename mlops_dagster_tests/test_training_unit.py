"""The training and registry assets' decisions, computed in ml/ without Dagster: which columns the
training set reads and keeps, what it records, what its split holds, what a training run logs,
the validation outcome and the champion comparison table."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime

import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier

from mlops_dagster.ml.evaluation import ThresholdResult, comparison_rows, validate
from mlops_dagster.ml.feature_lookup import FeatureLookup
from mlops_dagster.ml.problem import problem_type
from mlops_dagster.ml.training import evaluate_holdout, rows_digest, run_params
from mlops_dagster.ml.training_set import (
    kept_columns,
    labels_with_outcomes,
    lineage,
    lookup_rows,
    planned_lookups,
    require_model_features,
    split_summary,
)
from mlops_dagster.settings import Bound, load_settings

from .test_settings import write_yaml

# --- the training set -----------------------------------------------------------------------------


@pytest.fixture
def two_lookups(local_root, tmp_path):
    """The churn use case looking features up in its own table (as of the label time) and in a
    plans table without history (its latest values, one feature of two)."""
    extra = write_yaml(
        tmp_path / "lookups.yaml",
        {
            "feature_store": {
                "tables": {
                    "plans": {
                        "keys": ["planID"],
                        "description": "Plans",
                        "owner": "pricing",
                        "columns": {"planPrice": {}, "planTier": {}},
                    }
                },
                "training_lookups": [
                    {
                        "table": "churn_features",
                        "lookup_key": ["customerID"],
                        "timestamp_lookup_key": "_ingested_at",
                    },
                    {"table": "plans", "lookup_key": ["planID"], "feature_names": ["planPrice"]},
                ],
            }
        },
    )
    return load_settings("local", extra_file=extra)


def test_each_lookup_reads_its_keys_its_time_and_its_features(two_lookups):
    churn, plans = planned_lookups(two_lookups)
    features = two_lookups.features.columns
    assert churn.lookup == FeatureLookup(
        "ml_dev_catalog.mlops.churn_features", ["customerID"], features, "_ingested_at"
    )
    assert churn.columns == ["customerID", "_ingested_at", *features]
    assert (churn.keys, churn.timestamp_key) == (["customerID"], "_ingested_at")
    assert plans.lookup == FeatureLookup("ml_dev_catalog.mlops.plans", ["planID"], ["planPrice"], None)
    assert plans.columns == ["planID", "planPrice"]
    assert (plans.keys, plans.timestamp_key) == (["planID"], None)
    assert plans.recorded(7) == {
        "table": "ml_dev_catalog.mlops.plans",
        "version": 7,
        "lookup_key": ["planID"],
        "timestamp_lookup_key": None,
        "features": ["planPrice"],
    }


def test_the_training_set_keeps_each_label_time_once_then_features_and_label():
    lookups = [
        FeatureLookup("a", ["k"], ["x"], "t"),
        FeatureLookup("b", ["j"], ["y"], None),
        FeatureLookup("c", ["k"], ["z"], "t"),
        FeatureLookup("d", ["k"], ["w"], "u"),
    ]
    assert kept_columns("k", lookups, ["x", "y"]) == ["k", "t", "u", "x", "y", "label"]
    assert kept_columns("k", [FeatureLookup("b", ["j"], ["y"], None)], ["y"]) == ["k", "y", "label"]


def test_a_model_feature_no_lookup_brings_is_refused_by_name():
    require_model_features(["x", "y"], ["k", "y", "x", "label"])
    with pytest.raises(ValueError, match=r"the model features \['z'\] come from no feature lookup"):
        require_model_features(["x", "z"], ["k", "x", "label"])


def test_lineage_names_the_first_lookup_the_labels_the_outcomes_and_every_lookup():
    recorded = [
        {"table": "c.s.f", "version": 3, "lookup_key": ["k"], "timestamp_lookup_key": "t", "features": ["x"]},
        {
            "table": "c.s.p",
            "version": 0,
            "lookup_key": ["j"],
            "timestamp_lookup_key": None,
            "features": ["y", "z"],
        },
    ]
    outcomes = {"outcomes_table": "c.s.truth", "outcomes_version": "5"}
    assert lineage(recorded, "c.s.labels", 12, outcomes) == {
        "features_table": "c.s.f",
        "features_version": "3",
        "labels_table": "c.s.labels",
        "labels_version": "12",
        "outcomes_table": "c.s.truth",
        "outcomes_version": "5",
        "feature_lookups": json.dumps(recorded),
    }
    assert lookup_rows(recorded) == [
        {"table": "c.s.f", "delta_version": 3, "lookup_key": "k", "as_of": "t", "features": 1},
        {"table": "c.s.p", "delta_version": 0, "lookup_key": "j", "as_of": "latest", "features": 2},
    ]


def test_split_summary_counts_sides_and_a_classifiers_positive_rate():
    rows = {("train", 0): 60, ("train", 1): 20, ("test", 0): 15, ("test", 1): 5}
    assert split_summary(rows, classifies=True) == {"train_rows": 80, "test_rows": 20, "positive_rate": 0.25}
    # A regression's split has one stratum: no positive rate.
    assert split_summary({("train", None): 8, ("test", None): 2}, classifies=False) == {
        "train_rows": 8,
        "test_rows": 2,
    }
    assert split_summary({}, classifies=True) == {"train_rows": 0, "test_rows": 0, "positive_rate": 0.0}


def test_a_later_outcome_replaces_the_dataset_label_of_its_key(local_root, spark):
    settings = load_settings("local")
    labels = spark.createDataFrame(
        pd.DataFrame(
            {
                "customerID": ["a", "b"],
                "label": [0, 1],
                "_ingested_at": [datetime(2026, 1, 1), datetime(2026, 1, 1)],
            }
        )
    )
    # a churned after its dataset label; b's outcome is older than its label, so the label stays.
    outcomes = spark.createDataFrame(
        pd.DataFrame(
            {
                "customerID": ["a", "b"],
                "churnString": ["Yes", "No"],
                "label_time": [datetime(2026, 2, 1), datetime(2025, 12, 1)],
            }
        )
    )
    rows = labels_with_outcomes(labels, outcomes, settings).orderBy("customerID").collect()
    assert [(r.customerID, r.label, r._ingested_at) for r in rows] == [
        ("a", 1, datetime(2026, 2, 1)),
        ("b", 1, datetime(2026, 1, 1)),
    ]


# --- the training run -----------------------------------------------------------------------------


def test_run_params_say_the_estimator_the_split_the_rows_and_the_data(local_root):
    settings = load_settings("local")
    lookups = [{"table": "c.s.f", "version": 3}, {"table": "c.s.p", "version": 0}]
    params = run_params(
        settings, "c.s.training", 4, {"train": 800, "test": 200}, {"train": 1600, "test": 400}, lookups
    )
    assert params == {
        "model_class": "sklearn.linear_model.LogisticRegression",
        "model.C": 1.0,
        "model.max_iter": 1000,
        "problem_type": "classification",
        "test_size": 0.2,
        "seed": 42,
        "decision_threshold": 0.5,
        "n_features": 21,
        "train_rows": 800,
        "test_rows": 200,
        "train_rows_available": 1600,
        "test_rows_available": 400,
        "max_rows": 1_000_000,
        "training_set": "c.s.training",
        "training_set_version": 4,
        "feature_tables": "c.s.f@v3, c.s.p@v0",
    }
    # A regression has no decision threshold to log.
    houses = load_settings("local", use_case="house_prices")
    assert "decision_threshold" not in run_params(
        houses, "t", 0, {"train": 1, "test": 1}, {"train": 1, "test": 1}, []
    )


def test_the_rows_digest_is_that_of_their_identity():
    expected = hashlib.sha256(b"c.s.t@v4/seed=42/max_rows=1000/rows=800").hexdigest()[:8]
    assert rows_digest("c.s.t", 4, 42, 1000, 800) == expected
    assert rows_digest("c.s.t", 5, 42, 1000, 800) != expected


def test_evaluate_holdout_scores_the_features_and_judges_on_the_label():
    holdout = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "label": [0, 0, 0, 1]})
    model = DummyClassifier(strategy="prior").fit(holdout[["x"]], holdout["label"])  # P(1) = 0.25 for all
    scores, metrics = evaluate_holdout(problem_type("classification"), model, holdout, ["x"], 0.2)
    assert list(scores) == [0.25] * 4
    # Every row predicted positive at threshold 0.2: 1 true positive, 3 false positives.
    assert metrics["precision"] == 0.25 and metrics["recall"] == 1.0 and metrics["accuracy"] == 0.25
    assert metrics["roc_auc"] == 0.5
    _, at_half = evaluate_holdout(problem_type("classification"), model, holdout, ["x"], 0.5)
    assert at_half["accuracy"] == 0.75 and at_half["recall"] == 0.0


# --- validation and the champion comparison -------------------------------------------------------


def test_validation_passes_only_when_every_threshold_does():
    thresholds = {"roc_auc": Bound(min=0.75), "log_loss": Bound(max=0.55)}
    good = validate({"roc_auc": 0.8, "log_loss": 0.5}, thresholds)
    assert good.passed and good.status == "passed"
    assert good.summary == (
        "roc_auc 0.8000 (required >= 0.75): pass; log_loss 0.5000 (required <= 0.55): pass"
    )
    bad = validate({"roc_auc": 0.812345, "log_loss": 0.6}, thresholds)
    assert not bad.passed and bad.status == "failed"
    assert bad.summary.endswith("log_loss 0.6000 (required <= 0.55): FAIL")
    assert bad.rows() == [
        {"metric": "roc_auc", "observed": 0.8123, "min": 0.75, "max": None, "passed": True},
        {"metric": "log_loss", "observed": 0.6, "min": None, "max": 0.55, "passed": False},
    ]
    assert bad.observed() == {"roc_auc_observed": 0.812345, "log_loss_observed": 0.6}


def test_a_missing_metric_fails_validation_and_is_observed_as_nan():
    validation = validate({"roc_auc": 0.9}, {"roc_auc": Bound(min=0.75), "f1": Bound(min=0.45)})
    assert not validation.passed
    assert validation.results[1] == ThresholdResult("f1", None, 0.45, None)
    assert validation.rows()[1]["observed"] is None
    assert math.isnan(validation.observed()["f1_observed"])


def test_comparison_rows_show_the_previous_champion_only_when_it_was_scored():
    challenger = {"roc_auc": 0.81234, "f1": 0.6}
    assert comparison_rows("7", challenger, "6", {"roc_auc": 0.80006, "f1": 0.61}) == [
        {"role": "challenger", "version": "7", "roc_auc": 0.8123, "f1": 0.6},
        {"role": "previous champion", "version": "6", "roc_auc": 0.8001, "f1": 0.61},
    ]
    assert comparison_rows("7", challenger, None, None) == [
        {"role": "challenger", "version": "7", "roc_auc": 0.8123, "f1": 0.6}
    ]
