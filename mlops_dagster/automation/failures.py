"""Run-failure sensor: every failed lifecycle run is an alert (POSTed to the alert webhook when one
is configured) and is recorded in a Delta table by a small job the sensor requests.

The table is written by a job, not by the sensor, because the sensor runs in the daemon, which on
Databricks targets has no Spark and no Unity Catalog access: the job's step runs where every data
step runs (in process on local, on a cluster on Databricks).
"""

from datetime import UTC, datetime

from dagster import (
    Config,
    OpExecutionContext,
    RunFailureSensorContext,
    RunRequest,
    job,
    op,
    run_failure_sensor,
)

from ..monitoring.alerts import ALERTS_TABLE, alert_row, deliver, payload, record_alert
from ..resources.lakehouse import Lakehouse
from ..resources.step_launcher import StepLauncherParam
from ..settings import USE_CASE_TAG, Settings


class FailureRecord(Config):
    run_id: str
    use_case: str
    job_name: str
    failed_at: str
    trigger: str
    failure_message: str
    step_errors: list[str]
    webhook: str


def _step_errors(context: RunFailureSensorContext) -> list[str]:
    errors = []
    for event in context.get_step_failure_events():
        error = event.step_failure_data.error
        cause = (error.cause or error) if error else None
        errors.append(f"{event.step_key}: {cause.message.strip() if cause else 'failed'}")
    return errors


def _alert(record: dict) -> dict:
    errors = record["step_errors"]
    return payload(
        "run_failure",
        record["use_case"],
        (f"run {record['run_id']} of {record['job_name']} failed" + (f": {errors[0]}" if errors else "")),
        {
            k: record[k]
            for k in ("run_id", "job_name", "failed_at", "trigger", "failure_message", "step_errors")
        },
    )


def failure_sensor(settings: Settings, jobs, default_status):
    table = settings.table("run_failures")
    webhook = settings.automation.alert_webhook or None
    alerted = "run_failure" in settings.automation.alert_on

    @op(description=f"Appends one failed run (job, run id, failed steps and their errors) to `{table}`.")
    def record_run_failure(
        context: OpExecutionContext,
        config: FailureRecord,
        lakehouse: Lakehouse,
        step_launcher: StepLauncherParam,
    ):
        import pandas as pd

        # The use case is in the alert row; the run_failures table keeps its columns (its job says it).
        row = {
            **config.model_dump(exclude={"use_case"}),
            "step_errors": "\n".join(config.step_errors),
            "failed_at": pd.Timestamp(config.failed_at),
        }
        lakehouse.write(
            table,
            pd.DataFrame([row]),
            "append",
            description="Failed lifecycle runs recorded by lifecycle_failure_sensor.",
        )
        if alerted:
            record_alert(
                lakehouse,
                settings.table(ALERTS_TABLE),
                alert_row(_alert(config.model_dump()), config.webhook, config.run_id),
            )
        context.log.info(f"recorded failure of {config.job_name} run {config.run_id} in {table}")

    @job(description=f"Records a failed lifecycle run in `{table}` (requested by lifecycle_failure_sensor).")
    def record_run_failure_job():
        record_run_failure()

    @run_failure_sensor(
        name="lifecycle_failure_sensor",
        monitored_jobs=jobs,
        default_status=default_status,
        request_job=record_run_failure_job,
        description=(
            f"Records every failed lifecycle run (job, run id, failed steps and their errors) in `{table}` "
            "through record_run_failure_job"
            + (" and, as an alert, in the `alerts` table" if alerted else "")
            + (
                " and POSTs it to the configured alert webhook."
                if webhook and alerted
                else ". Set automation.alert_webhook (or MLOPS_ALERT_WEBHOOK) to also POST it to a webhook."
            )
        ),
    )
    def lifecycle_failure_sensor(context: RunFailureSensorContext):
        run = context.dagster_run
        record = {
            "run_id": run.run_id,
            "use_case": run.tags.get(USE_CASE_TAG, ""),
            "job_name": run.job_name,
            "failed_at": datetime.now(UTC).isoformat(),
            "trigger": run.tags.get("mlops/trigger", "manual"),
            "failure_message": context.failure_event.message or "",
            "step_errors": _step_errors(context),
        }
        webhook_status = deliver(webhook, _alert(record)) if alerted else "not alerted (automation.alert_on)"
        if webhook_status.startswith("failed"):
            context.log.warning(f"alert webhook not reached: {webhook_status}")
        return RunRequest(
            run_key=f"failure-{run.run_id}",  # one record per failed run, even if evaluated again
            run_config={"ops": {"record_run_failure": {"config": {**record, "webhook": webhook_status}}}},
            tags={"mlops/trigger": "run_failure", "mlops/failed_run": run.run_id},
        )

    return lifecycle_failure_sensor
