"""Run-failure sensor: every failed lifecycle run is POSTed to a webhook when one is configured,
and recorded in a Delta table by a small job the sensor requests.

The table is written by a job, not by the sensor, because the sensor runs in the daemon, which on
Databricks targets has no Spark and no Unity Catalog access: the job's step runs where every data
step runs (in process on local, on a cluster on Databricks).
"""

import json
from datetime import datetime, timezone

from dagster import Config, OpExecutionContext, RunFailureSensorContext, RunRequest, job, op, run_failure_sensor

from ..resources.lakehouse import Lakehouse
from ..resources.step_launcher import StepLauncherParam
from ..settings import Settings


class FailureRecord(Config):
    run_id: str
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


def post_json(url: str, payload: dict, timeout: float = 10.0) -> int:
    import urllib.request  # only when a failure is posted: keeps the code location's load light

    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (configured URL)
        return response.status


def failure_sensor(settings: Settings, jobs, default_status):
    table = settings.table("run_failures")
    webhook = settings.automation.failure_webhook or None

    @op(description=f"Appends one failed run (job, run id, failed steps and their errors) to `{table}`.")
    def record_run_failure(context: OpExecutionContext, config: FailureRecord, lakehouse: Lakehouse,
                           step_launcher: StepLauncherParam):
        import pandas as pd

        row = {**config.model_dump(), "step_errors": "\n".join(config.step_errors),
               "failed_at": pd.Timestamp(config.failed_at)}
        lakehouse.write(table, pd.DataFrame([row]), "append",
                        description="Failed lifecycle runs recorded by lifecycle_failure_sensor.")
        context.log.info(f"recorded failure of {config.job_name} run {config.run_id} in {table}")

    @job(description=f"Records a failed lifecycle run in `{table}` (requested by lifecycle_failure_sensor).")
    def record_run_failure_job():
        record_run_failure()

    @run_failure_sensor(
        name="lifecycle_failure_sensor", monitored_jobs=jobs, default_status=default_status,
        request_job=record_run_failure_job,
        description=(
            f"Records every failed lifecycle run (job, run id, failed steps and their errors) in `{table}` "
            "through record_run_failure_job"
            + (" and POSTs it to the configured webhook." if webhook else ". Set automation.failure_webhook "
               "(or MLOPS_FAILURE_WEBHOOK) to also POST it to a webhook.")
        ),
    )
    def lifecycle_failure_sensor(context: RunFailureSensorContext):
        run = context.dagster_run
        record = {
            "run_id": run.run_id, "job_name": run.job_name,
            "failed_at": datetime.now(timezone.utc).isoformat(),
            "trigger": run.tags.get("mlops/trigger", "manual"),
            "failure_message": context.failure_event.message or "",
            "step_errors": _step_errors(context),
        }
        webhook_status = "not configured"
        if webhook:
            try:
                webhook_status = f"HTTP {post_json(webhook, {'event': 'run_failure', **record})}"
            except Exception as exc:  # a broken webhook must not lose the record
                webhook_status = f"failed: {type(exc).__name__}: {exc}"
                context.log.warning(f"failure webhook not reached: {webhook_status}")
        return RunRequest(
            run_key=f"failure-{run.run_id}",  # one record per failed run, even if evaluated again
            run_config={"ops": {"record_run_failure": {"config": {**record, "webhook": webhook_status}}}},
            tags={"mlops/trigger": "run_failure", "mlops/failed_run": run.run_id},
        )

    return lifecycle_failure_sensor
