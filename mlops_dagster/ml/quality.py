"""Data quality verdicts from what a check counted: each returns whether it passed and the
metadata that shows the observed values beside the expected ones. No Dagster, no Spark."""

from __future__ import annotations

from collections.abc import Mapping

Verdict = tuple[bool, dict]


def unique_keys(rows: int, null_keys: int, duplicate_keys: int, examples: list[str]) -> Verdict:
    """Every row has its key and no key appears twice (``duplicate_keys``: rows beyond each key's first)."""
    return null_keys == 0 and duplicate_keys == 0, {
        "rows": rows,
        "null_keys": null_keys,
        "duplicate_keys": duplicate_keys,
        "expected": 0,
        "examples": ", ".join(examples) or "none",
    }


def contract_violations(found: list[Mapping], columns: list[str]) -> list[dict]:
    """The contract check's per-column rows (column, violations, example), in contract column order."""
    return [
        {"column": r["column"], "violations": r["violations"], "example": r["example"]}
        for r in sorted(found, key=lambda r: columns.index(r["column"]))
    ]


def complete_features(rows: int, columns: int, nulls: Mapping[str, int]) -> Verdict:
    """No feature value is missing (``nulls``: null cells per feature column)."""
    missing = {c: n for c, n in nulls.items() if n}
    return not missing, {
        "rows": rows,
        "columns": columns,
        "null_cells": sum(missing.values()),
        "expected": 0,
        "columns_with_nulls": ", ".join(missing) or "none",
    }


def both_classes(total: int, positives: int, negatives: int) -> Verdict:
    """Labels are 0/1 (anything else is invalid) and both occur."""
    invalid = total - positives - negatives
    return invalid == 0 and positives > 0 and negatives > 0, {
        "positives": positives,
        "negatives": negatives,
        "invalid_labels": invalid,
        "positive_rate": positives / total if total else 0.0,
    }


def numeric_labels(total: int, invalid: int, low, high, mean) -> Verdict:
    """Labels are finite numbers (``invalid``: those that are not) and not all equal. ``low``,
    ``high``, ``mean`` are None for an empty table."""
    return invalid == 0 and total > 0 and low != high, {
        "invalid_labels": invalid,
        "min": float(low or 0.0),
        "max": float(high or 0.0),
        "mean": float(mean or 0.0),
    }
