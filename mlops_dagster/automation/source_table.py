"""Source-table sensor: a new version of the Delta table a use case reads (``dataset.source``)
starts one lifecycle run (ingest what changed, then the retraining chain)."""

from dagster import RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from ..resources.lakehouse import Lakehouse
from ..settings import Settings


def source_table_sensor(settings: Settings, job, default_status):
    table = settings.dataset.source.table
    interval = settings.automation.file_sensor.interval_seconds

    @sensor(
        name=settings.names.automation("source_table_sensor"),
        job=job,
        minimum_interval_seconds=interval,
        default_status=default_status,
        description=(
            f"Watches Delta table {table} (dataset.source) every {interval} s. Each new version (or a table "
            f"created again) starts exactly one `{job.name}` run, which ingests what changed since the "
            "version read last and runs the retraining chain. The cursor (the version seen) is kept by "
            "Dagster, so a daemon restart neither repeats nor misses a version."
        ),
    )
    def source_sensor(context: SensorEvaluationContext, lakehouse: Lakehouse):
        if not lakehouse.exists(table):
            return SkipReason(f"source table {table} does not exist (yet)")
        [newest] = lakehouse.history(table, 1)
        seen = f"{newest['version']}@{newest.get('timestamp')}"  # a table created again restarts its versions
        if context.cursor == seen:
            return SkipReason(f"{table} is still at version {newest['version']}")
        request = RunRequest(
            run_key=f"{table}@{seen}",
            tags={"mlops/trigger": "source_table", "mlops/source_version": f"{table}@v{newest['version']}"},
        )
        return SensorResult(run_requests=[request], cursor=seen)

    return source_sensor
