"""Use cases as Dagster Components: ``type: mlops_dagster.UseCase`` in a project's ``defs.yaml``.

A ``UseCase``'s attributes are the keys of one ``use_cases.<name>`` entry of the configuration, plus
``name``; they are laid over the shared defaults (the package's ``conf/base.yaml`` and
``conf/<target>.yaml``, then the project settings file) and checked by the same schema, with the same
errors, as the code location's use cases. The project settings file is ``MLOPS_CONFIG`` when set, else
``mlops.yaml`` at the Dagster project's root when it exists: it holds what the project shares
(``catalog``, ``schema``, ``spark``, ``databricks``, ``mlflow`` and ``serving`` addresses, the online
store) and defaults for every use case, never ``use_cases``.

Each use case builds its Definitions with ``use_case_definitions``; the first ``UseCase`` of the
project adds ``project_definitions`` for all of them (resources, executor, governance and cost
assets, failure sensor), as the code location (``definitions.py``) does with the same functions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dagster import (
    Component,
    ComponentLoadContext,
    Definitions,
    Model,
    Resolvable,
    Scaffolder,
    ScaffoldRequest,
    scaffold_component,
    scaffold_with,
)
from pydantic import BaseModel, Field, PrivateAttr, create_model

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
from .settings import CONF_DIR, PROJECT_WIDE, Project, Settings, load_use_case

PROJECT_SETTINGS_FILE = "mlops.yaml"


def use_case_definitions(settings: Settings) -> Definitions:
    """One use case's assets (under its key prefix), checks, jobs, sensors and schedules."""
    use_case_jobs, housekeeping = build_jobs(settings), housekeeping_job(settings)
    sensors, schedules = automation_definitions(settings, use_case_jobs)
    return Definitions(
        assets=[
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
        ],
        asset_checks=quality_checks(settings),
        jobs=[*use_case_jobs.all, housekeeping, *governance_jobs(settings), feature_registry_job(settings)],
        sensors=sensors,
        schedules=[*schedules, housekeeping_schedule(settings, housekeeping)],
    )


def project_definitions(project: Project) -> Definitions:
    """What every use case of ``project`` shares: the resources, the executor, the governance and cost
    assets, the failure sensor (watching every use case's lifecycle jobs) and the cost sensor."""
    lifecycle_jobs = [
        job
        for settings in project.use_cases
        for job in [*build_jobs(settings).all, housekeeping_job(settings)]
    ]
    cost_jobs, cost_sensors = cost_definitions(project)
    return Definitions(
        assets=[*governance_assets(project.default), *cost_assets(project)],
        sensors=[*failure_definitions(project.default, lifecycle_jobs), *cost_sensors],
        jobs=cost_jobs,
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


def build_definitions(project: Project) -> Definitions:
    """Each use case's Definitions on what the project shares."""
    return Definitions.merge(
        *(use_case_definitions(settings) for settings in project.use_cases), project_definitions(project)
    )


def _attribute(key: str, field: Any) -> tuple[Any, Any]:
    """A use case's key as a component attribute: sections stay mappings (what they leave out
    comes from the shared defaults, so the full check happens on the merged settings)."""
    section = isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
    annotation = dict[str, Any] if section else field.annotation
    if key == "name":
        return annotation, Field(description=field.description)
    return annotation | None, Field(None, description=field.description)


# Every key of Settings that a use case may set: the wholly project-wide ones are left out.
_UseCaseAttributes = create_model(
    "UseCaseAttributes",
    __base__=Model,
    **{
        field.alias or key: _attribute(key, field)
        for key, field in Settings.model_fields.items()
        if PROJECT_WIDE.get(field.alias or key, ()) is not None
    },
)


def project_settings_file(project_root: Path | None) -> Path | None:
    """``MLOPS_CONFIG``, else ``mlops.yaml`` at the project's root when there is one."""
    if os.environ.get("MLOPS_CONFIG"):
        return Path(os.environ["MLOPS_CONFIG"])
    candidate = Path(project_root or ".") / PROJECT_SETTINGS_FILE
    return candidate if candidate.is_file() else None


class UseCaseScaffolder(Scaffolder):
    """``dg scaffold defs mlops_dagster.UseCase NAME``: a ``defs.yaml`` holding the first use case of
    the package's configuration (``conf/base.yaml``: the telco demo) under the name ``NAME`` (the
    last part of the path), which runs as written on the demo's landing files
    (``mlops generate --landing .mlops/landing/NAME``)."""

    def scaffold(self, request: ScaffoldRequest) -> None:
        import yaml

        use_cases = yaml.safe_load((CONF_DIR / "base.yaml").read_text())["use_cases"]
        demo = next(iter(use_cases.values()))
        scaffold_component(request, {"name": request.target_path.name, **demo})


@scaffold_with(UseCaseScaffolder)
class UseCase(Component, Resolvable, _UseCaseAttributes):
    """One ML use case of the MLOps lifecycle: its raw, feature, training, registry, serving,
    inference and monitoring assets, their checks, jobs, sensors and schedules."""

    _declared_in: Path | None = PrivateAttr(None)
    _project_root: Path | None = PrivateAttr(None)
    _settings: Settings | None = PrivateAttr(None)

    @classmethod
    def load(cls, attributes: BaseModel | None, context: ComponentLoadContext) -> UseCase:
        component = super().load(attributes, context)
        component._declared_in = context.path / "defs.yaml" if context.path.is_dir() else context.path
        component._project_root = context.project_root
        return component

    def settings(self) -> Settings:
        """This use case's settings, complete (checked once, then kept)."""
        if self._settings is None:
            section = self.model_dump(by_alias=True, exclude_none=True, exclude={"name"})
            self._settings = load_use_case(
                self.name,
                section,
                declared_in=self._declared_in or "the UseCase component",
                project_file=project_settings_file(self._project_root),
            )
        return self._settings

    def build_defs(self, context: ComponentLoadContext) -> Definitions:
        use_cases = context.component_tree.get_all_components(of_type=UseCase) or [self]
        project = Project(use_cases=[use_case.settings() for use_case in use_cases])
        own = use_case_definitions(self.settings())
        if use_cases[0] is not self:
            return own
        return Definitions.merge(own, project_definitions(project))
