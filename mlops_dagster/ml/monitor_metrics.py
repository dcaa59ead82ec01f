"""What a Databricks monitor's profile metrics table says of its newest window. No Dagster, no Spark.

The table has a row per window, slice, model id (inference-log profiles) and column; the column
``:table`` stands for the whole table (its ``count`` is the window's rows)."""

from __future__ import annotations

import pandas as pd

TABLE = ":table"


def newest_window(profile: pd.DataFrame, model_id_col: str | None, column: str | None) -> dict:
    """From the whole-table rows (no slice) of one window of a profile metrics table: the window's
    start, its rows per model id (``all`` without a model id column) and ``column``'s mean per model
    id (empty without one)."""
    models = profile[model_id_col].astype(str) if model_id_col else pd.Series("all", index=profile.index)
    rows = profile.assign(_model=models)
    counted = rows[rows["column_name"] == TABLE].groupby("_model")["count"].sum()
    means = (
        rows[rows["column_name"] == column].groupby("_model")["avg"].mean()
        if column
        else pd.Series(dtype=float)
    )
    starts = pd.to_datetime(profile["window"].map(lambda w: w["start"]), utc=True)
    return {
        "window_start": starts.max() if len(starts) else None,
        "rows": {m: int(n) for m, n in counted.items()},
        "mean": {m: float(v) for m, v in means.items()},
    }
