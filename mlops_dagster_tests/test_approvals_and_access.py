"""Approvals and access rules: promotion needs an approval for that exact version, only the roles
of the access matrix may approve, promote or restore, and every refusal is audited."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import AssetKey

from .project import project_at

pytestmark = pytest.mark.integration

GOVERNED = {
    "governance": {
        "require_approval": True,
        "access": {"enforce": True, "roles": {"ml_engineers": ["alice"], "data_scientists": ["bob"]}},
    }
}
TRAIN = [
    "raw_customers",
    "raw_customers_quarantine",
    "churn_features",
    "churn_labels",
    "churn_training_set",
    "churn_model",
    "challenger_model_version",
    "champion_model_version",
]


def _approve(project, version: str, comment: str):
    return project.defs.resolve_job_def(project.job("approve_model_version_job")).execute_in_process(
        instance=project.instance,
        raise_on_error=False,
        run_config={
            "ops": {"churn__approve_model_version": {"config": {"version": version, "comment": comment}}}
        },
    )


def test_promotion_waits_for_an_approval_from_an_allowed_role(tmp_path, monkeypatch):
    with project_at(tmp_path / "governed", overrides=GOVERNED) as project:
        monkeypatch.setenv("MLOPS_USER", "alice")
        project.land(1500, seed=42)
        result = project.run("training_job", selection=TRAIN)
        assert not result.success  # blocked: no approval yet
        checks = {check.check_name: check for check in project.check_evaluations(result)}
        assert checks["passes_validation"].passed and not checks["approved_for_promotion"].passed
        assert project.registry.by_alias("champion") is None
        assert str(project.registry.by_alias("challenger").version) == "1"

        monkeypatch.setenv("MLOPS_USER", "bob")  # a data scientist may not approve
        refused = _approve(project, "1", "looks good to me")
        assert not refused.success
        [failure] = project.failures(refused)
        assert "bob (roles: data_scientists) may not approve churn_model v1" in failure
        assert "roles that may: ml_engineers" in failure

        monkeypatch.setenv("MLOPS_USER", "alice")
        unknown = _approve(project, "release-candidate", "no such alias")
        assert "churn_model has no version with alias 'release-candidate'" in project.failures(unknown)[0]
        # By alias, as the release workflow approves the version it brought (resolved and recorded as v1).
        assert _approve(project, "challenger", "reviewed metrics and card").success
        [approval] = project.lakehouse.read(project.table("model_approvals")).to_dict("records")
        assert (approval["version"], approval["approver"], approval["comment"]) == (
            "1",
            "alice",
            "reviewed metrics and card",
        )
        assert project.registry.version("1").tags["approved_by"] == "alice"
        card = project.registry.read_text("1", "model_card.md")
        approvals = card.split("## Approvals\n")[1].split("##")[0]
        assert "approved by **alice**" in approvals and "reviewed metrics and card" in approvals
        assert "_none yet_" not in approvals

        assert project.run("training_job", selection=["champion_model_version"]).success
        assert str(project.registry.by_alias("champion").version) == "1"

        audit = project.lakehouse.read(project.table("audit_log"))
        refusals = audit[audit["action"] == "refused"]
        assert len(refusals) == 1 and refusals["actor"].iloc[0] == "bob"
        approved = audit[audit["action"] == "approved"]
        assert approved["actor"].tolist() == ["alice"] and approved["object"].tolist() == ["churn_model v1"]
        promoted = audit[audit["action"] == "promoted"]
        assert promoted["actor"].tolist() == ["alice"]

        report = (
            project.defs.resolve_implicit_global_asset_job_def()
            .get_subset(asset_selection={AssetKey("compliance_report")})
            .execute_in_process(
                instance=project.instance, run_config={"ops": {"compliance_report": {"config": {"days": 1}}}}
            )
        )
        assert report.success
        meta = project.metadata("compliance_report")
        assert (meta["count_promoted"], meta["count_approved"], meta["count_refused"]) == (1, 1, 1)
        text = Path(meta["report_path"]).read_text()
        assert (
            "| approved | churn_model v1 | alice |" in text and "| refused | churn_model v1 | bob |" in text
        )


def test_an_unknown_actor_may_not_restore_and_is_audited(tmp_path, monkeypatch):
    with project_at(tmp_path / "restore", overrides=GOVERNED) as project:
        project.land(200, seed=1)
        assert project.run("training_job", selection=TRAIN[:2]).success
        monkeypatch.setenv("MLOPS_USER", "mallory")
        result = project.defs.resolve_job_def(project.job("restore_table_job")).execute_in_process(
            instance=project.instance,
            raise_on_error=False,
            run_config={
                "ops": {
                    "churn__restore_table": {
                        "config": {"table": "raw_customers", "version": 0, "reason": "oops"}
                    }
                }
            },
        )
        assert not result.success
        assert "mallory (roles: none) may not restore" in project.failures(result)[0]
        audit = project.lakehouse.read(project.table("audit_log"))
        assert audit.loc[audit["action"] == "refused", "actor"].tolist() == ["mallory"]
        assert "restored" not in set(audit["action"])
