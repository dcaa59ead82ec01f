"""A whole mlops_dagster project in a temporary folder: settings, definitions, a Dagster instance."""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml
from dagster import AssetKey, DagsterInstance

from mlops_dagster.cli import write_demo
from mlops_dagster.definitions import build_definitions
from mlops_dagster.resources.local_lakehouse import LocalLakehouse
from mlops_dagster.resources.registry import ModelRegistry
from mlops_dagster.serving.server import stop as stop_gateway
from mlops_dagster.settings import Project as UseCases
from mlops_dagster.settings import Settings, deep_merge, load_project


@dataclass
class Project:
    """One use case of the project (``settings``; the first by default) with the project's
    definitions and instance: ``use_case(name)`` gives the same project seen from another."""

    root: Path
    settings: Settings
    defs: object
    instance: DagsterInstance
    use_cases: UseCases

    def use_case(self, name: str) -> Project:
        return Project(self.root, self.use_cases.use_case(name), self.defs, self.instance, self.use_cases)

    def key(self, asset: str) -> AssetKey:
        """This use case's asset ``asset`` (or a project-wide one, such as compliance_report)."""
        mine = AssetKey(self.settings.names.key(asset))
        return mine if self.defs.get_repository_def().asset_graph.has(mine) else AssetKey(asset)

    def job(self, name: str) -> str:
        """A job's full name: ``lifecycle`` / ``lifecycle_job`` -> ``<use case>_lifecycle_job``."""
        jobs = {j.name for j in self.defs.get_repository_def().get_all_jobs()}
        return name if name in jobs else self.settings.names.job(name.removesuffix("_job"))

    def op(self, name: str) -> str:
        return self.settings.names.op(name)

    @property
    def lakehouse(self) -> LocalLakehouse:
        return LocalLakehouse(root=str(self.settings.root / "lakehouse"))

    @property
    def registry(self) -> ModelRegistry:
        m = self.settings.mlflow
        return ModelRegistry(tracking_uri=m.tracking_uri, registry_uri=m.registry_uri).for_model(m.model_name)

    def table(self, name: str) -> str:
        return self.settings.table(name)

    def land(self, rows: int, seed: int, drifted: bool = False, name: str | None = None) -> Path:
        """A landing file of this use case's demo (the telco one for a use case without a demo)."""
        return write_demo(self.settings, rows, seed, drifted, name)

    def run(
        self, job_name: str = "lifecycle_job", selection: list[str] | None = None, tags: dict | None = None
    ):
        job = self.defs.resolve_job_def(self.job(job_name))
        if selection:
            job = job.get_subset(asset_selection={self.key(s) for s in selection})
        return run_in_process(job, self.instance, tags)

    @staticmethod
    def failures(result) -> list[str]:
        """Step failures of a run, with their causes: for assertion messages."""
        out = []
        for event in result.all_events:
            if event.is_step_failure:
                error = event.step_failure_data.error
                out.append(f"{event.step_key}: {(error.cause or error).message}")
        return out

    @staticmethod
    def check_evaluations(result, name: str | None = None) -> list:
        """The asset check evaluations of a run, in order (only those of check ``name`` when given)."""
        return [
            e.event_specific_data
            for e in result.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION"
            and (name is None or e.event_specific_data.check_name == name)
        ]

    def metadata(self, asset: str) -> dict:
        event = self.instance.get_latest_materialization_event(self.key(asset))
        assert event is not None, f"{asset} was never materialized"
        return {k: v.value for k, v in event.asset_materialization.metadata.items()}

    def rebuild(self, overrides: dict) -> Project:
        """The same root and instance with more configuration laid over the target's."""
        extra = self.root / f"override_{len(list(self.root.glob('override_*')))}.yaml"
        base = yaml.safe_load((self.root / "override.yaml").read_text())
        extra.write_text(yaml.safe_dump(deep_merge(base, overrides)))
        use_cases = load_project("local", extra_file=extra)
        return Project(
            self.root,
            use_cases.use_case(self.settings.name),
            build_definitions(use_cases),
            self.instance,
            use_cases,
        )


def run_in_process(job, instance: DagsterInstance, tags: dict | None = None, run_config: dict | None = None):
    """Run ``job`` in this process with its own executor (independent steps at once, in threads), as
    `mlops run` and `dagster dev` run it. ``execute_in_process`` would swap in Dagster's
    one-step-at-a-time executor, so it is not used here."""
    from dagster._core.definitions.job_base import InMemoryJob
    from dagster._core.execution.execute_in_process import core_execute_in_process

    return core_execute_in_process(
        run_config=run_config or {},
        job=InMemoryJob(job),
        instance=instance,
        output_capturing_enabled=True,
        raise_on_error=False,
        run_tags=tags,
    )


def gateway_token(settings: Settings, scope: str = "query") -> str:
    """A new token of the project's serving gateway, made as `mlops token create --scope <scope>` makes it."""
    from mlops_dagster.serving.server import state_dir
    from mlops_dagster.serving.tokens import TokenStore

    return TokenStore(state_dir(settings)).create(scope)[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def project_at(root: Path, overrides: dict | None = None):
    """A project rooted at ``root`` (MLOPS_HOME) with its own Dagster instance and gateway port;
    a serving gateway it started is stopped at the end."""
    previous = os.environ.get("MLOPS_HOME")
    os.environ["MLOPS_HOME"] = str(root)
    settings = None
    try:
        root.mkdir(parents=True, exist_ok=True)
        overrides = {**(overrides or {})}
        overrides["serving"] = {"port": free_port(), **overrides.get("serving", {})}
        extra = root / "override.yaml"
        extra.write_text(yaml.safe_dump(overrides))
        use_cases = load_project("local", extra_file=extra)
        settings = use_cases.default
        with DagsterInstance.ephemeral(tempdir=str(root / "dagster")) as instance:
            yield Project(root, settings, build_definitions(use_cases), instance, use_cases)
    finally:
        if settings is not None:
            stop_gateway(settings)
        if previous is None:
            os.environ.pop("MLOPS_HOME", None)
        else:
            os.environ["MLOPS_HOME"] = previous
