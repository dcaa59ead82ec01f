"""The run-failure sensor POSTs a real failed run to a real HTTP webhook (an alert) and requests the
job that records it in Delta (and in the alerts table); the requested run is executed as the daemon would launch it."""

from __future__ import annotations

import pytest
from dagster import DagsterEventType, build_run_status_sensor_context

from .project import project_at
from .webhook import CLOSED, webhook  # noqa: F401 (a fixture)

pytestmark = pytest.mark.integration


def _evaluate_failure_sensor(project, result):
    run = project.instance.get_run_by_id(result.run_id)
    failure = next(
        e.dagster_event
        for e in project.instance.all_logs(result.run_id)
        if e.dagster_event and e.dagster_event.event_type == DagsterEventType.RUN_FAILURE
    )
    sensor = project.defs.get_repository_def().get_sensor_def("lifecycle_failure_sensor")
    context = build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_event=failure,
        dagster_instance=project.instance,
        dagster_run=run,
    )
    request = sensor(context.for_run_failure())
    assert request.run_key == f"failure-{result.run_id}"
    recorded = project.defs.resolve_job_def(project.job("record_run_failure_job")).execute_in_process(
        run_config=request.run_config, instance=project.instance, tags=request.tags
    )
    assert recorded.success


def test_a_failed_run_is_recorded_and_posted(tmp_path, webhook):
    url, received = webhook
    with project_at(tmp_path / "fail", overrides={"automation": {"alert_webhook": url}}) as project:
        result = project.run("training_job")  # no landing files: ingestion fails
        assert not result.success
        _evaluate_failure_sensor(project, result)

        [row] = project.lakehouse.read(project.table("run_failures")).to_dict("records")
        assert row["run_id"] == result.run_id and row["job_name"] == "churn_training_job"
        assert "ingest_landing_files" in row["step_errors"] and "no landing files" in row["step_errors"]
        assert row["webhook"] == "HTTP 204"
        [posted] = received
        assert posted["kind"] == "run_failure" and posted["use_case"] == "churn"
        assert posted["details"]["run_id"] == result.run_id and result.run_id in posted["text"]
        assert any("no landing files" in e for e in posted["details"]["step_errors"])
        [alert] = project.lakehouse.read(project.table("alerts")).to_dict("records")
        assert (alert["kind"], alert["use_case"], alert["webhook_status"]) == (
            "run_failure",
            "churn",
            "HTTP 204",
        )
        assert alert["dagster_run_id"] == result.run_id and "no landing files" in alert["summary"]


def test_an_unreachable_webhook_does_not_lose_the_record(tmp_path):
    with project_at(tmp_path / "fail2", overrides={"automation": {"alert_webhook": CLOSED}}) as project:
        result = project.run("training_job")
        _evaluate_failure_sensor(project, result)
        [row] = project.lakehouse.read(project.table("run_failures")).to_dict("records")
        assert row["webhook"].startswith("failed: URLError")
        [alert] = project.lakehouse.read(project.table("alerts")).to_dict("records")
        assert alert["webhook_status"] == row["webhook"] and "9/unreachable" not in alert["webhook_status"]
