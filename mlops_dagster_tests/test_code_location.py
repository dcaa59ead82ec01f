"""The code location as a user meets it: loads fast, validates, shows the lifecycle in stage groups."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey

from mlops_dagster.definitions import build_definitions
from mlops_dagster.settings import load_project

REPO = Path(__file__).resolve().parents[1]


def _stages(use_case: str, dataset: str) -> dict[str, set[str]]:
    """Each use case's stage groups (`churn_training`, ...) hold its assets, under its key prefix."""
    assets = {
        "ingestion": [
            f"raw_{dataset}",
            f"raw_{dataset}_quarantine",
            f"{use_case}_ground_truth",
            f"{use_case}_ground_truth_quarantine",
        ],
        "features": [f"{use_case}_features", f"{use_case}_labels", f"{use_case}_features_online"],
        "training": [f"{use_case}_training_set", f"{use_case}_model"],
        "registry": ["challenger_model_version", "champion_model_version"],
        "serving": [f"{use_case}_endpoint"],
        "inference": [f"{use_case}_predictions"],
        "monitoring": [
            f"{use_case}_drift_report",
            f"{use_case}_model_performance",
            f"{use_case}_estimated_performance",
            f"{use_case}_data_quality",
        ],
        "housekeeping": [f"{use_case}_housekeeping"],
    }
    return {f"{use_case}_{stage}": {f"{use_case}/{a}" for a in names} for stage, names in assets.items()}


# The two shipped demos, and the project-wide governance group.
STAGES = {
    **_stages("churn", "customers"),
    **_stages("house_prices", "houses"),
    "governance": {"compliance_report", "cost_report"},
}


def test_assets_sit_in_stage_groups_with_descriptions(local_root):
    defs = build_definitions(load_project())
    graph = defs.resolve_asset_graph()
    groups: dict[str, set[str]] = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        groups.setdefault(node.group_name, set()).add(key.to_user_string())
        assert node.description and len(node.description) > 60, f"{key} needs a description for users"
    assert groups == STAGES


def test_jobs_and_checks_exist(local_root):
    defs = build_definitions(load_project())
    for job in ("lifecycle_job", "training_job", "batch_inference_job", "monitoring_job", "housekeeping_job"):
        assert defs.resolve_job_def(f"churn_{job}") is not None
    checks = {(k.asset_key.to_user_string(), k.name) for k in defs.resolve_asset_graph().asset_check_keys}
    assert {
        ("churn/raw_customers", "rows_meet_contract"),
        ("churn/churn_features", "key_is_unique_and_not_null"),
        ("churn/challenger_model_version", "passes_validation"),
        ("churn/churn_drift_report", "no_dataset_drift"),
        ("churn/churn_model_performance", "no_performance_decay"),
        ("churn/churn_model_performance", "no_slice_disparity"),
        ("house_prices/house_prices_model_performance", "no_performance_decay"),
    } <= checks
    # The regression demo judges no slices: it has no fairness check.
    assert ("house_prices/house_prices_model_performance", "no_slice_disparity") not in checks
    validation = defs.resolve_assets_def(AssetKey(["churn", "challenger_model_version"])).check_specs
    assert [spec.blocking for spec in validation] == [True]


def _python(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


@pytest.mark.parametrize("target", ["local", "dev"])
def test_loading_the_code_location_imports_no_heavy_library(target, local_root):
    heavy = [
        "pandas",
        "numpy",
        "pyarrow",
        "deltalake",
        "mlflow",
        "pyspark",
        "sklearn",
        "evidently",
        "dagster_pyspark",
        "dagster_mlflow",
        "dagster_databricks",
        "databricks.sdk",
    ]
    out = _python(
        f"import json, sys, mlops_dagster.definitions; print(json.dumps([m for m in {heavy!r} if m in sys.modules]))",
        {"MLOPS_TARGET": target},
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize("target", ["local", "dev", "staging", "prod"])
def test_dagster_validates_the_definitions_of_every_target(target, local_root):
    """`dagster definitions validate` per target, with two use cases (the demo and a second one), and
    no Databricks credentials in the environment: credentials are needed to run steps, not to load
    the code location."""
    from .support.subscribers import SUBSCRIBERS

    home = local_root / f"dagster_home_{target}"
    home.mkdir(parents=True)
    config = local_root / "two_use_cases.yaml"
    config.write_text(yaml.safe_dump({"use_cases": {"cancellation": SUBSCRIBERS}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABRICKS_")}
    out = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=180,
        env={**env, "DAGSTER_HOME": str(home), "MLOPS_TARGET": target, "MLOPS_CONFIG": str(config)},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Validation successful for code location mlops_dagster" in out.stdout + out.stderr


@pytest.mark.parametrize("target", ["dev", "prod"])
def test_databricks_targets_bind_the_step_launcher_and_unity_catalog(target, local_root):
    from mlops_dagster.resources.unity_catalog import UnityCatalogLakehouse

    project = load_project(target)
    settings = project.default
    defs = build_definitions(project)
    assert isinstance(defs.resources["lakehouse"], UnityCatalogLakehouse)
    assert settings.mlflow.registry_uri == "databricks-uc"
    assert settings.mlflow.model_name == f"ml_{target}_catalog.mlops.churn_model"
    # Every asset that touches data asks for the step launcher, so all of it runs on the cluster.
    for assets_def in defs.assets:
        assert "step_launcher" in assets_def.required_resource_keys, assets_def.keys


def test_a_run_logs_to_its_use_case_experiment():
    from dagster import AssetKey
    from dagster._core.storage.dagster_run import DagsterRun

    from mlops_dagster.resources.mlflow_tracking import run_use_cases

    use_cases = ["churn", "house_prices"]
    tagged = DagsterRun(job_name="house_prices_training_job", tags={"mlops/use_case": "house_prices"})
    assert run_use_cases(tagged, use_cases) == ["house_prices"]
    picked = DagsterRun(job_name="__ASSET_JOB", asset_selection=frozenset({AssetKey(["house_prices", "x"])}))
    assert run_use_cases(picked, use_cases) == ["house_prices"]
    mixed = DagsterRun(
        job_name="__ASSET_JOB",
        asset_selection=frozenset(
            {AssetKey(["house_prices", "x"]), AssetKey(["churn", "y"]), AssetKey("compliance_report")}
        ),
    )
    assert run_use_cases(mixed, use_cases) == ["churn", "house_prices"]  # the first one's experiment, said
    assert run_use_cases(DagsterRun(job_name="record_run_failure_job"), use_cases) == ["churn"]


def test_an_instance_pool_replaces_the_node_type_in_the_cluster_a_step_asks_for(local_root):
    from mlops_dagster.resources.databricks import submit_run_config

    settings = load_project("dev").default
    pooled = settings.model_copy(
        update={
            "databricks": settings.databricks.model_copy(
                update={
                    "cluster": settings.databricks.cluster.model_copy(
                        update={"instance_pool_id": "pool-0123"}
                    )
                }
            )
        }
    )
    for config, nodes in (
        (submit_run_config(settings), {"node_types": {"node_type_id": "i3.xlarge"}}),
        (submit_run_config(pooled), {"instance_pool_id": "pool-0123"}),
    ):
        assert config["cluster"]["new"]["nodes"] == nodes
        assert ("aws_attributes" in config["cluster"]["new"]) == (
            "node_types" in nodes
        )  # a pool sets its own


def test_predictions_and_features_are_late_past_their_freshness_window(tmp_path, local_root):
    """Each use case's predictions and feature table carry a freshness policy (the UI shows them late
    past it), from `automation.freshness`; null removes it."""
    from datetime import timedelta

    def windows(project) -> dict[str, timedelta]:
        graph = build_definitions(project).get_repository_def().asset_graph
        return {
            key.to_user_string(): graph.get(key).freshness_policy.fail_window.to_timedelta()
            for key in graph.get_all_asset_keys()
            if graph.get(key).freshness_policy is not None
        }

    assert windows(load_project()) == {
        "churn/churn_predictions": timedelta(hours=2),
        "churn/churn_features": timedelta(hours=26),
        "house_prices/house_prices_predictions": timedelta(hours=2),
        "house_prices/house_prices_features": timedelta(hours=26),
    }
    config = tmp_path / "late.yaml"
    config.write_text(
        "use_cases:\n  churn: {automation: {freshness: {predictions_hours: 0.5, features_hours: null}}}\n"
    )
    assert windows(load_project(extra_file=config)) == {
        "churn/churn_predictions": timedelta(minutes=30),
        "house_prices/house_prices_predictions": timedelta(hours=2),
        "house_prices/house_prices_features": timedelta(hours=26),
    }
