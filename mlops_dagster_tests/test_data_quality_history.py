"""Data quality as history: each ingested batch profiled (nulls, out-of-contract rows, ranges,
categories) and compared with the one before."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml

import mlops_dagster
from mlops_dagster.data.csv_files import write_csv
from mlops_dagster.data.telco import generate_customers
from mlops_dagster.ml.data_quality import changes, history_rows

from .project import project_at

NEW_BATCH = ["raw_customers", "raw_customers_quarantine", "churn_data_quality"]


def _land(project, customers, name: str) -> None:
    table, folder = pa.Table.from_pandas(customers, preserve_index=False), Path(project.settings.landing_path)
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(folder / name, table.schema, [table])


def _history(project):
    return project.lakehouse.read(project.table("churn_data_quality"))


def test_history_rows_and_changes_from_the_previous_batch():
    base = {"batch": 1}
    profiled = {
        "age": {"nulls": 5, "min": 1, "max": 9, "mean": 4.5},
        "plan": {"nulls": 0, "categories": ["a", "c"]},
    }
    rows = history_rows(100, profiled, 25, {"age": None, "plan": ["a", "b"]}, base)
    age, plan = rows.set_index("column").loc["age"], rows.set_index("column").loc["plan"]
    assert (age["null_share"], age["outside_contract_share"], age["mean"]) == (0.05, 0.2, 4.5)  # 25 of 125
    assert (plan["new_categories"], plan["missing_categories"]) == (["c"], ["b"])
    before = rows.assign(null_share=[0.04, 0.0], outside_contract_share=0.19)
    assert changes(rows, before, 0.02) == ["plan: new categories ['c']", "plan: missing categories ['b']"]
    assert changes(rows, before.assign(null_share=[0.02, 0.0]), 0.02) == [
        "age: null share 2.0% -> 5.0%",
        "plan: new categories ['c']",
        "plan: missing categories ['b']",
    ]


@pytest.mark.integration
def test_a_batch_with_a_new_category_and_nulls_is_told_from_the_one_before(tmp_path):
    # A contract that lets any payment method through: a new one is data quality's to see.
    # (A layer's dataset.columns replaces the contract as a whole: the shipped one, changed.)
    base = yaml.safe_load((Path(mlops_dagster.__file__).parent / "conf" / "base.yaml").read_text())
    columns = base["use_cases"]["churn"]["dataset"]["columns"]
    columns["paymentMethod"] = {"type": "string"}
    overrides = {"use_cases": {"churn": {"dataset": {"columns": columns}}}}
    with project_at(tmp_path / "home", overrides) as project:
        first = generate_customers(2000, 3)
        _land(project, first, "first.csv")
        result = project.run("lifecycle_job", selection=NEW_BATCH)
        assert result.success, project.failures(result)
        [check] = project.check_evaluations(result, "no_data_quality_change")
        assert check.passed  # the first batch has nothing to be compared with
        history = _history(project).set_index("column")
        assert history.loc["tenure", "rows"] == 2000
        assert history.loc["tenure", "min"] == first["tenure"].min()
        assert history.loc["monthlyCharges", "mean"] == pytest.approx(first["monthlyCharges"].mean())
        assert json.loads(history.loc["paymentMethod", "categories"]) == sorted(
            first["paymentMethod"].unique()
        )
        assert pd.isna(history.loc["paymentMethod", "new_categories"])

        # The next batch: 5% of totalCharges blank, a new payment method, 20 rows out of contract.
        second = generate_customers(2000, 4)
        rng = np.random.default_rng(0)
        second.loc[rng.choice(2000, 100, replace=False), "totalCharges"] = np.nan
        second.loc[second.index[:40], "paymentMethod"] = "Crypto wallet"
        second.loc[second.index[-20:], "monthlyCharges"] = -5.0
        _land(project, second, "second.csv")
        result = project.run("lifecycle_job", selection=NEW_BATCH)
        assert result.success, project.failures(result)
        [check] = project.check_evaluations(result, "no_data_quality_change")
        assert not check.passed
        assert "paymentMethod: new categories ['Crypto wallet']" in check.description
        assert "totalCharges: null share" in check.description

        history = _history(project)
        newest = history[history["batch_ingested_at"] == history["batch_ingested_at"].max()].set_index(
            "column"
        )
        loaded = second.iloc[:-20]  # the out-of-contract rows are quarantined
        assert newest.loc["totalCharges", "rows"] == 1980
        assert newest.loc["totalCharges", "null_share"] == pytest.approx(loaded["totalCharges"].isna().mean())
        assert newest.loc["totalCharges", "null_share"] >= 0.05 - 20 / 1980
        assert newest.loc["tenure", "outside_contract_share"] == pytest.approx(20 / 2000)
        assert json.loads(newest.loc["paymentMethod", "new_categories"]) == ["Crypto wallet"]
        assert json.loads(newest.loc["paymentMethod", "missing_categories"]) == []
        metadata = project.metadata("churn_data_quality")
        assert metadata["rows"] == 1980
        assert metadata["totalCharges_null_share"] == pytest.approx(newest.loc["totalCharges", "null_share"])
