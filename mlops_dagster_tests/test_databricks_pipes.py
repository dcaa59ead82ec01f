"""Target `dev` with ``databricks.launch: pipes`` against the workspace emulator, where things go
wrong: each Spark step is a job run submitted by dagster-databricks' ``PipesDatabricksClient``
(messages on DBFS), whose entry point reports back through Pipes messages (the emulator's cluster
process really runs it). What a successful Pipes or serverless run reports is read from the shared
lifecycles of ``test_databricks_lifecycle.py``."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from dagster import DagsterRunStatus

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
