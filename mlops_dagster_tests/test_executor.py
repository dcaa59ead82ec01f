"""The threaded executor: independent steps at once in threads of the run's process, failures and
skips as Dagster's own executors report them, a terminated run's steps told to stop, and the run's
MLflow run in every step's thread."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from dagster import AssetExecutionContext, DagsterInstance, Definitions, asset, define_asset_job

from mlops_dagster.resources.mlflow_tracking import end_mlflow_on_run_finished, mlflow_tracking_resource
from mlops_dagster.runtime.executor import IMPORTS_TAG, threaded_executor
from mlops_dagster_tests.project import run_in_process

FOUR_AT_ONCE = threaded_executor.configured({"max_concurrent": 4})


def _job(assets, executor=FOUR_AT_ONCE, resources=None, hooks=None):
    defs = Definitions(
        assets=assets,
        jobs=[define_asset_job("all", hooks=hooks or set())],
        executor=executor,
        resources=resources or {},
    )
    return defs.resolve_job_def("all")


def test_independent_steps_run_at_once_and_their_dependents_after_both():
    both_started = threading.Barrier(2, timeout=20)  # broken (an error) unless both steps run at once
    order = []

    @asset
    def left() -> None:
        both_started.wait()
        order.append("left")

    @asset
    def right() -> None:
        both_started.wait()
        order.append("right")

    @asset(deps=[left, right])
    def joined() -> None:
        order.append("joined")

    with DagsterInstance.ephemeral() as instance:
        result = run_in_process(_job([left, right, joined]), instance)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    assert sorted(order[:2]) == ["left", "right"] and order[2] == "joined"


def test_max_concurrent_one_runs_one_step_at_a_time():
    windows: dict[str, tuple[float, float]] = {}

    def timed(name):
        @asset(name=name)
        def step() -> None:
            started = time.monotonic()
            time.sleep(0.3)
            windows[name] = (started, time.monotonic())

        return step

    job = _job([timed("a"), timed("b"), timed("c")], threaded_executor.configured({"max_concurrent": 1}))
    with DagsterInstance.ephemeral() as instance:
        assert run_in_process(job, instance).success
    spans = sorted(windows.values())
    assert len(spans) == 3 and all(earlier[1] <= later[0] for earlier, later in zip(spans, spans[1:]))


def test_a_failed_step_skips_its_dependents_while_an_independent_step_finishes():
    @asset
    def broken() -> None:
        raise ValueError("the source table has no column customerID")

    @asset(deps=[broken])
    def downstream() -> None:
        pass

    @asset
    def independent() -> None:
        time.sleep(0.5)  # still running when the failure is handled

    with DagsterInstance.ephemeral() as instance:
        result = run_in_process(_job([broken, downstream, independent]), instance)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert (
        failure.step_key == "broken"
        and "no column customerID" in failure.step_failure_data.error.cause.message
    )
    assert {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"} == {
        "broken",
        "independent",
    }
    assert [e.step_key for e in result.all_events if e.is_step_success] == ["independent"]


def test_a_max_concurrent_below_one_is_refused():
    @asset
    def one() -> None:
        pass

    with DagsterInstance.ephemeral() as instance:
        result = run_in_process(_job([one], threaded_executor.configured({"max_concurrent": 0})), instance)
    assert not result.success
    assert any(
        "max_concurrent must be at least 1" in str(e.message)
        or "max_concurrent must be at least 1" in str(getattr(e.event_specific_data, "error", ""))
        for e in result.all_events
        if e.is_failure
    ), [e.message for e in result.all_events]


def _imports_ahead_job(module: str, import_ahead: bool, seen: dict):
    """upstream -> downstream, whose op tag names ``module``: upstream waits (up to 20 s) for the module
    to be imported and records whether it was, before downstream started."""

    @asset
    def upstream() -> None:
        deadline = time.monotonic() + (20 if import_ahead else 1)
        while module not in sys.modules and time.monotonic() < deadline:
            time.sleep(0.05)
        seen["while_upstream_ran"] = module in sys.modules

    @asset(deps=[upstream], op_tags={IMPORTS_TAG: f"{module}, a_module_that_does_not_exist"})
    def downstream() -> None:
        seen["downstream_ran"] = True

    return _job(
        [upstream, downstream],
        threaded_executor.configured({"max_concurrent": 4, "import_ahead": import_ahead}),
    )


@pytest.mark.parametrize("import_ahead", [True, False])
def test_a_step_s_modules_are_imported_while_its_upstream_step_runs_when_asked(
    tmp_path, monkeypatch, import_ahead
):
    """import_ahead (the project's local target): a step's modules (its IMPORTS_TAG) are imported while
    the steps it waits for run; a module that cannot be imported is left to the step. Off: not."""
    module = f"imported_ahead_{'on' if import_ahead else 'off'}"
    (tmp_path / f"{module}.py").write_text("LOADED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    seen: dict = {}
    with DagsterInstance.ephemeral() as instance:
        result = run_in_process(_imports_ahead_job(module, import_ahead, seen), instance)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    assert seen == {"while_upstream_ran": import_ahead, "downstream_ran": True}
    monkeypatch.delitem(sys.modules, module, raising=False)


@pytest.mark.integration
def test_steps_in_threads_log_to_the_dagster_runs_mlflow_run_and_the_next_run_gets_its_own(tmp_path):
    """Each step works in its own thread, yet logs to the MLflow run dagster-mlflow started for the
    Dagster run; the run ends FINISHED when the last step ends, and a second Dagster run in the same process gets a run of its own."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    both_started = threading.Barrier(2, timeout=20)
    runs_seen: dict[str, str] = {}

    def logging_asset(name):
        @asset(name=name, required_resource_keys={"mlflow"})
        def step(context: AssetExecutionContext) -> None:
            import mlflow

            both_started.wait()
            if name == ends_last:
                time.sleep(1)
            mlflow.log_param(name, threading.current_thread().name)
            with mlflow.start_run(run_name=f"{name}_report", nested=True):
                mlflow.log_metric("rows", 1)
            runs_seen[name] = mlflow.active_run().info.run_id

        return step

    resource = mlflow_tracking_resource(uri, uri, {"demo": "demo"}, tmp_path / "artifacts", {})
    job = _job(
        [logging_asset("first"), logging_asset("second")],
        resources={"mlflow": resource, "spark": object()},
        hooks={end_mlflow_on_run_finished},
    )
    # Not the job's last op in topological order, after which dagster-mlflow's own hook ends the run.
    ends_last = job.nodes_in_topological_order[0].name
    client = MlflowClient(tracking_uri=uri)
    with DagsterInstance.ephemeral() as instance:
        dagster_runs = []
        for _ in range(2):
            result = run_in_process(job, instance)
            assert result.success, [e.message for e in result.all_events if e.is_failure]
            dagster_runs.append(result.run_id)
            experiment = client.get_experiment_by_name("demo").experiment_id
            [mlflow_run] = client.search_runs([experiment], f"tags.dagster_run_id = '{result.run_id}'")
            assert set(runs_seen.values()) == {mlflow_run.info.run_id}
            assert set(mlflow_run.data.params) == {"first", "second"}
            assert mlflow_run.data.params["first"] != mlflow_run.data.params["second"]  # two threads
            children = client.search_runs(
                [experiment], f"tags.mlflow.parentRunId = '{mlflow_run.info.run_id}'"
            )
            assert sorted(c.info.run_name for c in children) == ["first_report", "second_report"]
            ended = client.get_run(mlflow_run.info.run_id).info
            # Ended once both steps had ended, not when the first one did.
            assert ended.status == "FINISHED" and ended.end_time >= max(c.info.end_time for c in children)
    assert len(set(dagster_runs)) == 2


_WAITING_JOB = """
import time
from pathlib import Path

from dagster import Definitions, asset, define_asset_job

from mlops_dagster.runtime.executor import threaded_executor
from mlops_dagster.runtime.interrupts import raise_if_interrupted

MARKS = Path(__file__).parent


def waiting(name):
    @asset(name=name)
    def step(context) -> None:
        (MARKS / f"{name}.started").touch()
        try:
            while True:  # what a step launcher does while its cluster run works
                raise_if_interrupted()
                context.log.debug("still waiting")
                time.sleep(0.01)
        finally:
            (MARKS / f"{name}.stopped").touch()
    return step


defs = Definitions(assets=[waiting("left"), waiting("right")], jobs=[define_asset_job("waits")],
                   executor=threaded_executor.configured({"max_concurrent": 2}))
"""


@pytest.mark.integration
def test_a_terminated_run_stops_its_waiting_steps_and_its_process_exits(tmp_path):
    """SIGINT, what terminating a run does to its run worker: each step that waits stops where it
    checks, and the process ends. (Raising into the threads from outside left a log handler's lock
    taken now and then, and the process hung at exit.)"""
    (tmp_path / "waits.py").write_text(_WAITING_JOB)
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    dagster = str(Path(sys.executable).parent / "dagster")
    process = subprocess.Popen(
        [dagster, "job", "execute", "-f", str(tmp_path / "waits.py"), "-j", "waits"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"{name}.started").exists() for name in ("left", "right")):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[0][-3000:]
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    output = process.communicate(timeout=60)[0]
    assert process.returncode != 0
    assert all((tmp_path / f"{name}.stopped").exists() for name in ("left", "right")), output[-3000:]
    assert "the run was terminated while step left ran" in output
    assert "the run was terminated while step right ran" in output
