"""The housekeeping schedule of a use case (``automation.schedules.housekeeping``)."""

from dagster import ScheduleDefinition

from ..settings import Settings
from .definitions import _status


def housekeeping_schedule(settings: Settings, job) -> ScheduleDefinition:
    auto = settings.automation
    cron = auto.schedules.housekeeping
    return ScheduleDefinition(
        name=f"{job.name.removesuffix('_job')}_schedule",
        job=job,
        cron_schedule=cron,
        execution_timezone=auto.timezone,
        default_status=_status(settings)[1],
        description=f"Retention, compaction and vacuum ({cron}, {auto.timezone}); from "
        "automation.schedules in the target config.",
    )
