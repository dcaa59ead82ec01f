"""Stage `registry`: register the challenger, validate it, and promote it to champion if it earns it."""

from dataclasses import dataclass

from dagster import (
    AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetExecutionContext, AssetIn, MetadataValue, Output,
    asset,
)

from ..feature_store.registry import FEATURE_LOOKUPS_TAG
from ..governance.access import authorize
from ..governance.audit import AUDIT_TABLE, audit_event, record
from ..governance.approvals import is_approved
from ..resources.lakehouse import Lakehouse
from ..resources.registry import CHALLENGER, CHAMPION, VALIDATION_TAG, ModelRegistry
from ..resources.spark import SparkResource
from ..resources.step_launcher import StepLauncherParam
from ..settings import Settings, bound_text
from .metadata import markdown_table
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


def registry_assets(settings: Settings):
    names = settings.names
    val = settings.validation
    audit_table = settings.table(AUDIT_TABLE)

    def model_card(lakehouse: Lakehouse, trained: TrainedModel, version: str, results, run_id: str) -> str:
        from ..governance.model_card import render_model_card

        from ..governance.lineage import data_commit

        commit = data_commit(lakehouse, trained.training_set, trained.training_set_version, "features_table")
        training = {"training set": f"{trained.training_set} v{trained.training_set_version}"}
        for role in ("features", "labels"):
            if f"{role}_table" in commit:
                training[role] = f"{commit[f'{role}_table']} v{commit[f'{role}_version']}"
        lineage = {"MLflow run": trained.run_id, "model URI": trained.model_uri, "Dagster run": run_id,
                   "target": settings.target}
        return render_model_card(settings.mlflow.model_name, version, settings.governance, training,
                                 settings.features.columns, trained.metrics, results, lineage)

    bounds = ", ".join(f"{m} {bound_text(b.min, b.max)}" for m, b in val.thresholds.items())

    @asset(
        key_prefix=names.prefix, group_name=names.group("registry"), kinds={"mlflow"},
        ins={"trained": AssetIn(names.key(names.model))},
        check_specs=[AssetCheckSpec(
            VALIDATION_CHECK, asset=names.key("challenger_model_version"), blocking=True,
            description=f"Blocking: the challenger must meet every threshold on the holdout ({bounds}).",
        )] + ([AssetCheckSpec(
            APPROVAL_CHECK, asset=names.key("challenger_model_version"), blocking=True,
            description="Blocking: promotion on this target needs an approval record for this exact version "
                        "(`mlops approve --version N --comment ...` or approve_model_version_job).",
        )] if settings.governance.require_approval else []),
        description=(
            f"The newly trained model registered as a new version of `{settings.mlflow.model_name}` with the "
            f"`{CHALLENGER}` alias, tagged with its metrics and training data versions. Its validation "
            f"check is blocking: a challenger that misses a threshold ({bounds}) never reaches promotion, "
            "and the outcome is recorded on the version either way."
        ),
    )
    def challenger_model_version(
        context: AssetExecutionContext, trained: TrainedModel, registry: ModelRegistry, lakehouse: Lakehouse,
        step_launcher: StepLauncherParam,
    ):
        registry = registry.for_use_case(settings)
        from ..ml.evaluation import check_thresholds

        results = check_thresholds(trained.metrics, val.thresholds)
        passed = all(r.passed for r in results)
        summary = "; ".join(r.describe() for r in results)
        mv = registry.register(
            trained.model_uri, trained.run_id, trained.model_id,
            tags={
                "training_set": trained.training_set,
                "training_set_version": str(trained.training_set_version),
                FEATURE_LOOKUPS_TAG: trained.feature_lookups,
                "dagster_run_id": context.run.run_id,
                **{f"metric.{k}": f"{v:.6f}" for k, v in trained.metrics.items()},
            },
            description=f"Trained on {trained.training_set} v{trained.training_set_version}.",
        )
        registry.set_alias(CHALLENGER, mv.version)
        registry.set_tags(mv.version, {VALIDATION_TAG: "passed" if passed else "failed",
                                       "validation_details": summary})
        (context.log.info if passed else context.log.error)(f"validation of version {mv.version}: {summary}")
        card = model_card(lakehouse, trained, str(mv.version), results, context.run.run_id)
        registry.attach_text(mv.version, card, "model_card.md", description=(
            f"{settings.governance.use_case} Owner: {settings.governance.owner}. Trained on "
            f"{trained.training_set} v{trained.training_set_version}; validation "
            f"{'passed' if passed else 'FAILED'} ({summary}). Full card: model_card.md in run {trained.run_id}."
        ))
        obj = f"{settings.mlflow.model_name} v{mv.version}"
        record(lakehouse, audit_table, [
            audit_event("model_registered", obj, settings.target, context.run.run_id,
                        mlflow_run_id=trained.run_id, model_uri=trained.model_uri,
                        model_id=trained.model_id, training_set=trained.training_set,
                        training_set_version=trained.training_set_version),
            audit_event("model_validated", obj, settings.target, context.run.run_id,
                        outcome="passed" if passed else "failed", details=summary),
            audit_event("alias_changed", obj, settings.target, context.run.run_id, alias=CHALLENGER),
        ])
        version = RegisteredVersion(
            settings.mlflow.model_name, str(mv.version), trained.run_id, trained.metrics,
            trained.training_set, trained.training_set_version, passed,
        )
        yield Output(version, metadata={
            "model_name": version.name, "model_version": version.version, "alias": CHALLENGER,
            "mlflow_run_id": version.run_id, "validation": "passed" if passed else "failed",
            "model_card": MetadataValue.md(card),
        })
        yield AssetCheckResult(
            check_name=VALIDATION_CHECK, passed=passed, severity=AssetCheckSeverity.ERROR,
            metadata={
                "model_version": version.version,
                "results": markdown_table([{"metric": r.metric, "observed": round(r.observed, 4) if r.observed is not None else None,
                                            "min": r.min, "max": r.max, "passed": r.passed} for r in results]),
                **{f"{r.metric}_observed": MetadataValue.float(r.observed if r.observed is not None else float("nan")) for r in results},
            },
            description=summary,
        )
        if settings.governance.require_approval:
            approved = is_approved(lakehouse, settings, version.version)
            yield AssetCheckResult(
                check_name=APPROVAL_CHECK, passed=approved, severity=AssetCheckSeverity.ERROR,
                metadata={"model_version": version.version, "approved": approved},
                description="approved for promotion" if approved else (
                    f"version {version.version} has no approval record: an ml engineer runs `mlops approve "
                    f"--version {version.version} --comment '...'`, then materializes champion_model_version"),
            )

    @asset(
        key_prefix=names.prefix, group_name=names.group("registry"), kinds={"mlflow"},
        description=(
            f"The `{CHAMPION}` alias of `{settings.mlflow.model_name}`: moves to the challenger only if it passed "
            f"validation and is not worse than the current champion on the same holdout "
            f"({val.compare_metric}, allowed regression {val.max_regression}). Otherwise the champion stays, "
            "and the materialization says why."
        ),
    )
    def champion_model_version(
        context: AssetExecutionContext, challenger_model_version: RegisteredVersion,
        registry: ModelRegistry, lakehouse: Lakehouse, spark: SparkResource, step_launcher: StepLauncherParam,
    ):
        from ..ml.evaluation import compare_to_champion
        from ..ml.problem import problem_type
        from ..ml.training import LABEL

        registry = registry.for_use_case(settings)
        problem = problem_type(settings.problem_type)

        challenger = challenger_model_version
        champion = registry.by_alias(CHAMPION)
        champion_metrics = None
        if champion is not None and str(champion.version) != challenger.version:
            # The very holdout rows the challenger was judged on (same table version, seed, bound).
            _, holdout, _ = bounded_training_frames(lakehouse, spark, settings, challenger.training_set,
                                                    challenger.training_set_version)
            model = registry.load_sklearn(champion.version)
            champion_metrics = problem.evaluate(
                holdout[LABEL], problem.score(model, holdout[settings.features.columns]),
                settings.inference.decision_threshold,
            )
        # Promotion re-reads the recorded outcome: validation gates promotion even when this asset
        # runs without its check (e.g. a hand-picked selection in the UI).
        recorded = registry.validation_status(registry.version(challenger.version))
        if recorded != "passed":
            promote, reason = False, f"version {challenger.version} has not passed validation (status: {recorded})"
        elif settings.governance.require_approval and not is_approved(lakehouse, settings, challenger.version):
            promote, reason = False, (f"version {challenger.version} has no approval record "
                                      f"(mlops approve --version {challenger.version} --comment '...')")
        else:
            promote, reason = compare_to_champion(challenger.metrics, champion_metrics, val.compare_metric,
                                                  val.max_regression)
        obj = f"{settings.mlflow.model_name} v{challenger.version}"
        if promote:
            authorize(settings, lakehouse, "promote", obj, context.run.run_id)
            registry.set_alias(CHAMPION, challenger.version)
            registry.set_tags(challenger.version, {"promoted_by_run": context.run.run_id,
                                                   "previous_champion": champion.version if champion else ""})
            decision = f"promoted version {challenger.version} to {CHAMPION}: {reason}"
            events = [audit_event("promoted", obj, settings.target, context.run.run_id, reason=reason,
                                  previous_champion=str(champion.version) if champion else None),
                      audit_event("alias_changed", obj, settings.target, context.run.run_id, alias=CHAMPION)]
        else:
            decision = (f"kept version {champion.version if champion else 'none'} as {CHAMPION}; "
                        f"challenger {challenger.version} not promoted: {reason}")
            events = [audit_event("refused", obj, settings.target, context.run.run_id, attempted="promote",
                                  reason=reason)]
        record(lakehouse, audit_table, events)
        context.log.info(decision)
        current = registry.by_alias(CHAMPION)
        rows = [{"role": "challenger", "version": challenger.version,
                 **{k: round(v, 4) for k, v in challenger.metrics.items()}}]
        if champion_metrics is not None:
            rows.append({"role": "previous champion", "version": champion.version,
                         **{k: round(v, 4) for k, v in champion_metrics.items()}})
        return Output(
            str(current.version) if current else None,
            metadata={
                "model_name": settings.mlflow.model_name,
                "champion_version": str(current.version) if current else "none",
                "promoted": promote, "decision": decision,
                "holdout_metrics": markdown_table(rows),
            },
        )

    return [challenger_model_version, champion_model_version]
