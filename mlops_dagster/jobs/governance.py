"""Governance jobs: approve a model version; restore a table to an earlier Delta version; roll the
champion back and redeploy; apply the access matrix as Unity Catalog grants. Small op jobs with config (launch them from the UI's launchpad or
`mlops approve`); each checks the actor's role where access rules are enforced, and is audited.

Each op's body is a module-level function (the governance decisions it applies live in
``governance/``); ``governance_jobs`` only declares the ops and jobs of a use case."""

from datetime import UTC, datetime

from dagster import Config, Failure, MetadataValue, OpExecutionContext, Output, job, op

from ..assets.metadata import audit_log, markdown_table
from ..assets.serving import roll_out
from ..governance.access import authorize
from ..governance.approvals import approvable_version, record_approval
from ..governance.model_card import with_approval
from ..governance.promotion import champion_to_move_on, move_to_next_environment
from ..governance.recovery import is_registered, last_registration, restore_refusal, rollback_target
from ..governance.retention import restorable_from
from ..resources.lakehouse import Lakehouse
from ..resources.registry import CHAMPION, VALIDATION_TAG, ModelRegistry
from ..resources.serving import ServingBackend
from ..resources.step_launcher import StepLauncherParam
from ..settings import Settings


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


def approve(
    context: OpExecutionContext,
    settings: Settings,
    config: ApproveConfig,
    registry: ModelRegistry,
    lakehouse: Lakehouse,
) -> Output:
    """Record who approved which validated version, tag the version and add the approval to its card."""
    registry = registry.for_use_case(settings)
    version, refusal = approvable_version(registry, config.version, settings.mlflow.model_name)
    if refusal:
        raise Failure(refusal)
    obj = f"{settings.mlflow.model_name} v{version}"
    approver = authorize(settings, lakehouse, "approve", obj, context.run.run_id)
    now = record_approval(lakehouse, settings, version, approver, config.comment, context.run.run_id)
    registry.set_tags(version, {"approved_by": approver, "approved_at": now.isoformat()})
    card = registry.read_text(version, "model_card.md")
    if card is not None:
        registry.attach_text(
            version, with_approval(card, approver, now.isoformat(), config.comment), "model_card.md"
        )
    audit_log(context, settings).record("approved", obj, comment=config.comment)
    return Output(
        version, metadata={"model_version": version, "approver": approver, "comment": config.comment}
    )


def restore_table_version(
    context: OpExecutionContext, settings: Settings, config: RestoreTableConfig, lakehouse: Lakehouse
) -> Output:
    """Restore a table to the rows of an earlier Delta version (as a new version)."""
    name = config.table if config.table.count(".") == 2 else settings.table(config.table)
    authorize(settings, lakehouse, "restore", name, context.run.run_id)
    current = lakehouse.version(name)
    oldest = restorable_from(settings, name, lakehouse.history(name), datetime.now(UTC))
    refusal = restore_refusal(name, config.version, current, oldest)
    if refusal:
        raise Failure(refusal)
    info = lakehouse.restore(name, config.version)
    audit_log(context, settings).record(
        "restored",
        name,
        restored_version=config.version,
        previous_version=current,
        new_version=info.version,
        reason=config.reason,
    )
    context.log.info(f"restored {name} to the rows of version {config.version} (now version {info.version})")
    return Output(
        info.version,
        metadata={
            "table": name,
            "restored_version": config.version,
            "new_version": info.version,
            "rows": info.num_rows,
        },
    )


def rollback(
    context: OpExecutionContext,
    settings: Settings,
    config: RollbackConfig,
    registry: ModelRegistry,
    lakehouse: Lakehouse,
    serving: ServingBackend,
) -> Output:
    """Move the champion alias back to an earlier validated version, then redeploy the endpoint."""
    registry = registry.for_use_case(settings)
    champion = registry.by_alias(CHAMPION)
    if champion is None:
        raise Failure(f"{settings.mlflow.model_name} has no champion to roll back")
    target, problem = rollback_target(registry, champion, config.to_version)
    obj = f"{settings.mlflow.model_name} v{target or '?'}"
    audit = audit_log(context, settings)
    if problem:
        audit.record("refused", obj, attempted="rollback", reason=problem)
        raise Failure(f"rollback refused: {problem}")
    authorize(settings, lakehouse, "rollback", obj, context.run.run_id)
    registry.set_alias(CHAMPION, target)
    registry.set_tags(target, {"rolled_back_from": str(champion.version), "rollback_reason": config.reason})
    audit.record_events(
        [
            audit.event("rolled_back", obj, from_version=str(champion.version), reason=config.reason),
            audit.event("alias_changed", obj, alias=CHAMPION),
        ]
    )
    state, steps, _ = roll_out(settings, serving, registry, lakehouse, context.log, context.run.run_id)
    return Output(
        target,
        metadata={
            "champion_version": target,
            "rolled_back_from": str(champion.version),
            "endpoint_traffic": MetadataValue.text(str(state["config"]["traffic_config"])),
            "rollout_steps": steps,
        },
    )


def promote_to_next(
    context: OpExecutionContext,
    settings: Settings,
    config: PromoteConfig,
    registry: ModelRegistry,
    lakehouse: Lakehouse,
) -> Output:
    """Move this environment's validated champion on to the next environment."""
    registry = registry.for_use_case(settings)
    champion, refusal = champion_to_move_on(registry, settings, CHAMPION)
    if refusal:
        raise Failure(refusal)
    obj = f"{settings.mlflow.model_name} v{champion.version}"
    authorize(settings, lakehouse, "promote", obj, context.run.run_id)
    details, outcome = move_to_next_environment(registry, settings, champion.version, config.reason)
    audit_log(context, settings).record("promoted", obj, **details)
    context.log.info(outcome)
    return Output(outcome, metadata={"outcome": outcome, **{k: str(v) for k, v in details.items()}})


def restore_deleted_version(
    context: OpExecutionContext,
    settings: Settings,
    config: RestoreModelVersionConfig,
    registry: ModelRegistry,
    lakehouse: Lakehouse,
) -> Output:
    """Register a deleted version again, from the logged model its audited registration names."""
    registry = registry.for_use_case(settings)
    obj = f"{settings.mlflow.model_name} v{config.version}"
    if is_registered(registry, config.version):
        raise Failure(f"{obj} still exists: nothing to restore")
    authorize(settings, lakehouse, "restore", obj, context.run.run_id)
    audit = audit_log(context, settings)
    details = last_registration(lakehouse, audit.table, obj)
    if details is None:
        raise Failure(f"the audit log has no registration of {obj}: its logged model cannot be found")
    restored = registry.register(
        details["model_uri"],
        details["mlflow_run_id"],
        details.get("model_id"),
        tags={
            "restored_from_version": config.version,
            "restore_reason": config.reason,
            "training_set": details["training_set"],
            "training_set_version": str(details["training_set_version"]),
            VALIDATION_TAG: "unvalidated",
        },
        description=f"Restored {obj} (deleted) from its logged model {details['model_uri']}: {config.reason}",
    )
    audit.record(
        "restored",
        obj,
        new_version=str(restored.version),
        model_uri=details["model_uri"],
        reason=config.reason,
    )
    context.log.info(f"{obj} restored as version {restored.version}; validate it before promoting it")
    return Output(
        str(restored.version),
        metadata={"restored_from": config.version, "new_version": str(restored.version)},
    )


def apply_access_matrix(context: OpExecutionContext, settings: Settings, lakehouse: Lakehouse) -> Output:
    """Make the Unity Catalog grants of this target what the access matrix says."""
    from ..governance.grants import apply_grants, grant_plan
    from ..resources.databricks import workspace_client

    if settings.target == "local":
        raise Failure(
            "Unity Catalog grants exist on Databricks targets (MLOPS_TARGET=dev|staging|prod); "
            "on local, governance actions check roles themselves (governance.access.enforce)"
        )
    authorize(settings, lakehouse, "grant", settings.catalog, context.run.run_id)
    changes = apply_grants(workspace_client(settings.databricks), grant_plan(settings))
    audit = audit_log(context, settings)
    audit.record_events(
        [
            audit.event(
                "granted", c["securable"], principal=c["principal"], added=c["added"], revoked=c["revoked"]
            )
            for c in changes
        ]
    )
    context.log.info(
        f"{len(changes)} grant changes on {settings.catalog}" if changes else "grants already in place"
    )
    return Output(
        len(changes),
        metadata={
            "changes": markdown_table(changes) if changes else "none",
            "catalog": settings.catalog,
            "model": settings.mlflow.model_name,
        },
    )


def _single_op_job(name: str, description: str, the_op):
    @job(name=name, description=description)
    def single_op_job():
        the_op()

    return single_op_job


def _approve_job(settings: Settings):
    @op(
        name=settings.names.op("approve_model_version"),
        description="Records an approval (who, when, comment) for one validated model version: the record "
        "promotion to champion needs where governance.require_approval is on.",
    )
    def approve_model_version(
        context: OpExecutionContext,
        config: ApproveConfig,
        registry: ModelRegistry,
        lakehouse: Lakehouse,
        step_launcher: StepLauncherParam,
    ):
        return approve(context, settings, config, registry, lakehouse)

    return _single_op_job(
        settings.names.job("approve_model_version"),
        "Approve a validated model version for promotion (audited).",
        approve_model_version,
    )


def _restore_table_job(settings: Settings):
    @op(
        name=settings.names.op("restore_table"),
        description="RESTORE TABLE ... TO VERSION AS OF: the table's rows become those of an earlier "
        "version, as a new version (nothing of the later history is lost).",
    )
    def restore_table(
        context: OpExecutionContext,
        config: RestoreTableConfig,
        lakehouse: Lakehouse,
        step_launcher: StepLauncherParam,
    ):
        return restore_table_version(context, settings, config, lakehouse)

    return _single_op_job(
        settings.names.job("restore_table"),
        "Restore a Delta table to an earlier version (audited).",
        restore_table,
    )


def _rollback_job(settings: Settings):
    @op(
        name=settings.names.op("rollback_champion"),
        description="Moves the champion alias back to an earlier validated version and redeploys the "
        "serving endpoint to it.",
    )
    def rollback_champion(
        context: OpExecutionContext,
        config: RollbackConfig,
        registry: ModelRegistry,
        lakehouse: Lakehouse,
        serving: ServingBackend,
        step_launcher: StepLauncherParam,
    ):
        return rollback(context, settings, config, registry, lakehouse, serving)

    return _single_op_job(
        settings.names.job("rollback_champion"),
        "Roll the champion back to an earlier validated version and redeploy the endpoint (audited).",
        rollback_champion,
    )


def _promote_job(settings: Settings):
    @op(
        name=settings.names.op("promote_to_next_environment"),
        description="Moves this environment's validated champion on to the next environment: copies the "
        "version there (deploy_model) or records that the next environment retrains from this "
        "code (deploy_code).",
    )
    def promote_to_next_environment(
        context: OpExecutionContext,
        config: PromoteConfig,
        registry: ModelRegistry,
        lakehouse: Lakehouse,
        step_launcher: StepLauncherParam,
    ):
        return promote_to_next(context, settings, config, registry, lakehouse)

    return _single_op_job(
        settings.names.job("promote_to_next_environment"),
        "Move the validated champion to the next environment (deploy model or deploy code; audited).",
        promote_to_next_environment,
    )


def _restore_model_version_job(settings: Settings):
    @op(
        name=settings.names.op("restore_model_version"),
        description="Brings back a deleted model version: MLflow registries cannot undelete, so it is "
        "registered again from the logged model its registration recorded, as a new version.",
    )
    def restore_model_version(
        context: OpExecutionContext,
        config: RestoreModelVersionConfig,
        registry: ModelRegistry,
        lakehouse: Lakehouse,
        step_launcher: StepLauncherParam,
    ):
        return restore_deleted_version(context, settings, config, registry, lakehouse)

    return _single_op_job(
        settings.names.job("restore_model_version"),
        "Bring back a deleted model version from its logged model, as a new version (audited).",
        restore_model_version,
    )


def _access_grants_job(settings: Settings):
    @op(
        name=settings.names.op("apply_access_grants"),
        description="Applies the access-control matrix (governance.access) as Unity Catalog grants on this "
        "target's catalog, schema and registered model, for each role's account group: missing "
        "privileges are granted, privileges the matrix no longer gives are revoked.",
    )
    def apply_access_grants(
        context: OpExecutionContext, lakehouse: Lakehouse, step_launcher: StepLauncherParam
    ):
        return apply_access_matrix(context, settings, lakehouse)

    return _single_op_job(
        settings.names.job("apply_access_grants"),
        "Apply the access-control matrix as Unity Catalog grants (Databricks targets; audited).",
        apply_access_grants,
    )


def governance_jobs(settings: Settings):
    """The governance jobs of a use case, one op each (its body one of the functions above)."""
    return [
        _approve_job(settings),
        _promote_job(settings),
        _restore_table_job(settings),
        _restore_model_version_job(settings),
        _rollback_job(settings),
        _access_grants_job(settings),
    ]
