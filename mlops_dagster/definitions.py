"""The code location: Definitions for the target chosen by MLOPS_TARGET (default ``local``)."""

from __future__ import annotations

from dagster import Definitions, in_process_executor

from .assets.features import feature_assets
from .assets.governance import governance_assets
from .assets.inference import inference_assets
from .assets.ingestion import ingestion_assets
from .assets.monitoring import monitoring_assets
from .assets.registry import registry_assets
from .assets.serving import serving_assets
from .assets.training import training_assets
from .automation import automation_definitions
from .checks import quality_checks
from .governance.jobs import governance_jobs
from .jobs import build_jobs
from .quiet import quiet_libraries
from .resources import build_resources
from .settings import Settings, load_settings


def build_definitions(settings: Settings) -> Definitions:
    assets = [
        *ingestion_assets(settings), *feature_assets(settings), *training_assets(settings),
        *registry_assets(settings), *serving_assets(settings), *inference_assets(settings), *monitoring_assets(settings),
        *governance_assets(settings),
    ]
    jobs = build_jobs(settings)
    sensors, schedules = automation_definitions(settings, jobs)
    return Definitions(
        assets=assets,
        sensors=sensors,
        schedules=schedules,
        asset_checks=quality_checks(settings),
        jobs=[*jobs.all, *governance_jobs(settings)],
        resources=build_resources(settings),
        # One process per run: steps share one SparkSession instead of starting a JVM each.
        executor=in_process_executor,
    )


quiet_libraries()
defs = build_definitions(load_settings())
