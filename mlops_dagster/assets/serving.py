"""Stage `serving`: the model serving endpoint, rolled out to the champion (and challenger)."""

from dagster import (
    AssetExecutionContext,
    AutomationCondition,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from ..governance.audit import AuditLog
from ..resources.lakehouse import Lakehouse
from ..resources.registry import CHALLENGER, CHAMPION, ModelRegistry
from ..resources.serving import EndpointUpdateFailed, ServingBackend
from ..resources.step_launcher import StepLauncherParam
from ..settings import Settings
from .inference import NoChampionError
from .metadata import markdown_table


def _routes(config: dict | None) -> str:
    if not config:
        return "nothing"
    versions = {e["name"]: e["entity_version"] for e in config["served_entities"]}
    routes = [
        f"v{versions[r['served_model_name']]} {r['traffic_percentage']}%"
        for r in config["traffic_config"]["routes"]
    ]
    shadows = [f"v{versions[s['served_model_name']]} (shadow)" for s in config.get("shadow_routes") or []]
    return ", ".join(routes + shadows)


def roll_out(
    settings: Settings,
    serving: ServingBackend,
    registry: ModelRegistry,
    lakehouse: Lakehouse,
    log,
    run_id: str,
) -> tuple[dict, int, str]:
    """Move the endpoint to the champion (and validated challenger) by the configured strategy.

    Returns (endpoint state, steps applied, champion version); raises ``Failure`` saying what
    still serves when a step fails. Used by the endpoint asset and by the champion rollback job.
    """
    from ..serving.rollout import plan

    cfg, audit = settings.serving, AuditLog.of_run(lakehouse, settings, run_id)
    registry = registry.for_use_case(settings)
    champion = registry.by_alias(CHAMPION)
    if champion is None:
        raise NoChampionError(f"model {settings.mlflow.model_name} has no {CHAMPION!r} version to serve yet")
    challenger = registry.by_alias(CHALLENGER)
    candidate = None
    if (
        challenger is not None
        and str(challenger.version) != str(champion.version)
        and registry.is_validated(challenger)
    ):
        candidate = str(challenger.version)
    live = (serving.describe(cfg.endpoint) or {}).get("config")
    steps = plan(
        cfg.strategy,
        settings.mlflow.model_name,
        str(champion.version),
        candidate,
        live,
        cfg.canary_percent,
        cfg.workload_size,
        cfg.scale_to_zero,
    )
    for number, step in enumerate(steps, 1):
        log.info(f"rollout step {number}/{len(steps)}: {_routes(step)}")
        try:
            serving.apply(cfg.endpoint, step)
        except EndpointUpdateFailed as exc:
            now = serving.describe(cfg.endpoint)
            audit.record(
                "deploy_failed",
                cfg.endpoint,
                step=number,
                config=_routes(step),
                error=str(exc),
                still_serving=_routes((now or {}).get("config")),
            )
            raise Failure(
                description=f"rollout step {number}/{len(steps)} ({_routes(step)}) failed: {exc}. "
                f"The endpoint still serves: {_routes((now or {}).get('config'))}.",
                metadata={"endpoint": cfg.endpoint, "failed_step": number},
            ) from None
    state = serving.describe(cfg.endpoint)
    if steps:
        audit.record(
            "deployed",
            cfg.endpoint,
            strategy=cfg.strategy,
            traffic=_routes(state["config"]),
            champion_version=str(champion.version),
        )
    return state, len(steps), str(champion.version)


def serving_assets(settings: Settings):
    names = settings.names
    cfg = settings.serving
    strategies = {
        "blue_green": "a new champion is loaded beside the old one at 0 %, smoke-tested, switched to 100 %, "
        "and the old one retired",
        "canary": f"the champion takes {100 - cfg.canary_percent} % and a validated challenger {cfg.canary_percent} %",
        "shadow": "the champion answers; a validated challenger receives a mirror of every request, captured only",
    }

    @asset(
        name=names.endpoint,
        key_prefix=names.prefix,
        group_name=names.group("serving"),
        deps=[names.key("champion_model_version"), names.key("challenger_model_version")],
        kinds={"mlflow"},
        automation_condition=AutomationCondition.eager(),
        description=(
            f"Serving endpoint `{cfg.endpoint}` ({cfg.strategy.replace('_', '/')}: {strategies[cfg.strategy]}). "
            "Config changes are applied as desired state without dropping requests; the step waits until "
            "the endpoint is READY with the new config, and a failed load or smoke test leaves the old "
            "config serving. Every request is captured to the endpoint's inference table."
        ),
    )
    def serving_endpoint(
        context: AssetExecutionContext,
        serving: ServingBackend,
        registry: ModelRegistry,
        lakehouse: Lakehouse,
        step_launcher: StepLauncherParam,
    ):
        state, steps, champion = roll_out(
            settings, serving, registry, lakehouse, context.log, context.run.run_id
        )
        capture = (state.get("auto_capture_config") or {}).get("table_name_prefix")
        served = [
            {"served model": e["name"], "version": e["entity_version"], "state": e["state"]["deployment"]}
            for e in state["config"]["served_entities"]
        ]
        return MaterializeResult(
            metadata={
                "endpoint": cfg.endpoint,
                "url": MetadataValue.url(serving.invocation_url(cfg.endpoint)),
                "state": state["state"]["ready"],
                "config_version": state["config"]["config_version"],
                "strategy": cfg.strategy,
                "traffic": _routes(state["config"]),
                "served_models": markdown_table(served),
                "champion_version": champion,
                "rollout_steps": steps,
                "inference_table": capture or "none",
            }
        )

    return [serving_endpoint]
