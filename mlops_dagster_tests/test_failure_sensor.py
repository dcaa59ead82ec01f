"""The run-failure sensor POSTs a real failed run to a real HTTP webhook and requests the job that
records it in Delta; the requested run is executed as the daemon would launch it."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from dagster import DagsterEventType, build_run_status_sensor_context

from .project import project_at

pytestmark = pytest.mark.integration


class _Capture(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Capture.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    server = HTTPServer(("127.0.0.1", 0), _Capture)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Capture.received = []
    yield f"http://127.0.0.1:{server.server_port}/hooks/mlops", _Capture.received
    server.shutdown()


def _evaluate_failure_sensor(project, result):
    run = project.instance.get_run_by_id(result.run_id)
    failure = next(e.dagster_event for e in project.instance.all_logs(result.run_id)
                   if e.dagster_event and e.dagster_event.event_type == DagsterEventType.RUN_FAILURE)
    sensor = project.defs.get_repository_def().get_sensor_def("lifecycle_failure_sensor")
    context = build_run_status_sensor_context(
        sensor_name=sensor.name, dagster_event=failure, dagster_instance=project.instance, dagster_run=run,
    )
    request = sensor(context.for_run_failure())
    assert request.run_key == f"failure-{result.run_id}"
    recorded = project.defs.resolve_job_def(project.job("record_run_failure_job")).execute_in_process(
        run_config=request.run_config, instance=project.instance, tags=request.tags)
    assert recorded.success


def test_a_failed_run_is_recorded_and_posted(tmp_path, webhook):
    url, received = webhook
    with project_at(tmp_path / "fail", overrides={"automation": {"failure_webhook": url}}) as project:
        result = project.run("training_job")  # no landing files: ingestion fails
        assert not result.success
        _evaluate_failure_sensor(project, result)

        [row] = project.lakehouse.read(project.table("run_failures")).to_dict("records")
        assert row["run_id"] == result.run_id and row["job_name"] == "churn_training_job"
        assert "ingest_landing_files" in row["step_errors"] and "no landing files" in row["step_errors"]
        assert row["webhook"] == "HTTP 204"
        [posted] = received
        assert posted["event"] == "run_failure" and posted["run_id"] == result.run_id
        assert any("no landing files" in e for e in posted["step_errors"])


def test_an_unreachable_webhook_does_not_lose_the_record(tmp_path):
    closed = "http://127.0.0.1:9/unreachable"  # discard port: nothing listens
    with project_at(tmp_path / "fail2", overrides={"automation": {"failure_webhook": closed}}) as project:
        result = project.run("training_job")
        _evaluate_failure_sensor(project, result)
        [row] = project.lakehouse.read(project.table("run_failures")).to_dict("records")
        assert row["webhook"].startswith("failed: URLError")
