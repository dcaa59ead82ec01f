"""The code location as a user meets it: loads fast, validates, shows the lifecycle in stage groups."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import AssetKey

from mlops_dagster.definitions import build_definitions
from mlops_dagster.settings import ConfigError, load_settings

REPO = Path(__file__).resolve().parents[1]
STAGES = {
    "ingestion": {"raw_customers", "raw_customers_quarantine"},
    "features": {"churn_features", "churn_labels", "churn_features_online"},
    "training": {"churn_training_set", "churn_model"},
    "registry": {"challenger_model_version", "champion_model_version"},
    "serving": {"churn_endpoint"},
    "inference": {"churn_predictions"},
    "monitoring": {"churn_drift_report"},
    "governance": {"compliance_report"},
}


def test_assets_sit_in_stage_groups_with_descriptions(local_root):
    defs = build_definitions(load_settings())
    graph = defs.resolve_asset_graph()
    groups: dict[str, set[str]] = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        groups.setdefault(node.group_name, set()).add(key.to_user_string())
        assert node.description and len(node.description) > 60, f"{key} needs a description for users"
    assert groups == STAGES


def test_jobs_and_checks_exist(local_root):
    defs = build_definitions(load_settings())
    for job in ("lifecycle_job", "training_job", "batch_inference_job", "monitoring_job"):
        assert defs.resolve_job_def(job) is not None
    checks = {(k.asset_key.to_user_string(), k.name) for k in defs.resolve_asset_graph().asset_check_keys}
    assert {("raw_customers", "rows_meet_contract"), ("churn_features", "key_is_unique_and_not_null"),
            ("challenger_model_version", "passes_validation"), ("churn_drift_report", "no_dataset_drift")} <= checks
    validation = defs.resolve_assets_def(AssetKey("challenger_model_version")).check_specs
    assert [spec.blocking for spec in validation] == [True]


def _python(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_loading_the_code_location_imports_no_heavy_library(local_root):
    heavy = ["pandas", "numpy", "pyarrow", "deltalake", "mlflow", "pyspark", "sklearn", "evidently",
             "dagster_pyspark", "dagster_mlflow", "dagster_databricks", "databricks.sdk"]
    out = _python(f"import json, sys, mlops_dagster.definitions; print(json.dumps([m for m in {heavy!r} if m in sys.modules]))")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_dagster_validates_the_local_definitions(local_root):
    (local_root / "dagster_home").mkdir(parents=True)
    out = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        capture_output=True, text=True, cwd=REPO, timeout=180,
        env={**os.environ, "DAGSTER_HOME": str(local_root / "dagster_home")},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "mlops_dagster" in out.stdout + out.stderr


@pytest.mark.parametrize("target", ["dev", "staging", "prod"])
def test_databricks_targets_refuse_clearly_until_their_resources_exist(target, local_root):
    with pytest.raises(ConfigError, match=f"target '{target}'.*MLOPS_TARGET=local"):
        build_definitions(load_settings(target))
