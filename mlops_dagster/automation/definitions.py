"""Sensors, schedules and the Declarative Automation sensor, built from the target's settings."""

from dagster import (
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    ScheduleDefinition,
    define_asset_job,
)

from ..jobs.lifecycle import Jobs
from ..settings import Project, Settings
from .cost import cost_sensor
from .failures import failure_sensor
from .file_arrival import file_arrival_sensor, outcome_file_sensor
from .retraining import decay_sensor, drift_sensor, estimated_decay_sensor
from .source_table import source_table_sensor


def _status(settings: Settings) -> tuple[DefaultSensorStatus, DefaultScheduleStatus]:
    running = settings.automation.default_status == "running"
    return (
        DefaultSensorStatus.RUNNING if running else DefaultSensorStatus.STOPPED,
        DefaultScheduleStatus.RUNNING if running else DefaultScheduleStatus.STOPPED,
    )


def automation_definitions(settings: Settings, jobs: Jobs) -> tuple[list, list]:
    """One use case's (sensors, schedules): default status and times come from the config."""
    auto = settings.automation
    names = settings.names
    # Assets that simply follow their inputs: Declarative Automation, not a hand-written sensor.
    followers = [names.key(names.endpoint), names.key(names.predictions), names.key(names.drift_report)]
    sensor_status, schedule_status = _status(settings)

    schedules = [
        ScheduleDefinition(
            name=f"{job.name.removesuffix('_job')}_schedule",
            job=job,
            cron_schedule=cron,
            execution_timezone=auto.timezone,
            default_status=schedule_status,
            description=f"{what} ({cron}, {auto.timezone}); from automation.schedules in the target config.",
        )
        for job, cron, what in (
            (jobs.training, auto.schedules.training, "Retrain, validate and promote"),
            (
                jobs.batch_inference,
                auto.schedules.batch_inference,
                f"Score every {settings.dataset.key} with the champion",
            ),
            (
                jobs.monitoring,
                auto.schedules.monitoring,
                "Drift report on the newest data; new outcomes judge the predictions (model performance)",
            ),
        )
    ]
    # New data: landing files, or new versions of the source table where the daemon can read its
    # version (delta-rs tables under `root`; on Unity Catalog, use the training schedule).
    if settings.dataset.source is None:
        arrivals = [file_arrival_sensor(settings, jobs.lifecycle, sensor_status)]
    else:
        arrivals = [source_table_sensor(settings, jobs.lifecycle, sensor_status)] if settings.root else []
    sensors = [
        *arrivals,
        outcome_file_sensor(settings, jobs.monitoring, sensor_status),
        drift_sensor(settings, jobs.lifecycle, sensor_status),
        decay_sensor(settings, jobs.lifecycle, sensor_status),
        *(
            [estimated_decay_sensor(settings, jobs.lifecycle, sensor_status)]
            if settings.automation.decay_sensor.on_estimates
            else []
        ),
        AutomationConditionSensorDefinition(
            names.automation("follow_new_champion"),
            target=AssetSelection.assets(*followers),
            default_status=sensor_status,
            description=f"Rolls the endpoint out, re-scores every {settings.dataset.key} and refreshes the drift report after a new "
            "champion or new features (AutomationCondition.eager on each of them).",
        ),
    ]
    return sensors, schedules


def failure_definitions(settings: Settings, jobs: list) -> list:
    """The project's failure sensor (recording failures is passive: on everywhere, so no failure
    of any use case's jobs goes unrecorded)."""
    return [failure_sensor(settings, jobs, DefaultSensorStatus.RUNNING)]


def cost_definitions(project: Project) -> tuple[list, list]:
    """The project's (jobs, sensors) that record what runs cost: ``cost_report_job`` and
    ``cost_sensor`` (stopped or running like the use cases' sensors)."""
    report_job = define_asset_job(
        "cost_report_job",
        AssetSelection.assets("cost_report"),
        tags={"mlops/trigger": "cost"},
        description="Records finished runs' steps in run_costs and refreshes cost_report (requested by cost_sensor).",
    )
    return [report_job], [cost_sensor(project, report_job, _status(project.default)[0])]
