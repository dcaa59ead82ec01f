"""What the Databricks monitors of a use case are given, and how their profile metrics are read
(the monitors themselves run on the workspace emulator in test_databricks_lifecycle.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from mlops_dagster.ml.monitor_metrics import TABLE, newest_window
from mlops_dagster.resources.table_monitors import NoTableMonitors, monitor_specs
from mlops_dagster.settings import load_project


def test_each_use_case_monitors_its_prediction_log_and_its_inference_table(local_root):
    project = load_project("dev")
    churn, houses = (project.use_case(name) for name in ("churn", "house_prices"))
    log, requests = monitor_specs(churn)
    assert (log.table, log.timestamp_col, log.granularities) == (
        "ml_dev_catalog.mlops.churn_prediction_log",
        "scored_at",
        ["1 day"],
    )
    assert log.inference == {
        "model_id_col": "model_version",
        "prediction_col": "prediction",
        "problem_type": "PROBLEM_TYPE_CLASSIFICATION",
        "prediction_proba_col": "churn_probability",
    }
    assert log.slicing_exprs == churn.slices
    assert (requests.table, requests.timestamp_col, requests.inference) == (
        "ml_dev_catalog.mlops.churn_endpoint_payload",
        "request_time",
        {},
    )
    assert requests.slicing_exprs == ["status_code", "model_version"]
    [regression, _] = monitor_specs(houses)
    assert regression.inference["problem_type"] == "PROBLEM_TYPE_REGRESSION"
    assert "prediction_proba_col" not in regression.inference  # a regressor has no probability
    assert NoTableMonitors().refresh(log, "ml_dev_catalog.mlops", "/Shared/m", 0) is None  # local: none


def test_the_newest_window_gives_rows_and_mean_prediction_per_model_version():
    start = datetime(2026, 12, 7, tzinfo=UTC)
    window = {"start": start, "end": start.replace(day=8)}
    profile = pd.DataFrame(
        [
            {"window": window, "model_version": "1", "column_name": TABLE, "count": 30, "avg": None},
            {"window": window, "model_version": "1", "column_name": "prediction", "count": 30, "avg": 0.2},
            {"window": window, "model_version": "2", "column_name": TABLE, "count": 10, "avg": None},
            {"window": window, "model_version": "2", "column_name": "prediction", "count": 10, "avg": 0.5},
            {"window": window, "model_version": "2", "column_name": "tenure", "count": 10, "avg": 12.0},
        ]
    )
    found = newest_window(profile, "model_version", "prediction")
    assert found == {
        "window_start": pd.Timestamp(start),
        "rows": {"1": 30, "2": 10},
        "mean": {"1": 0.2, "2": 0.5},
    }
    traffic = newest_window(profile[profile["column_name"] == TABLE], None, None)
    assert traffic["rows"] == {"all": 40} and traffic["mean"] == {}
