"""The data quality checks' verdicts from their counts, with hand-computed metadata (no Spark)."""

from __future__ import annotations

import pytest

from mlops_dagster.ml.quality import (
    both_classes,
    complete_features,
    contract_violations,
    numeric_labels,
    unique_keys,
)


def test_unique_keys():
    assert unique_keys(10, 0, 0, []) == (
        True,
        {"rows": 10, "null_keys": 0, "duplicate_keys": 0, "expected": 0, "examples": "none"},
    )
    passed, metadata = unique_keys(10, 1, 3, ["a", "b/2"])
    assert not passed and metadata["examples"] == "a, b/2" and metadata["duplicate_keys"] == 3
    assert not unique_keys(10, 1, 0, [])[0] and not unique_keys(10, 0, 1, ["a"])[0]


def test_contract_violations_follow_the_contract_order():
    found = [
        {"column": "c", "violations": 2, "example": "x"},
        {"column": "a", "violations": 1, "example": "-1"},
    ]
    assert contract_violations(found, ["a", "b", "c"]) == [
        {"column": "a", "violations": 1, "example": "-1"},
        {"column": "c", "violations": 2, "example": "x"},
    ]
    assert contract_violations([], ["a"]) == []


def test_complete_features_name_the_columns_with_nulls():
    assert complete_features(100, 3, {"a": 0, "b": 0, "c": 0}) == (
        True,
        {"rows": 100, "columns": 3, "null_cells": 0, "expected": 0, "columns_with_nulls": "none"},
    )
    assert complete_features(100, 3, {"a": 2, "b": 0, "c": 5}) == (
        False,
        {"rows": 100, "columns": 3, "null_cells": 7, "expected": 0, "columns_with_nulls": "a, c"},
    )


def test_both_classes():
    assert both_classes(10, 3, 7) == (
        True,
        {"positives": 3, "negatives": 7, "invalid_labels": 0, "positive_rate": 0.3},
    )
    assert both_classes(10, 0, 10)[0] is False  # one class
    assert both_classes(10, 3, 6) == (
        False,
        {"positives": 3, "negatives": 6, "invalid_labels": 1, "positive_rate": 0.3},
    )
    assert both_classes(0, 0, 0) == (
        False,
        {"positives": 0, "negatives": 0, "invalid_labels": 0, "positive_rate": 0.0},
    )


def test_numeric_labels():
    assert numeric_labels(4, 0, 1.0, 5.0, 2.5) == (
        True,
        {"invalid_labels": 0, "min": 1.0, "max": 5.0, "mean": 2.5},
    )
    assert numeric_labels(4, 0, 3.0, 3.0, 3.0)[0] is False  # constant
    assert numeric_labels(4, 1, 1.0, 5.0, 2.5)[0] is False  # a NaN or infinite label
    passed, metadata = numeric_labels(0, 0, None, None, None)  # empty table
    assert passed is False and metadata == {"invalid_labels": 0, "min": 0.0, "max": 0.0, "mean": 0.0}
    assert isinstance(numeric_labels(2, 0, 1, 2, 1.5)[1]["min"], float)


@pytest.mark.parametrize("total,positives,negatives", [(1, 1, 0), (1, 0, 1)])
def test_a_single_label_is_one_class(total, positives, negatives):
    assert both_classes(total, positives, negatives)[0] is False
