"""The drift report's "current" side read from the endpoint's inference table: a captured request
that today's parser refuses (an older gateway accepted and scored it) is left out and counted,
never allowed to fail the report."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd

from mlops_dagster.assets.monitoring import served_requests
from mlops_dagster.resources.local_lakehouse import LocalLakehouse
from mlops_dagster.settings import load_settings


def _capture(request: dict | str, status: int = 200, age_minutes: int = 1) -> dict:
    body = request if isinstance(request, str) else json.dumps(request)
    return {
        "request": body,
        "status_code": status,
        "mirrored": False,
        "request_time": datetime.now(UTC) - timedelta(minutes=age_minutes),
    }


def test_requests_refused_today_are_left_out_and_counted(local_root, spark):
    settings = load_settings()
    lakehouse = LocalLakehouse(root=str(settings.root / "lakehouse"))
    fs = settings.features
    good = {c: ("Male" if c in fs.categorical else 1.0) for c in fs.columns}
    numeric = next(c for c in fs.columns if c not in fs.categorical)
    infinite = {**good, numeric: "__INF__"}
    rows = [
        _capture({"dataframe_records": [good, good]}),
        # Scored by an older gateway: today an infinity is refused, naming the column.
        _capture(json.dumps({"dataframe_records": [infinite]}).replace('"__INF__"', "Infinity")),
        _capture({"dataframe_records": [good]}, status=400),  # refused when it came: not answered
        _capture({"dataframe_records": [good]}, age_minutes=60 * 24 * 30),  # outside the window
    ]
    lakehouse.write(settings.inference_table(), pd.DataFrame(rows), "overwrite")

    current, shown = served_requests(settings, lakehouse, spark)

    assert len(current) == 2 and list(current.columns) == list(fs.columns)
    assert shown.endswith("(1 left out: their payload is refused today)")
    assert "of 2 requests to" in shown  # the answered requests of the window: the good and the refused one
