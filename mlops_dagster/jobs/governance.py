"""Governance jobs: approve a model version; restore a table to an earlier Delta version; roll the
champion back and redeploy; apply the access matrix as Unity Catalog grants. Small op jobs with config (launch them from the UI's launchpad or
`mlops approve`); each checks the actor's role where access rules are enforced, and is audited."""

import os
from pathlib import Path

from dagster import Config, Failure, MetadataValue, OpExecutionContext, Output, job, op

from ..assets.metadata import markdown_table

from ..assets.serving import roll_out
from ..resources.lakehouse import Lakehouse
from ..resources.registry import CHAMPION, VALIDATION_TAG, ModelRegistry
from ..resources.serving import ServingBackend
from ..resources.step_launcher import StepLauncherParam
from ..settings import Settings
from ..governance.access import authorize
from ..governance.approvals import APPROVALS_TABLE
from ..governance.audit import AUDIT_TABLE, audit_event, record
from ..governance.model_card import with_approval


class RestoreTableConfig(Config):
    table: str
    """The table: its short name (e.g. <name>_features) or catalog.schema.table."""
    version: int
    """The Delta version to bring back (see the table's history)."""
    reason: str


class ApproveConfig(Config):
    version: str
    """The model version approved for promotion: its number, or an alias (``challenger``: the
    version a release brought, as CI/CD approves it)."""
    comment: str


class PromoteConfig(Config):
    reason: str
    """Why this champion moves on (release notes, ticket)."""


class RestoreModelVersionConfig(Config):
    version: str
    """The deleted version to bring back (its registration is in the audit log)."""
    reason: str


class RollbackConfig(Config):
    to_version: str = ""
    """The model version to make champion again. Empty: the version the current champion replaced."""
    reason: str


def code_version() -> str:
    """The code being promoted: MLOPS_CODE_VERSION (CI sets it), else the git commit, else unknown."""
    import subprocess

    if os.environ.get("MLOPS_CODE_VERSION"):
        return os.environ["MLOPS_CODE_VERSION"]
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def governance_jobs(settings: Settings):
    names = settings.names
    audit_table = settings.table(AUDIT_TABLE)

    @op(name=names.op("approve_model_version"),
        description="Records an approval (who, when, comment) for one validated model version: the record "
                    "promotion to champion needs where governance.require_approval is on.")
    def approve_model_version(context: OpExecutionContext, config: ApproveConfig, registry: ModelRegistry,
                              lakehouse: Lakehouse, step_launcher: StepLauncherParam):
        registry = registry.for_use_case(settings)
        import pandas as pd

        version = config.version
        if not version.isdigit():
            aliased = registry.by_alias(version)
            if aliased is None:
                raise Failure(f"{settings.mlflow.model_name} has no version with alias {version!r}: name a version "
                              "number, or the alias of an existing version")
            version = str(aliased.version)
        obj = f"{settings.mlflow.model_name} v{version}"
        if not registry.is_validated(registry.version(version)):
            raise Failure(f"{obj} has not passed validation: only validated versions can be approved")
        approver = authorize(settings, lakehouse, "approve", obj, context.run.run_id)
        now = pd.Timestamp.now(tz="UTC")
        lakehouse.write(settings.table(APPROVALS_TABLE), pd.DataFrame([{
            "model_name": settings.mlflow.model_name, "version": version, "approver": approver,
            "approved_at": now, "comment": config.comment, "target": settings.target,
            "dagster_run_id": context.run.run_id}]), "append", properties={"delta.appendOnly": "true"},
            description="Approvals of model versions for promotion: who, when, why.")
        registry.set_tags(version, {"approved_by": approver, "approved_at": now.isoformat()})
        card = registry.read_text(version, "model_card.md")
        if card is not None:
            registry.attach_text(version, with_approval(card, approver, now.isoformat(), config.comment),
                                 "model_card.md")
        record(lakehouse, audit_table, [audit_event("approved", obj, settings.target, context.run.run_id,
                                                    comment=config.comment)])
        return Output(version, metadata={"model_version": version, "approver": approver, "comment": config.comment})

    @op(name=names.op("restore_table"),
        description="RESTORE TABLE ... TO VERSION AS OF: the table's rows become those of an earlier "
                    "version, as a new version (nothing of the later history is lost).")
    def restore_table(context: OpExecutionContext, config: RestoreTableConfig, lakehouse: Lakehouse,
                      step_launcher: StepLauncherParam):
        name = config.table if config.table.count(".") == 2 else settings.table(config.table)
        authorize(settings, lakehouse, "restore", name, context.run.run_id)
        current = lakehouse.version(name)
        if not 0 <= config.version < current:
            raise Failure(f"{name} has versions 0..{current}; choose an earlier one than the current {current}")
        info = lakehouse.restore(name, config.version)
        record(lakehouse, audit_table, [audit_event(
            "restored", name, settings.target, context.run.run_id, restored_version=config.version,
            previous_version=current, new_version=info.version, reason=config.reason)])
        context.log.info(f"restored {name} to the rows of version {config.version} (now version {info.version})")
        return Output(info.version, metadata={"table": name, "restored_version": config.version,
                                              "new_version": info.version, "rows": info.num_rows})

    @op(name=names.op("rollback_champion"),
        description="Moves the champion alias back to an earlier validated version and redeploys the "
                    "serving endpoint to it.")
    def rollback_champion(context: OpExecutionContext, config: RollbackConfig, registry: ModelRegistry,
                          lakehouse: Lakehouse, serving: ServingBackend, step_launcher: StepLauncherParam):
        registry = registry.for_use_case(settings)
        champion = registry.by_alias(CHAMPION)
        if champion is None:
            raise Failure(f"{settings.mlflow.model_name} has no champion to roll back")
        target = config.to_version or champion.tags.get("previous_champion", "")
        obj = f"{settings.mlflow.model_name} v{target or '?'}"
        problem = None
        if not target:
            problem = f"version {champion.version} records no previous champion: name to_version"
        elif target == str(champion.version):
            problem = f"version {target} already is the champion"
        elif not registry.is_validated(registry.version(target)):
            problem = f"version {target} has not passed validation"
        if problem:
            record(lakehouse, audit_table, [audit_event("refused", obj, settings.target, context.run.run_id,
                                                        attempted="rollback", reason=problem)])
            raise Failure(f"rollback refused: {problem}")
        authorize(settings, lakehouse, "rollback", obj, context.run.run_id)
        registry.set_alias(CHAMPION, target)
        registry.set_tags(target, {"rolled_back_from": str(champion.version), "rollback_reason": config.reason})
        record(lakehouse, audit_table, [
            audit_event("rolled_back", obj, settings.target, context.run.run_id, from_version=str(champion.version),
                        reason=config.reason),
            audit_event("alias_changed", obj, settings.target, context.run.run_id, alias=CHAMPION),
        ])
        state, steps, _ = roll_out(settings, serving, registry, lakehouse, context.log, context.run.run_id)
        return Output(target, metadata={"champion_version": target, "rolled_back_from": str(champion.version),
                                        "endpoint_traffic": MetadataValue.text(str(state["config"]["traffic_config"])),
                                        "rollout_steps": steps})

    promotion = settings.governance.promotion

    @op(name=names.op("promote_to_next_environment"),
        description="Moves this environment's validated champion on to the next environment: copies the "
                    "version there (deploy_model) or records that the next environment retrains from this "
                    "code (deploy_code).")
    def promote_to_next_environment(context: OpExecutionContext, config: PromoteConfig,
                                    registry: ModelRegistry, lakehouse: Lakehouse, step_launcher: StepLauncherParam):
        registry = registry.for_use_case(settings)
        if promotion.next is None:
            raise Failure(f"target {settings.target} has no next environment (governance.promotion.next)")
        champion = registry.by_alias(CHAMPION)
        if champion is None:
            raise Failure(f"{settings.mlflow.model_name} has no champion to promote")
        obj = f"{settings.mlflow.model_name} v{champion.version}"
        if not registry.is_validated(champion):
            raise Failure(f"{obj} has not passed validation here: it cannot move on")
        authorize(settings, lakehouse, "promote", obj, context.run.run_id)
        destination = promotion.next
        details = {"pattern": promotion.pattern, "to_target": destination.target, "reason": config.reason}
        if promotion.pattern == "deploy_model":
            # Arrives as challenger: the next environment validates and promotes it with its own data.
            copied = registry.copy_to(champion.version, destination.model_name, destination.registry_uri)
            details.update(copied_to=f"{destination.model_name}/{copied.version}")
            outcome = f"copied {obj} to {destination.model_name} version {copied.version} ({destination.target})"
        else:
            details.update(code_version=code_version())
            outcome = (f"{obj} validated on {settings.target}: {destination.target} retrains from code "
                       f"{details['code_version']} (deploy_code)")
        record(lakehouse, audit_table, [audit_event("promoted", obj, settings.target, context.run.run_id, **details)])
        context.log.info(outcome)
        return Output(outcome, metadata={"outcome": outcome, **{k: str(v) for k, v in details.items()}})

    @job(name=names.job("promote_to_next_environment"),
         description="Move the validated champion to the next environment (deploy model or deploy code; audited).")
    def promote_to_next_environment_job():
        promote_to_next_environment()

    @op(name=names.op("restore_model_version"),
        description="Brings back a deleted model version: MLflow registries cannot undelete, so it is "
                    "registered again from the logged model its registration recorded, as a new version.")
    def restore_model_version(context: OpExecutionContext, config: RestoreModelVersionConfig,
                              registry: ModelRegistry, lakehouse: Lakehouse, step_launcher: StepLauncherParam):
        registry = registry.for_use_case(settings)
        import json

        from mlflow.exceptions import MlflowException

        obj = f"{settings.mlflow.model_name} v{config.version}"
        try:
            registry.version(config.version)
            raise Failure(f"{obj} still exists: nothing to restore")
        except MlflowException:
            pass  # deleted, as expected
        authorize(settings, lakehouse, "restore", obj, context.run.run_id)
        log = lakehouse.read(audit_table)
        registered = log[(log["action"] == "model_registered") & (log["object"] == obj)]
        if registered.empty:
            raise Failure(f"the audit log has no registration of {obj}: its logged model cannot be found")
        details = json.loads(registered.sort_values("event_time")["details"].iloc[-1])
        restored = registry.register(
            details["model_uri"], details["mlflow_run_id"], details.get("model_id"),
            tags={"restored_from_version": config.version, "restore_reason": config.reason,
                  "training_set": details["training_set"], "training_set_version": str(details["training_set_version"]),
                  VALIDATION_TAG: "unvalidated"},
            description=f"Restored {obj} (deleted) from its logged model {details['model_uri']}: {config.reason}",
        )
        record(lakehouse, audit_table, [audit_event(
            "restored", obj, settings.target, context.run.run_id, new_version=str(restored.version),
            model_uri=details["model_uri"], reason=config.reason)])
        context.log.info(f"{obj} restored as version {restored.version}; validate it before promoting it")
        return Output(str(restored.version), metadata={"restored_from": config.version,
                                                        "new_version": str(restored.version)})

    @op(name=names.op("apply_access_grants"),
        description="Applies the access-control matrix (governance.access) as Unity Catalog grants on this "
                    "target's catalog, schema and registered model, for each role's account group: missing "
                    "privileges are granted, privileges the matrix no longer gives are revoked.")
    def apply_access_grants(context: OpExecutionContext, lakehouse: Lakehouse, step_launcher: StepLauncherParam):
        from ..resources.databricks import workspace_client
        from ..governance.grants import apply_grants, grant_plan

        if settings.target == "local":
            raise Failure("Unity Catalog grants exist on Databricks targets (MLOPS_TARGET=dev|staging|prod); "
                          "on local, governance actions check roles themselves (governance.access.enforce)")
        authorize(settings, lakehouse, "grant", settings.catalog, context.run.run_id)
        changes = apply_grants(workspace_client(settings.databricks), grant_plan(settings))
        record(lakehouse, audit_table, [audit_event(
            "granted", c["securable"], settings.target, context.run.run_id, principal=c["principal"],
            added=c["added"], revoked=c["revoked"]) for c in changes])
        context.log.info(f"{len(changes)} grant changes on {settings.catalog}" if changes else "grants already in place")
        return Output(len(changes), metadata={"changes": markdown_table(changes) if changes else "none",
                                              "catalog": settings.catalog, "model": settings.mlflow.model_name})

    @job(name=names.job("apply_access_grants"),
         description="Apply the access-control matrix as Unity Catalog grants (Databricks targets; audited).")
    def apply_access_grants_job():
        apply_access_grants()

    @job(name=names.job("restore_model_version"),
         description="Bring back a deleted model version from its logged model, as a new version (audited).")
    def restore_model_version_job():
        restore_model_version()

    @job(name=names.job("approve_model_version"),
         description="Approve a validated model version for promotion (audited).")
    def approve_model_version_job():
        approve_model_version()

    @job(name=names.job("restore_table"),
         description="Restore a Delta table to an earlier version (audited).")
    def restore_table_job():
        restore_table()

    @job(name=names.job("rollback_champion"),
         description="Roll the champion back to an earlier validated version and redeploy the endpoint (audited).")
    def rollback_champion_job():
        rollback_champion()

    return [approve_model_version_job, promote_to_next_environment_job, restore_table_job,
            restore_model_version_job, rollback_champion_job, apply_access_grants_job]
