"""Target `dev` with ``databricks.launch: pipes`` and ``serverless`` against the workspace emulator:
each Spark step is a job run submitted by dagster-databricks' ``PipesDatabricksClient`` (messages on
DBFS) or ``PipesDatabricksServerlessClient`` (messages in a volume), whose entry point reports back
through Pipes messages (the emulator's cluster process really runs it)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from importlib.metadata import version
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterEventType, DagsterRunStatus

from .test_databricks_target import (  # noqa: F401 - `seeded` is a fixture
    DAGSTER,
    REPO,
    SPARK_ASSETS,
    Workspace,
    assert_no_token_anywhere,
    seeded,
    step_of,
)

pytestmark = pytest.mark.integration

PIPES = {"databricks": {"launch": "pipes"}}


@pytest.fixture
def pipes_workspace(seeded, tmp_path):
    root, _ = seeded
    ws = Workspace(root, tmp_path, PIPES)
    with ws.emulator:
        yield ws
    assert_no_token_anywhere(ws)


def test_pipes_steps_run_as_job_runs_and_report_their_events(pipes_workspace, seeded):
    ws, (_, champion) = pipes_workspace, seeded
    raw = ws.lakehouse.read(ws.table("raw_customers"))

    out = ws.materialize()
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]

    runs = {step_of(r): r for r in ws.emulator.runs.values()}
    assert set(runs) == {
        "churn__build_feature_tables",
        "churn__churn_predictions",
        "churn_features_checks",
        "churn_labels_checks",
    }
    for run in runs.values():
        assert (run.life_cycle_state, run.result_state) == ("TERMINATED", "SUCCESS"), run.state_message
        assert run.task["spark_python_task"]["python_file"].endswith("pipes_step.py")
        # Pipes' bootstrap parameters reach the job cluster as environment variables.
        assert "DAGSTER_PIPES_CONTEXT" in run.cluster["spark_env_vars"]
        packages = {lib["pypi"]["package"].split("==")[0] for lib in run.libraries if "pypi" in lib}
        assert {"dagster-pipes", "dagster"} <= packages
        assert run.cluster["custom_tags"]["dagster_step"] == step_of(run)

    with ws.instance() as instance:
        [dagster_run] = instance.get_runs()
        assert dagster_run.status == DagsterRunStatus.SUCCESS
        for asset, step in (
            ("churn_features", "churn__build_feature_tables"),
            ("churn_predictions", "churn__churn_predictions"),
        ):
            event = instance.get_latest_materialization_event(AssetKey(["churn", asset]))
            assert event.run_id == dagster_run.run_id
            # Reported by the cluster process through Pipes messages, with its metadata.
            assert event.dagster_event.pid == runs[step].pid
            assert event.asset_materialization.metadata["dagster/row_count"].value == len(raw)
        logs = instance.all_logs(dagster_run.run_id)
        checks = [
            e.dagster_event
            for e in logs
            if e.dagster_event and e.dagster_event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
        ]
        assert checks and all(c.pid in {r.pid for r in runs.values()} for c in checks)
        assert all(c.event_specific_data.passed for c in checks if c.step_key == "churn_labels_checks")
        # Pipes' own log lines (the job run's state transitions) and the step's, logged on the cluster.
        assert any("observed state transition to" in e.message and "TERMINATED" in e.message for e in logs)
        assert any("raw rows featurized" in e.message for e in logs)

    predictions = ws.lakehouse.read(ws.table("churn_predictions"))
    assert sorted(predictions["customerID"]) == sorted(raw["customerID"])
    assert set(predictions["model_version"]) == {champion}


def test_pipes_a_remote_failure_surfaces_its_traceback(seeded, tmp_path):
    root, _ = seeded
    ws = Workspace(
        root, tmp_path, {**PIPES, "features": {"derived": {"tenureBand": "no_such_function(tenure)"}}}
    )
    with ws.emulator:
        out = ws.materialize("churn_features,churn_labels")
        assert out.returncode != 0
        with ws.instance() as instance:
            [dagster_run] = instance.get_runs()
            assert dagster_run.status == DagsterRunStatus.FAILURE
            logs = instance.all_logs(dagster_run.run_id)
            [failure] = [e.dagster_event for e in logs if e.dagster_event and e.dagster_event.is_step_failure]
            error = failure.step_failure_data.error
            stack = "".join(error.stack) + "".join(error.cause.stack if error.cause else [])
            assert "no_such_function" in str(error.message) + str(error.cause and error.cause.message)
            assert "assets/features.py" in stack  # the remote traceback, from the cluster process
            assert failure.pid == next(iter(ws.emulator.runs.values())).pid
    assert_no_token_anywhere(ws)


def test_pipes_cancelling_the_dagster_run_cancels_the_remote_run(pipes_workspace):
    ws = pipes_workspace
    process = subprocess.Popen(
        [
            DAGSTER,
            "asset",
            "materialize",
            "-m",
            "mlops_dagster.definitions",
            "--select",
            "churn/churn_features,churn/churn_labels",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env=ws.env(),
    )
    deadline = time.monotonic() + 180
    while not any(r.life_cycle_state == "RUNNING" for r in ws.emulator.runs.values()):
        assert process.poll() is None and time.monotonic() < deadline, "the remote run never started"
        time.sleep(0.2)
    [run] = ws.emulator.runs.values()
    process.send_signal(signal.SIGINT)  # what terminating a run does to its run worker
    ws.outputs.append(process.communicate(timeout=120)[0])
    deadline = time.monotonic() + 30
    while run.life_cycle_state != "TERMINATED" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (run.life_cycle_state, run.result_state) == ("TERMINATED", "CANCELED")
    with pytest.raises(ProcessLookupError):
        os.kill(run.pid, 0)  # the cluster process is gone
    with ws.instance() as instance:
        [dagster_run] = instance.get_runs()
        assert dagster_run.status in (DagsterRunStatus.CANCELED, DagsterRunStatus.FAILURE)


def test_serverless_steps_run_in_our_environment_and_report_through_a_volume(seeded, tmp_path):
    root, _ = seeded
    ws = Workspace(root, tmp_path, {"databricks": {"launch": "serverless"}})
    io = Path(ws.settings.io_path).resolve()
    ws.emulator.volumes.append(io)
    raw = ws.lakehouse.read(ws.table("raw_customers"))
    with ws.emulator:
        out = ws.materialize("churn_features,churn_labels")
        assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
        runs = {step_of(r): r for r in ws.emulator.runs.values()}
        assert set(runs) == {"churn__build_feature_tables", "churn_features_checks", "churn_labels_checks"}
        for run in runs.values():
            assert run.result_state == "SUCCESS", run.state_message
            # No cluster: the run's environment, with our pinned libraries, and the entry point in the volume.
            dependencies = run.cluster["serverless_environment"]["dependencies"]
            assert f"dagster-pipes=={version('dagster-pipes')}" in dependencies
            assert Path(run.task["spark_python_task"]["python_file"]).is_relative_to(io)
        # Pipes' context and messages went through the Files API, not DBFS.
        paths = {path for _, path, _ in ws.emulator.calls}
        assert any(p.startswith(f"/api/2.0/fs/files{io}/_pipes/") for p in paths)
        assert not any(p.startswith("/api/2.0/dbfs/") for p in paths)
        with ws.instance() as instance:
            [dagster_run] = instance.get_runs()
            assert dagster_run.status == DagsterRunStatus.SUCCESS
            event = instance.get_latest_materialization_event(AssetKey(["churn", "churn_features"]))
            assert event.dagster_event.pid == runs["churn__build_feature_tables"].pid
            assert event.asset_materialization.metadata["dagster/row_count"].value == len(raw)
        assert [u["sku_name"] for u in ws.emulator.usage] == ["PREMIUM_JOBS_SERVERLESS_COMPUTE"] * 3
    assert_no_token_anywhere(ws)
