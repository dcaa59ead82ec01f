"""`mlops bootstrap` against the workspace emulator (Unity Catalog objects, folders, secret names)
and a real MLflow store: what it creates, what it refuses, what a second run does. The grants job
it runs when grants are missing is exercised on the emulator's clusters in
test_databricks_target.py; here it is a recorded callback."""

from __future__ import annotations

import uuid

import pytest
import yaml
from mlflow.tracking import MlflowClient

from mlops_dagster.governance.bootstrap import VOLUMES, BootstrapError, bootstrap, report
from mlops_dagster.resources.databricks import workspace_client
from mlops_dagster.settings import load_project

from .support.databricks_emulator import DatabricksEmulator

TOKEN = f"dapi-emulated-{uuid.uuid4().hex}"
EXPERIMENT = "/Users/ci@example.com/mlops_dagster/churn"


@pytest.fixture
def dev(tmp_path, local_root, monkeypatch):
    """The `dev` project (two secrets on the clusters) and an emulated workspace for it."""
    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    config = tmp_path / "dev.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "root": str(tmp_path / "files"),
                "mlflow": {
                    "tracking_uri": tracking,
                    "registry_uri": tracking,
                    "experiment": EXPERIMENT,
                    "model_name": "churn_model",
                },
                "databricks": {
                    "secrets_to_env_variables": [
                        {"name": "DATABRICKS_TOKEN", "scope": "mlops", "key": "token"},
                        {"name": "MLOPS_ONLINE_STORE_DSN", "scope": "online", "key": "dsn"},
                    ]
                },
            }
        )
    )
    with DatabricksEmulator(tmp_path / "emulator", TOKEN) as emulator:
        monkeypatch.setenv("DATABRICKS_HOST", emulator.url)
        monkeypatch.setenv("DATABRICKS_TOKEN", TOKEN)
        project = load_project("dev", extra_file=config)
        yield (
            project,
            emulator,
            workspace_client(project.default.databricks),
            MlflowClient(tracking, tracking),
        )


def test_bootstrap_creates_what_dev_needs_and_a_second_run_changes_nothing(dev):
    project, emulator, workspace, mlflow = dev
    emulator.add_catalog("ml_dev_catalog")
    emulator.put_secret("mlops", "token", TOKEN)
    emulator.put_secret("online", "dsn", "postgresql://u:never-printed@db:5432/features")
    grants_jobs: list[str] = []

    def apply_grants(settings) -> bool:
        grants_jobs.append(settings.name)
        return True

    outcomes = bootstrap(project, workspace, apply_grants)
    created = {(o.kind, o.name) for o in outcomes if o.result == "created"}
    assert created == {
        ("schema", "ml_dev_catalog.mlops"),
        ("experiment", EXPERIMENT),
        ("registered model", "churn_model"),
        ("database instance", "mlops-dev-features"),  # the online store, on Lakebase
        *(("volume", f"ml_dev_catalog.mlops.{v}") for v in VOLUMES),
    }
    instance = emulator.database_instances["mlops-dev-features"]
    assert (instance["capacity"], instance["state"]) == ("CU_1", "AVAILABLE")  # waited for
    assert set(emulator.uc_volumes) == {f"ml_dev_catalog.mlops.{v}" for v in VOLUMES}
    assert emulator.schemas["ml_dev_catalog.mlops"]["properties"] == {"mlops_dagster.format": "2"}
    assert {v["volume_type"] for v in emulator.uc_volumes.values()} == {"MANAGED"}
    assert "/Users/ci@example.com/mlops_dagster" in emulator.folders  # the experiment's folder, made first
    assert mlflow.get_experiment_by_name(EXPERIMENT) is not None
    assert mlflow.get_registered_model("churn_model").tags["mlops.use_case"] == "churn"
    assert [o.result for o in outcomes if o.kind == "secret"] == ["exists", "exists"]
    assert grants_jobs == ["churn"]  # no group held its privileges yet: the grants job ran
    text, ready = report("dev", outcomes)
    assert ready and "target dev: ready (9 changes made)" in text
    assert "never-printed" not in text  # secret names are read, never values

    # The grants the job would have made are in place now; everything else exists already.
    from mlops_dagster.governance.grants import apply_grants as grant
    from mlops_dagster.governance.grants import grant_plan

    grant(workspace, grant_plan(project.default))
    calls = len(emulator.calls)
    again = bootstrap(
        project, workspace, apply_grants, use_case="churn"
    )  # `--use-case churn`: the same one here
    assert {o.result for o in again} == {"exists", "in place"} and grants_jobs == ["churn"]
    assert not [c for c in emulator.calls[calls:] if c[0] != "GET"]  # a second run only reads
    text, ready = report("dev", again)
    assert ready and text.endswith("target dev: ready, nothing changed (everything was already in place)")


def test_a_missing_catalog_stops_bootstrap_and_missing_secrets_say_how_to_add_them(dev):
    project, emulator, workspace, _ = dev
    with pytest.raises(
        BootstrapError,
        match=r"catalog ml_dev_catalog does not exist: a metastore admin creates "
        r"it \(CREATE CATALOG ml_dev_catalog\)",
    ):
        bootstrap(project, workspace, lambda settings: True)
    assert emulator.schemas == {} and emulator.uc_volumes == {}  # nothing made before the refusal

    emulator.add_catalog("ml_dev_catalog")
    emulator.put_secret("mlops", "other-key", "x")  # scope mlops exists without `token`; no scope `online`
    from databricks.sdk.service.database import DatabaseInstance

    workspace.database.create_database_instance(DatabaseInstance(name="mlops-dev-features"))
    emulator.database_instances["mlops-dev-features"]["state"] = "STOPPED"  # someone stopped it
    outcomes = bootstrap(project, workspace, lambda settings: False)  # and the grants job fails
    [instance] = [o for o in outcomes if o.kind == "database instance"]
    assert (instance.result, instance.detail) == (
        "failed",
        "STOPPED, not AVAILABLE: the online publish needs it running (start it, then run bootstrap again)",
    )
    missing = {o.name: o.detail for o in outcomes if o.result == "missing"}
    assert missing == {
        "mlops/token": "databricks secrets put-secret mlops token (the clusters read it as DATABRICKS_TOKEN)",
        "online/dsn": "scope online does not exist: databricks secrets create-scope online, then databricks "
        "secrets put-secret online dsn (the clusters read it as MLOPS_ONLINE_STORE_DSN)",
    }
    [grants] = [o for o in outcomes if o.kind == "grants"]
    assert grants.result == "failed" and "churn_apply_access_grants_job failed" in grants.detail
    text, ready = report("dev", outcomes)
    assert not ready and "target dev: not ready, 4 missing or failed" in text


def test_bootstrap_is_for_databricks_targets(local_root):
    with pytest.raises(BootstrapError, match="bootstrap is for Databricks targets"):
        bootstrap(load_project("local"), workspace=None, apply_grants=lambda settings: True)
