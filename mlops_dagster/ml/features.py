"""Feature engineering on Spark: the same code runs in local mode and on a Databricks cluster."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from .problem import ProblemType


def build_features(
    raw: DataFrame,
    key: str,
    categorical: list[str],
    numerical: list[str],
    derived: Mapping[str, str],
    carry: tuple[str, ...] = (),
) -> DataFrame:
    """One row per ``key`` with the model's input columns.

    ``derived`` maps a column name to a Spark SQL expression over the raw columns; a derived name
    that is also a raw column replaces it (e.g. filling gaps). Categorical columns stay strings
    (the model pipeline encodes them), numeric ones become doubles. ``carry`` columns (lineage such
    as ingestion time) are passed through untouched.
    """
    from pyspark.sql import functions as F

    columns = list(dict.fromkeys([*categorical, *numerical, *derived]))
    selected = [F.col(key)]
    for name in columns:
        column = F.expr(derived[name]) if name in derived else F.col(name)
        cast = "string" if name in categorical else "double"
        selected.append(column.cast(cast).alias(name))
    selected.extend(F.col(c) for c in carry)
    return raw.select(*selected)


def build_labels(
    raw: DataFrame,
    key: str,
    label: str,
    problem: ProblemType,
    positive_label: object = None,
    carry: tuple[str, ...] = (),
) -> DataFrame:
    """``key`` and the training target ``label``: 1 (positive) / 0 (anything else) for a classifier,
    the label column as a number for a regressor."""
    from pyspark.sql import functions as F

    target = problem.label(F.col(label), positive_label).alias("label")
    return raw.select(F.col(key), target, *(F.col(c) for c in carry))


def feature_definition(
    key: str,
    label: str,
    positive_label: object,
    problem_type: str,
    categorical: list[str],
    numerical: list[str],
    derived: Mapping[str, str],
) -> str:
    """What the feature rows are computed from, as a short hash: when it changes, every row is
    computed again (stamped on each feature table commit, compared by the next build)."""
    import hashlib
    import json

    return hashlib.sha256(
        json.dumps(
            [key, label, str(positive_label), problem_type, categorical, numerical, derived],
            sort_keys=True,
        ).encode()
    ).hexdigest()[:16]
