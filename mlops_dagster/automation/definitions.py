"""Sensors, schedules and the Declarative Automation sensor, built from the target's settings."""

from dagster import (
    AssetSelection, AutomationConditionSensorDefinition, DefaultScheduleStatus, DefaultSensorStatus,
    ScheduleDefinition,
)

from ..jobs import batch_inference_job, lifecycle_job, monitoring_job, training_job
from ..settings import Settings
from .drift import drift_sensor
from .failures import failure_sensor
from .file_arrival import file_arrival_sensor

# Assets that simply follow their inputs: Declarative Automation, not a hand-written sensor.
FOLLOWERS = ["churn_endpoint", "churn_predictions", "churn_drift_report"]


def automation_definitions(settings: Settings) -> tuple[list, list]:
    """(sensors, schedules) for ``settings``: default status and times come from the config."""
    auto = settings.automation
    running = auto.default_status == "running"
    sensor_status = DefaultSensorStatus.RUNNING if running else DefaultSensorStatus.STOPPED
    schedule_status = DefaultScheduleStatus.RUNNING if running else DefaultScheduleStatus.STOPPED

    schedules = [
        ScheduleDefinition(
            name=f"{job.name.removesuffix('_job')}_schedule", job=job, cron_schedule=cron,
            execution_timezone=auto.timezone, default_status=schedule_status,
            description=f"{what} ({cron}, {auto.timezone}); from automation.schedules in the target config.",
        )
        for job, cron, what in (
            (training_job, auto.schedules.training, "Retrain, validate and promote"),
            (batch_inference_job, auto.schedules.batch_inference, "Score every customer with the champion"),
            (monitoring_job, auto.schedules.monitoring, "Drift report on the newest data"),
        )
    ]
    sensors = [
        file_arrival_sensor(settings, lifecycle_job, sensor_status),
        drift_sensor(settings, lifecycle_job, sensor_status),
        # Recording failures is passive: on everywhere, so no failure goes unrecorded.
        failure_sensor(settings, [lifecycle_job, training_job, batch_inference_job, monitoring_job],
                       DefaultSensorStatus.RUNNING),
        AutomationConditionSensorDefinition(
            "follow_new_champion", target=AssetSelection.assets(*FOLLOWERS), default_status=sensor_status,
            description="Rolls the endpoint out, re-scores customers and refreshes the drift report after a new "
                        "champion or new features (AutomationCondition.eager on each of them).",
        ),
    ]
    return sensors, schedules
