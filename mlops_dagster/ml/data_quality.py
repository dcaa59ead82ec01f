"""Data quality of an ingested batch as figures over time: its rows, the share of its landed rows
the contract refused (quarantined), and per column the null share, min, max and mean of a number
and the categories new or missing against the previous batch. One Spark aggregation per batch;
the comparison in Python. No Dagster."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def profile(
    frame: DataFrame, numeric: Sequence[str], categorical: Sequence[str], max_categories: int
) -> tuple[int, dict[str, dict[str, Any]]]:
    """One aggregation of ``frame`` on Spark: its row count and, per column, its nulls, min/max/mean
    of a number and the distinct values of a category (at most ``max_categories``, sorted)."""
    from pyspark.sql import functions as F

    aggregations = [F.count(F.lit(1)).alias("_rows")]
    for column in [*numeric, *categorical]:
        aggregations.append(F.sum(F.col(column).isNull().cast("int")).alias(f"{column}__nulls"))
    for column in numeric:
        aggregations += [F.min(column).alias(f"{column}__min"), F.max(column).alias(f"{column}__max")]
        aggregations.append(F.avg(column).alias(f"{column}__mean"))
    for column in categorical:
        values = F.array_sort(F.collect_set(F.col(column).cast("string")))
        aggregations.append(F.slice(values, 1, max_categories).alias(f"{column}__categories"))
    row = frame.agg(*aggregations).first().asDict()
    columns = {
        column: {k.split("__", 1)[1]: v for k, v in row.items() if k.startswith(f"{column}__")}
        for column in [*numeric, *categorical]
    }
    return row["_rows"] or 0, columns


def history_rows(
    rows: int,
    columns: Mapping[str, Mapping[str, Any]],
    quarantined: int,
    previous: Mapping[str, Sequence[str]] | None,
    base: Mapping[str, Any],
) -> pd.DataFrame:
    """A row per column of the batch's profile (``profile``'s output): its null share of ``rows``,
    the batch's out-of-contract share (``quarantined`` of all its landed rows), and the categories
    new or missing against ``previous`` (column -> the previous batch's categories; None for the
    first batch: nothing is new or missing)."""
    out = []
    for column, p in columns.items():
        categories = p.get("categories")
        known = (previous or {}).get(column)
        out.append(
            {
                **base,
                "column": column,
                "rows": rows,
                "null_share": (p["nulls"] or 0) / rows if rows else 0.0,
                "outside_contract_share": quarantined / (rows + quarantined) if rows + quarantined else 0.0,
                "min": None if p.get("min") is None else float(p["min"]),
                "max": None if p.get("max") is None else float(p["max"]),
                "mean": None if p.get("mean") is None else float(p["mean"]),
                "categories": None if categories is None else list(categories),
                "new_categories": None
                if categories is None or known is None
                else sorted(set(categories) - set(known)),
                "missing_categories": None
                if categories is None or known is None
                else sorted(set(known) - set(categories)),
            }
        )
    types = {"rows": "int64", "null_share": "float64", "min": "float64", "max": "float64", "mean": "float64"}
    return pd.DataFrame(out).astype(types)


def changes(current: pd.DataFrame, previous: pd.DataFrame | None, max_share_change: float) -> list[str]:
    """What changed more than allowed from the previous batch, in words: a column's null share or
    out-of-contract share up by more than ``max_share_change``, a new or a missing category."""
    found = []
    before = previous.set_index("column") if previous is not None and len(previous) else None
    for r in current.itertuples():
        for share in ("null_share", "outside_contract_share"):
            was = before.loc[r.column, share] if before is not None and r.column in before.index else 0.0
            if getattr(r, share) - was > max_share_change:
                found.append(f"{r.column}: {share.replace('_', ' ')} {was:.1%} -> {getattr(r, share):.1%}")
        if r.new_categories:
            found.append(f"{r.column}: new categories {list(r.new_categories)}")
        if r.missing_categories:
            found.append(f"{r.column}: missing categories {list(r.missing_categories)}")
    return found


LISTS = ("categories", "new_categories", "missing_categories")


def stored(rows: pd.DataFrame) -> pd.DataFrame:
    """``history_rows`` as the history table keeps them: the category lists as JSON text (a column
    that is empty in one batch keeps its type in the next)."""
    import json

    encoded = {c: rows[c].map(lambda v: None if v is None else json.dumps(list(v))) for c in LISTS}
    return rows.assign(**encoded).astype(dict.fromkeys(LISTS, "string"))


def known_categories(previous: pd.DataFrame) -> dict[str, list[str] | None]:
    """Column -> its categories in a batch's stored rows (None for a number column)."""
    import json

    return {
        r.column: None if pd.isna(r.categories) else json.loads(r.categories) for r in previous.itertuples()
    }
