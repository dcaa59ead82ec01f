"""Running a use case's jobs headless on this project's Dagster instance."""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from .demo import usable_demo, write_demo
from .summary import run_summary


@contextmanager
def executed(name: str, run_config: dict | None = None):
    """Run job ``name`` on this project's Dagster instance, reconstructable (the step launcher needs
    that), and yield its result: its events and its run, not its outputs. Entered as a context
    manager, the result would set the run's resources up again, and dagster-mlflow's would resume
    the MLflow run the run just ended (marked running again, and taken over by the next run)."""
    from dagster import DagsterInstance, build_reconstructable_job, execute_job

    job = build_reconstructable_job("mlops_dagster.cli", "job_named", reconstructable_args=(name,))
    default_dagster_home()
    with DagsterInstance.get() as instance:
        yield execute_job(
            job,
            instance=instance,
            raise_on_error=False,
            run_config={**(run_config or {}), "loggers": {"console": {"config": {"log_level": "INFO"}}}},
        )


def run(job: str, use_case: str | None = None, run_config: dict | None = None) -> int:
    """Run job ``job`` (``lifecycle``, ``training``, ``approve_model_version``, ...; a trailing
    ``_job`` is allowed) of one use case, or of each in turn; print a summary per run."""
    from ..resources.migration import check_home
    from ..settings import load_project

    kind = job.removesuffix("_job")
    failed = 0
    project = load_project()
    check_home(project)  # before anything writes: a home in an older format is refused
    for settings in project.select(use_case):
        landing = Path(settings.landing_path)
        if (
            settings.target == "local"
            and usable_demo(settings)
            and kind in ("lifecycle", "training")
            and settings.dataset.source is None
            and "://" not in settings.landing_path
            and not any(landing.glob(settings.dataset.file_pattern))
        ):
            print(f"landing volume {landing} is empty: generating the {settings.demo} demo dataset")
            write_demo(settings, None, 42, False)
        started = time.perf_counter()
        with executed(settings.names.job(kind), run_config) as result:
            print(run_summary(result, time.perf_counter() - started, settings))
            failed += not result.success
    return 1 if failed else 0


def run_op(op: str, settings, config: dict) -> int:
    """Run the one-op governance job ``<op>_job`` of a use case with the op's config."""
    return run(op, settings.name, {"ops": {settings.names.op(op): {"config": config}}})


def default_dagster_home() -> None:
    """Without ``DAGSTER_HOME``, use the project's as ``make`` does: ``./.dagster_home``, configured by
    ``./dagster.yaml`` when there is one (Dagster itself would refuse to run)."""
    if os.environ.get("DAGSTER_HOME"):
        return
    home = Path(".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        project = Path("dagster.yaml")
        config.write_text(project.read_text() if project.is_file() else "telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(home)
    print(f"DAGSTER_HOME is not set: using {home}", file=sys.stderr)
