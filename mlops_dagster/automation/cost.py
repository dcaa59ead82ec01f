"""Cost sensor: turns every finished run's steps into cost records, for ``cost_report`` to store.

It reads the Dagster event log (the daemon's instance): each step's start and end, the assets it
materialized, and, for a step launched on a Databricks cluster, the launcher's compute record
(cluster spec, submit-to-terminate time from the Jobs API, estimated DBUs and cost). Local steps
get the same record with their wall time and zero cost. The records travel to ``cost_report_job``
as run config: the table is written by a step, which on Databricks runs where every data step runs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dagster import (
    DagsterEventType,
    DagsterRunStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from ..ml.cost import LOCAL, Compute, compute_fields, estimate
from ..resources.databricks import COST_EVENT
from ..settings import Project, Settings

RUNS_PER_REPORT = 25  # finished runs per requested report (bounds the run config's size)
_FINISHED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]
_STEP_END = {DagsterEventType.STEP_SUCCESS: "success", DagsterEventType.STEP_FAILURE: "failure"}
_READ = {
    DagsterEventType.STEP_START,
    *_STEP_END,
    DagsterEventType.ASSET_MATERIALIZATION,
    DagsterEventType.ASSET_CHECK_EVALUATION,
    DagsterEventType.ENGINE_EVENT,
}


def _value(entry) -> Any:
    return getattr(entry, "value", entry)


def step_records(instance, run, project: Project, group_of) -> list[dict[str, Any]]:
    """One record per step of ``run`` that started: where it ran, how long, what it cost."""
    settings = project.default
    steps: dict[str, dict[str, Any]] = {}
    for entry in instance.all_logs(run.run_id, of_type=_READ):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        at = datetime.fromtimestamp(entry.timestamp, UTC)
        use_case = project.owner_of_step(event.step_key, run.tags)
        step = steps.setdefault(
            event.step_key,
            {
                "dagster_run_id": run.run_id,
                "job_name": run.job_name,
                "use_case": use_case,
                "target": settings.target,
                "trigger": run.tags.get("mlops/trigger", "manual"),
                "step_key": event.step_key,
                "assets": [],
                "stage": "",
                "status": "not finished",
                "started_at": at,
                "finished_at": at,
                "databricks_run_id": 0,
                "cost_problem": "",
                **compute_fields(Compute(LOCAL)),
                "currency": settings.cost.currency,
            },
        )
        if event.event_type == DagsterEventType.STEP_START:
            step["started_at"] = at
        elif event.event_type in _STEP_END:
            step["status"], step["finished_at"] = _STEP_END[event.event_type], at
        elif event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
            step["assets"].append(event.asset_key.to_user_string())
            step["stage"] = step["stage"] or _stage(group_of(event.asset_key), step["use_case"])
        elif event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:  # a checks step: its asset's stage
            checked = event.event_specific_data.asset_key
            step["stage"] = step["stage"] or _stage(group_of(checked), step["use_case"])
        elif event.event_type == DagsterEventType.ENGINE_EVENT:
            metadata = event.engine_event_data.metadata or {}
            if COST_EVENT in metadata:
                step["launched"] = {k: _value(v) for k, v in metadata.items() if k != COST_EVENT}
    return [_costed(step, settings) for step in steps.values()]


def _stage(group: str | None, use_case: str) -> str:
    return (group or "").removeprefix(f"{use_case}_") if use_case else group or ""


def _costed(step: dict[str, Any], settings: Settings) -> dict[str, Any]:
    launched = step.pop("launched", None)
    record = {
        **step,
        "assets": ",".join(step["assets"]),
        "seconds": (step["finished_at"] - step["started_at"]).total_seconds(),
    }
    if launched is None:
        figure = estimate(Compute(LOCAL), record["seconds"], settings.cost)
        record.update(dbus_estimated=figure.dbus, cost_estimated=figure.cost)
    else:  # the launcher's record: the Jobs API's time and the rates it was estimated with
        record.update(
            {k: launched[k] for k in launched if k.startswith("compute_")},
            databricks_run_id=int(launched["databricks_run_id"]),
            seconds=float(launched["seconds"]),
            dbus_estimated=launched.get("dbus_estimated"),
            cost_estimated=launched.get("cost_estimated"),
            cost_problem=launched.get("cost_problem", ""),
            currency=launched["currency"],
        )
    record["started_at"], record["finished_at"] = (
        record["started_at"].isoformat(),
        record["finished_at"].isoformat(),
    )
    return record


def cost_sensor(project: Project, report_job, default_status):
    """Requests ``report_job`` with the records of runs finished since the last request."""

    @sensor(
        name="cost_sensor",
        job=report_job,
        minimum_interval_seconds=3600,
        default_status=default_status,
        description=(
            "Hourly: records every finished run's steps (wall time locally; cluster spec, Jobs API time and "
            "estimated DBUs and cost on Databricks) through cost_report_job, which updates cost_report."
        ),
    )
    def _cost_sensor(context: SensorEvaluationContext):
        after = float(context.cursor) if context.cursor else 0.0
        graph = context.repository_def.asset_graph
        group_of = lambda key: graph.get(key).group_name if graph.has(key) else None  # noqa: E731
        records = context.instance.get_run_records(
            filters=RunsFilter(
                statuses=_FINISHED, updated_after=datetime.fromtimestamp(after, UTC) if after else None
            ),
            order_by="update_timestamp",
            ascending=True,
            limit=RUNS_PER_REPORT,
        )
        if not records:
            return SkipReason("no run finished since the last cost report")
        if all(r.dagster_run.job_name == report_job.name for r in records):
            # Only reports finished: they are recorded with the next report, which other runs request.
            return SkipReason("only cost reports finished since the last one")
        last = records[-1].update_timestamp
        context.update_cursor(str((last if last.tzinfo else last.replace(tzinfo=UTC)).timestamp()))
        rows = [
            row for r in records for row in step_records(context.instance, r.dagster_run, project, group_of)
        ]
        return RunRequest(
            run_key=f"cost-{records[-1].dagster_run.run_id}",
            run_config={"ops": {"cost_report": {"config": {"records": rows}}}},
        )

    return _cost_sensor
