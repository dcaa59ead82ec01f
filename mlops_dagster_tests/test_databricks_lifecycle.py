"""The whole lifecycle on target `dev` against the workspace emulator, once per launch mode
(``databricks.launch``): every step a job run, the endpoint created through the serving API. A file
of its own, so that the test runner can run it beside the rest of the emulator's tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterRunStatus

from .test_databricks_target import (  # noqa: F401 - `seeded` is a fixture
    TOKEN,
    Workspace,
    assert_no_token_anywhere,
    seeded,
    step_of,
)

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("launch", ["step_launcher", "pipes", "serverless"])
def test_the_whole_lifecycle_runs_on_clusters_and_deploys_a_databricks_endpoint(seeded, tmp_path, launch):
    """lifecycle_job on `dev`, in each launch mode: every step a job run; the endpoint is created
    through the serving API with auto-capture, by the cluster, with the token it got from the secret
    scope."""
    from databricks.sdk import WorkspaceClient

    from mlops_dagster.cli import generate

    root, _ = seeded
    ws = Workspace(root, tmp_path, {"databricks": {"launch": launch}}, serving=True)
    ws.emulator.volumes.append(Path(ws.settings.io_path).resolve())  # where serverless steps stage
    generate(400, 11, False, "dev_batch.csv", landing=ws.settings.landing_path)
    with ws.emulator:
        out = ws.dagster("job", "execute", "-j", "churn_lifecycle_job")
        assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
        with ws.instance() as instance:
            [dagster_run] = instance.get_runs()
            assert dagster_run.status == DagsterRunStatus.SUCCESS
            steps = {
                e.step_key
                for e in instance.all_logs(dagster_run.run_id)
                if e.dagster_event and e.dagster_event.event_type == DagsterEventType.STEP_SUCCESS
            }
        runs = {step_of(r): r for r in ws.emulator.runs.values()}
        assert set(runs) == steps and len(steps) >= 12
        assert all(r.result_state == "SUCCESS" and r.pid != os.getpid() for r in runs.values())

        client = WorkspaceClient(host=ws.emulator.url, token=TOKEN, auth_type="pat")
        endpoint = client.api_client.do("GET", "/api/2.0/serving-endpoints/churn-endpoint")
        served = [e["entity_version"] for e in endpoint["config"]["served_entities"]]
        predictions = ws.lakehouse.read(ws.table("churn_predictions"))
        assert served == sorted(set(predictions["model_version"]))
        assert endpoint["auto_capture_config"]["enabled"]
        frame = ws.lakehouse.read(ws.table("churn_features")).head(3)[ws.settings.features.columns]
        answer = client.serving_endpoints.query("churn-endpoint", dataframe_records=frame.to_dict("records"))
        assert len(answer.predictions) == 3
        raw = ws.lakehouse.read(ws.table("raw_customers"))
        assert len(predictions) == len(raw) and "dev_batch.csv" in " ".join(raw["_source_file"].unique())
        assert Path(ws.settings.reports_path).is_dir() and any(Path(ws.settings.reports_path).iterdir())
    assert_no_token_anywhere(ws)
