"""Run-failure sensor: every failed lifecycle run is recorded in a Delta table (and POSTed to a
webhook when one is configured)."""

import json
from datetime import datetime, timezone

from dagster import RunFailureSensorContext, run_failure_sensor

from ..resources.lakehouse import Lakehouse
from ..settings import Settings


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

    @run_failure_sensor(
        name="lifecycle_failure_sensor", monitored_jobs=jobs, default_status=default_status,
        description=(
            f"Records every failed lifecycle run (job, run id, failed steps and their errors) in `{table}`"
            + (" and POSTs it to the configured webhook." if webhook else ". Set automation.failure_webhook "
               "(or MLOPS_FAILURE_WEBHOOK) to also POST it to a webhook.")
        ),
    )
    def lifecycle_failure_sensor(context: RunFailureSensorContext, lakehouse: Lakehouse):
        import pandas as pd

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
        row = {**record, "step_errors": "\n".join(record["step_errors"]), "webhook": webhook_status,
               "failed_at": pd.Timestamp(record["failed_at"])}
        lakehouse.write(table, pd.DataFrame([row]), "append",
                        description="Failed lifecycle runs recorded by lifecycle_failure_sensor.")
        context.log.info(f"recorded failure of {run.job_name} run {run.run_id} in {table}")

    return lifecycle_failure_sensor

