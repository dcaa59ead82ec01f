"""Stage `registry`: register the challenger, validate it, and promote it to champion if it earns it.

Each asset's body is a module-level function: the validation outcome and the champion comparison
are computed in ``ml/``, the promotion decision and the model card in ``governance/``."""

from dataclasses import dataclass

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    MetadataValue,
    Output,
    asset,
)

from ..feature_store.registry import FEATURE_LOOKUPS_TAG
from ..governance.access import authorize
from ..governance.approvals import is_approved
from ..resources.lakehouse import Lakehouse
from ..resources.registry import CHALLENGER, CHAMPION, REGISTERED_BY_TAG, VALIDATION_TAG, ModelRegistry
from ..resources.spark import SparkResource
from ..resources.step_launcher import StepLauncherParam
from ..settings import Settings, bound_text
from .metadata import audit_log, markdown_table
from .training import TrainedModel, bounded_training_frames

VALIDATION_CHECK = "passes_validation"
APPROVAL_CHECK = "approved_for_promotion"


@dataclass(frozen=True)
class RegisteredVersion:
    """A registered model version and what validation said of it."""

    name: str
    version: str
    run_id: str
    metrics: dict[str, float]
    training_set: str
    training_set_version: int
    passed_validation: bool


def register_challenger(
    context: AssetExecutionContext,
    settings: Settings,
    trained: TrainedModel,
    registry: ModelRegistry,
    lakehouse: Lakehouse,
):
    """Register the trained model as the challenger, record its validation outcome and model card,
    then yield it and its checks."""
    from ..governance.registration import challenger_card, challenger_description
    from ..ml.evaluation import validate

    registry = registry.for_use_case(settings)
    for abandoned in registry.abandon_unvalidated(context.run.run_id):
        context.log.warning(
            f"version {abandoned} was registered by a run that ended before validating it: tagged abandoned"
        )
    validation = validate(trained.metrics, settings.validation.thresholds)
    mv = registry.register(
        trained.model_uri,
        trained.run_id,
        trained.model_id,
        tags=_registration_tags(trained, context.run.run_id),
        description=f"Trained on {trained.training_set} v{trained.training_set_version}.",
    )
    registry.set_alias(CHALLENGER, mv.version)
    registry.set_tags(
        mv.version, {VALIDATION_TAG: validation.status, "validation_details": validation.summary}
    )
    (context.log.info if validation.passed else context.log.error)(
        f"validation of version {mv.version}: {validation.summary}"
    )
    card = challenger_card(settings, lakehouse, trained, str(mv.version), validation, context.run.run_id)
    registry.attach_text(
        mv.version, card, "model_card.md", description=challenger_description(settings, trained, validation)
    )
    _audit_registration(context, settings, str(mv.version), trained, validation.status, validation.summary)
    version = RegisteredVersion(
        settings.mlflow.model_name,
        str(mv.version),
        trained.run_id,
        trained.metrics,
        trained.training_set,
        trained.training_set_version,
        validation.passed,
    )
    yield Output(
        version,
        metadata={
            "model_name": version.name,
            "model_version": version.version,
            "alias": CHALLENGER,
            "mlflow_run_id": version.run_id,
            "validation": validation.status,
            "model_card": MetadataValue.md(card),
        },
    )
    yield AssetCheckResult(
        check_name=VALIDATION_CHECK,
        passed=validation.passed,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "model_version": version.version,
            "results": markdown_table(validation.rows()),
            **{k: MetadataValue.float(v) for k, v in validation.observed().items()},
        },
        description=validation.summary,
    )
    if settings.governance.require_approval:
        yield _approval_check(settings, lakehouse, version.version)


def _audit_registration(
    context: AssetExecutionContext,
    settings: Settings,
    version: str,
    trained: TrainedModel,
    outcome: str,
    details: str,
) -> None:
    """Audit rows of a registration: the version registered (with its logged model, so it can be
    restored), its validation outcome and its new alias."""
    audit = audit_log(context, settings)
    obj = f"{settings.mlflow.model_name} v{version}"
    audit.record_events(
        [
            audit.event(
                "model_registered",
                obj,
                mlflow_run_id=trained.run_id,
                model_uri=trained.model_uri,
                model_id=trained.model_id,
                training_set=trained.training_set,
                training_set_version=trained.training_set_version,
            ),
            audit.event("model_validated", obj, outcome=outcome, details=details),
            audit.event("alias_changed", obj, alias=CHALLENGER),
        ]
    )


def _registration_tags(trained: TrainedModel, run_id: str) -> dict[str, str]:
    """What a registered version says of itself: its training data, feature lookups, run and metrics."""
    return {
        "training_set": trained.training_set,
        "training_set_version": str(trained.training_set_version),
        FEATURE_LOOKUPS_TAG: trained.feature_lookups,
        REGISTERED_BY_TAG: run_id,
        **{f"metric.{k}": f"{v:.6f}" for k, v in trained.metrics.items()},
    }


def _approval_check(settings: Settings, lakehouse: Lakehouse, version: str) -> AssetCheckResult:
    approved = is_approved(lakehouse, settings, version)
    return AssetCheckResult(
        check_name=APPROVAL_CHECK,
        passed=approved,
        severity=AssetCheckSeverity.ERROR,
        metadata={"model_version": version, "approved": approved},
        description="approved for promotion"
        if approved
        else (
            f"version {version} has no approval record: an ml engineer runs `mlops approve "
            f"--version {version} --comment '...'`, then materializes champion_model_version"
        ),
    )


def decide_champion(
    context: AssetExecutionContext,
    settings: Settings,
    challenger: RegisteredVersion,
    registry: ModelRegistry,
    lakehouse: Lakehouse,
    spark: SparkResource,
) -> Output:
    """Move the champion alias to the challenger if governance allows it, else keep it; say why."""
    from ..governance.promotion import decision, promotion_verdict
    from ..ml.evaluation import comparison_rows

    registry = registry.for_use_case(settings)
    champion = registry.by_alias(CHAMPION)
    champion_metrics = None
    if champion is not None and str(champion.version) != challenger.version:
        champion_metrics = _champion_metrics(
            settings, registry, lakehouse, spark, champion.version, challenger
        )
    promote, reason = promotion_verdict(
        registry, lakehouse, settings, challenger.version, challenger.metrics, champion_metrics
    )
    obj = f"{settings.mlflow.model_name} v{challenger.version}"
    audit = audit_log(context, settings)
    if promote:
        authorize(settings, lakehouse, "promote", obj, context.run.run_id)
        registry.set_alias(CHAMPION, challenger.version)
        registry.set_tags(
            challenger.version,
            {
                "promoted_by_run": context.run.run_id,
                "previous_champion": champion.version if champion else "",
            },
        )
        audit.record_events(
            [
                audit.event(
                    "promoted",
                    obj,
                    reason=reason,
                    previous_champion=str(champion.version) if champion else None,
                ),
                audit.event("alias_changed", obj, alias=CHAMPION),
            ]
        )
    else:
        audit.record("refused", obj, attempted="promote", reason=reason)
    outcome = decision(promote, challenger.version, champion.version if champion else None, reason, CHAMPION)
    context.log.info(outcome)
    current = registry.by_alias(CHAMPION)
    return Output(
        str(current.version) if current else None,
        metadata={
            "model_name": settings.mlflow.model_name,
            "champion_version": str(current.version) if current else "none",
            "promoted": promote,
            "decision": outcome,
            "holdout_metrics": markdown_table(
                comparison_rows(
                    challenger.version,
                    challenger.metrics,
                    champion.version if champion else None,
                    champion_metrics,
                )
            ),
        },
    )


def _champion_metrics(
    settings: Settings,
    registry: ModelRegistry,
    lakehouse: Lakehouse,
    spark: SparkResource,
    champion_version: str,
    challenger: RegisteredVersion,
) -> dict[str, float]:
    """The champion's metrics on the very holdout rows the challenger was judged on (same table
    version, seed and bound)."""
    from ..ml.problem import problem_type
    from ..ml.training import evaluate_holdout

    _, holdout, _ = bounded_training_frames(
        lakehouse, spark, settings, challenger.training_set, challenger.training_set_version
    )
    _, metrics = evaluate_holdout(
        problem_type(settings.problem_type),
        registry.load_sklearn(champion_version),
        holdout,
        settings.features.columns,
        settings.inference.decision_threshold,
    )
    return metrics


def registry_assets(settings: Settings):
    return [_challenger_asset(settings), _champion_asset(settings)]


def _challenger_asset(settings: Settings):
    names = settings.names
    bounds = ", ".join(f"{m} {bound_text(b.min, b.max)}" for m, b in settings.validation.thresholds.items())

    @asset(
        key_prefix=names.prefix,
        group_name=names.group("registry"),
        kinds={"mlflow"},
        ins={"trained": AssetIn(names.key(names.model))},
        check_specs=[
            AssetCheckSpec(
                VALIDATION_CHECK,
                asset=names.key("challenger_model_version"),
                blocking=True,
                description=f"Blocking: the challenger must meet every threshold on the holdout ({bounds}).",
            )
        ]
        + (
            [
                AssetCheckSpec(
                    APPROVAL_CHECK,
                    asset=names.key("challenger_model_version"),
                    blocking=True,
                    description="Blocking: promotion on this target needs an approval record for this exact version "
                    "(`mlops approve --version N --comment ...` or approve_model_version_job).",
                )
            ]
            if settings.governance.require_approval
            else []
        ),
        description=(
            f"The newly trained model registered as a new version of `{settings.mlflow.model_name}` with the "
            f"`{CHALLENGER}` alias, tagged with its metrics and training data versions. Its validation "
            f"check is blocking: a challenger that misses a threshold ({bounds}) never reaches promotion, "
            "and the outcome is recorded on the version either way."
        ),
    )
    def challenger_model_version(
        context: AssetExecutionContext,
        trained: TrainedModel,
        registry: ModelRegistry,
        lakehouse: Lakehouse,
        step_launcher: StepLauncherParam,
    ):
        yield from register_challenger(context, settings, trained, registry, lakehouse)

    return challenger_model_version


def _champion_asset(settings: Settings):
    names, val = settings.names, settings.validation

    @asset(
        key_prefix=names.prefix,
        group_name=names.group("registry"),
        kinds={"mlflow"},
        description=(
            f"The `{CHAMPION}` alias of `{settings.mlflow.model_name}`: moves to the challenger only if it passed "
            f"validation and is not worse than the current champion on the same holdout "
            f"({val.compare_metric}, allowed regression {val.max_regression}). Otherwise the champion stays, "
            "and the materialization says why."
        ),
    )
    def champion_model_version(
        context: AssetExecutionContext,
        challenger_model_version: RegisteredVersion,
        registry: ModelRegistry,
        lakehouse: Lakehouse,
        spark: SparkResource,
        step_launcher: StepLauncherParam,
    ):
        return decide_champion(context, settings, challenger_model_version, registry, lakehouse, spark)

    return champion_model_version
