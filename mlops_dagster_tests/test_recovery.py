"""Recovery jobs: a table restored to the exact earlier rows, a champion rolled back and redeployed,
each audited; a rollback to an unvalidated version is refused and audited."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from databricks.sdk import WorkspaceClient

from mlops_dagster.resources.registry import ModelRegistry

from .project import gateway_token, project_at

pytestmark = pytest.mark.integration

INGEST = ["raw_customers", "raw_customers_quarantine"]
TRAIN = [
    "churn_features",
    "churn_labels",
    "churn_training_set",
    "churn_model",
    "challenger_model_version",
    "champion_model_version",
    "churn_endpoint",
]


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("customerID").reset_index(drop=True)


def test_restore_brings_back_the_exact_earlier_rows(tmp_path):
    with project_at(tmp_path / "restore") as project:
        project.land(400, seed=1, name="a.csv")
        assert project.run("training_job", selection=INGEST).success
        table = project.table("raw_customers")
        version, before = (
            project.lakehouse.version(table),
            project.lakehouse.read(project.table("raw_customers")),
        )
        project.land(150, seed=2, name="b.csv")
        assert project.run("training_job", selection=INGEST).success
        assert len(project.lakehouse.read(table)) == 550

        result = project.defs.resolve_job_def(project.job("restore_table_job")).execute_in_process(
            instance=project.instance,
            run_config={
                "ops": {
                    "churn__restore_table": {
                        "config": {
                            "table": "raw_customers",
                            "version": version,
                            "reason": "b.csv was sent by mistake",
                        }
                    }
                }
            },
        )
        assert result.success
        pd.testing.assert_frame_equal(_ordered(project.lakehouse.read(table)), _ordered(before))
        assert project.lakehouse.version(table) == version + 2  # the restore is a new version
        audit = project.lakehouse.read(project.table("audit_log"))
        [event] = audit.loc[audit["action"] == "restored", "details"]
        assert f'"restored_version": {version}' in event and "sent by mistake" in event

        refused = project.defs.resolve_job_def(project.job("restore_table_job")).execute_in_process(
            instance=project.instance,
            raise_on_error=False,
            run_config={
                "ops": {
                    "churn__restore_table": {
                        "config": {"table": "raw_customers", "version": 99, "reason": "typo"}
                    }
                }
            },
        )
        assert not refused.success


def test_rollback_moves_the_alias_and_the_endpoint_back(tmp_path):
    with project_at(tmp_path / "rollback") as project:
        project.land(1500, seed=42)
        assert project.run("lifecycle_job", selection=INGEST + TRAIN).success
        promote = project.rebuild({"validation": {"max_regression": 1.0}})
        assert promote.run("training_job", selection=TRAIN[3:]).success
        assert str(project.registry.by_alias("champion").version) == "2"
        sdk = WorkspaceClient(
            host=f"http://127.0.0.1:{project.settings.serving.port}",
            token=gateway_token(project.settings),
            auth_type="pat",
        )
        rows = project.lakehouse.read(project.table("churn_features")).head(2)[
            project.settings.features.columns
        ]
        assert (
            sdk.serving_endpoints.query(
                "churn-endpoint", dataframe_records=rows.to_dict("records")
            ).served_model_name
            == "churn_model-2"
        )

        rollback = project.defs.resolve_job_def(project.job("rollback_champion_job"))
        result = rollback.execute_in_process(
            instance=project.instance,
            run_config={
                "ops": {"churn__rollback_champion": {"config": {"reason": "complaints about v2 scores"}}}
            },
        )
        assert result.success
        assert str(project.registry.by_alias("champion").version) == "1"
        assert (
            sdk.serving_endpoints.query(
                "churn-endpoint", dataframe_records=rows.to_dict("records")
            ).served_model_name
            == "churn_model-1"
        )
        audit = project.lakehouse.read(project.table("audit_log"))
        [rolled] = audit.loc[audit["action"] == "rolled_back"].to_dict("records")
        assert rolled["object"] == "churn_model v1" and '"from_version": "2"' in rolled["details"]

        # A version that failed validation can never be rolled back to.
        dummy = project.rebuild(
            {
                "training": {
                    "model": {"class": "sklearn.dummy.DummyClassifier", "params": {"strategy": "prior"}}
                }
            }
        )
        dummy.run("training_job", selection=["churn_model", "challenger_model_version"])
        result = rollback.execute_in_process(
            instance=project.instance,
            raise_on_error=False,
            run_config={
                "ops": {"churn__rollback_champion": {"config": {"to_version": "3", "reason": "try"}}}
            },
        )
        assert not result.success
        assert "rollback refused: version 3 has not passed validation" in project.failures(result)[0]
        audit = project.lakehouse.read(project.table("audit_log"))
        assert ((audit["action"] == "refused") & audit["details"].str.contains("rollback")).sum() == 1
        assert str(project.registry.by_alias("champion").version) == "1"


def _promote(project, reason="release 2026.11"):
    return project.defs.resolve_job_def(project.job("promote_to_next_environment_job")).execute_in_process(
        instance=project.instance,
        raise_on_error=False,
        run_config={"ops": {"churn__promote_to_next_environment": {"config": {"reason": reason}}}},
    )


def test_promotion_to_the_next_environment_copies_the_version_with_its_card_or_promotes_code(
    tmp_path, monkeypatch
):
    from mlflow import MlflowClient

    staging_model = "ml_staging_catalog.mlops.churn_model"
    with project_at(
        tmp_path / "promote", overrides={"governance": {"promotion": {"pattern": "deploy_model"}}}
    ) as project:
        assert not _promote(project).success  # nothing to promote yet
        project.land(1200, seed=5)
        assert project.run("training_job").success
        result = _promote(project)
        assert result.success, project.failures(result)
        client = MlflowClient(
            tracking_uri=project.settings.mlflow.tracking_uri,
            registry_uri=project.settings.mlflow.registry_uri,
        )
        copied = client.get_model_version_by_alias(staging_model, "challenger")
        source = project.registry.by_alias("champion")
        assert copied.tags["copied_from"] == f"churn_model/{source.version}"
        assert copied.tags["validation_status"] == "passed" and copied.description == source.description
        card = client.download_artifacts(copied.run_id, "model_card.md")
        assert Path(card).read_text().startswith(f"# Model card: churn_model version {source.version}")
        staging = ModelRegistry(
            tracking_uri=project.settings.mlflow.tracking_uri,
            registry_uri=project.settings.mlflow.registry_uri,
            model_name=staging_model,
        )
        rows = project.lakehouse.read(project.table("churn_features")).head(3)[
            project.settings.features.columns
        ]
        assert staging.load_sklearn(copied.version).predict_proba(rows).shape == (
            3,
            2,
        )  # a servable version there

        monkeypatch.setenv("MLOPS_CODE_VERSION", "abc1234")
        code = project.rebuild({"governance": {"promotion": {"pattern": "deploy_code"}}})
        assert _promote(code).success
        audit = project.lakehouse.read(project.table("audit_log"))
        promoted = audit[(audit["action"] == "promoted") & audit["details"].str.contains("to_target")]
        assert len(promoted) == 2
        assert any('"copied_to": "ml_staging_catalog.mlops.churn_model/1"' in d for d in promoted["details"])
        assert any('"code_version": "abc1234"' in d for d in promoted["details"])


def test_a_deleted_model_version_comes_back_from_its_logged_model(tmp_path):
    with project_at(tmp_path / "undelete") as project:
        project.land(1500, seed=42)
        assert project.run("training_job", selection=INGEST + TRAIN[:-1]).success
        rows = project.lakehouse.read(project.table("churn_features")).head(4)[
            project.settings.features.columns
        ]
        expected = project.registry.load_sklearn("1").predict_proba(rows)
        project.registry.client().delete_model_version("churn_model", "1")

        job = project.defs.resolve_job_def(project.job("restore_model_version_job"))
        result = job.execute_in_process(
            instance=project.instance,
            run_config={
                "ops": {
                    "churn__restore_model_version": {
                        "config": {"version": "1", "reason": "deleted by a cleanup script"}
                    }
                }
            },
        )
        assert result.success, project.failures(result)
        restored = project.registry.version("2")
        assert (
            restored.tags["restored_from_version"] == "1"
            and restored.tags["validation_status"] == "unvalidated"
        )
        assert (project.registry.load_sklearn("2").predict_proba(rows) == expected).all()
        audit = project.lakehouse.read(project.table("audit_log"))
        assert '"new_version": "2"' in audit.loc[audit["action"] == "restored", "details"].iloc[0]

        again = job.execute_in_process(
            instance=project.instance,
            raise_on_error=False,
            run_config={"ops": {"churn__restore_model_version": {"config": {"version": "2", "reason": "x"}}}},
        )
        assert not again.success and "still exists: nothing to restore" in project.failures(again)[0]
