"""The code location: every use case's Definitions for the target chosen by MLOPS_TARGET (default ``local``)."""

from __future__ import annotations

from dagster import Definitions

from .assets.cost import cost_assets
from .assets.data_quality import data_quality_assets
from .assets.estimation import estimation_assets
from .assets.features import feature_assets
from .assets.governance import governance_assets
from .assets.housekeeping import housekeeping_assets
from .assets.inference import inference_assets
from .assets.ingestion import ingestion_assets
from .assets.monitoring import monitoring_assets
from .assets.performance import performance_assets
from .assets.quality_checks import quality_checks
from .assets.registry import registry_assets
from .assets.serving import serving_assets
from .assets.training import training_assets
from .automation import automation_definitions, cost_definitions, failure_definitions, housekeeping_schedule
from .jobs.feature_store import feature_registry_job
from .jobs.governance import governance_jobs
from .jobs.housekeeping import housekeeping_job
from .jobs.lifecycle import build_jobs
from .resources import build_resources
from .runtime.executor import threaded_executor
from .runtime.quiet import quiet_libraries
from .settings import Project, load_project


def build_definitions(project: Project) -> Definitions:
    """Each use case's assets (under its key prefix), checks, jobs, sensors and schedules, on resources
    the project shares."""
    assets, checks, jobs, sensors, schedules, lifecycle_jobs = [], [], [], [], [], []
    for settings in project.use_cases:
        assets += [
            *ingestion_assets(settings),
            *feature_assets(settings),
            *training_assets(settings),
            *registry_assets(settings),
            *serving_assets(settings),
            *inference_assets(settings),
            *monitoring_assets(settings),
            *performance_assets(settings),
            *estimation_assets(settings),
            *data_quality_assets(settings),
            *housekeeping_assets(settings),
        ]
        checks += quality_checks(settings)
        use_case_jobs = build_jobs(settings)
        more_sensors, more_schedules = automation_definitions(settings, use_case_jobs)
        sensors += more_sensors
        housekeeping = housekeeping_job(settings)
        schedules += [*more_schedules, housekeeping_schedule(settings, housekeeping)]
        lifecycle_jobs += [*use_case_jobs.all, housekeeping]
        jobs += [*use_case_jobs.all, housekeeping, *governance_jobs(settings), feature_registry_job(settings)]
    cost_jobs, cost_sensors = cost_definitions(project)
    return Definitions(
        assets=[*assets, *governance_assets(project.default), *cost_assets(project)],
        sensors=[*sensors, *failure_definitions(project.default, lifecycle_jobs), *cost_sensors],
        schedules=schedules,
        asset_checks=checks,
        jobs=[*jobs, *cost_jobs],
        resources=build_resources(project),
        # One process per run, its independent steps at once in threads: they share one SparkSession
        # instead of starting a JVM each. Locally steps work in this process, so what a step imports
        # is imported ahead, while its upstream steps run; on Databricks they work on clusters.
        executor=threaded_executor.configured(
            {
                "max_concurrent": project.default.max_concurrent_steps,
                "import_ahead": project.default.target == "local",
            }
        ),
    )


quiet_libraries()
defs = build_definitions(load_project())
