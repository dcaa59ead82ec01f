"""The warm run launcher of ``dagster.yaml`` (``runtime/warm_launcher.py``, ``runtime/run_pool.py``):
runs fork from a process that has the libraries imported, on a real Dagster instance configured by
the repository's own ``dagster.yaml``; each run is a real process, terminated and watched as Dagster
does it. The jobs are a small file of their own, so the test shows that the pool never holds the
code: an edit is in the next run."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, DagsterRunStatus

from mlops_dagster.runtime.warm_launcher import PID_TAG, WarmRunLauncher

JOBS = """
import os
import time
from pathlib import Path

from dagster import in_process_executor, job, op

MARK = "{mark}"


@op
def write_mark():
    Path(os.environ["WARM_TEST_OUT"]).write_text(f"{{MARK}} {{os.getpid()}} {{os.getcwd()}}")


@job(executor_def=in_process_executor)
def write_job():
    write_mark()


@op
def wait_forever():
    Path(os.environ["WARM_TEST_OUT"]).write_text(f"waiting {{os.getpid()}}")
    while True:
        time.sleep(0.05)


@job(executor_def=in_process_executor)
def wait_job():
    wait_forever()
"""


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """A Dagster instance on the repository's ``dagster.yaml`` (its run launcher), the pool ready."""
    home = tmp_path_factory.mktemp("warm-runs")
    shipped = yaml.safe_load((Path(__file__).parents[1] / "dagster.yaml").read_text())
    (home / "dagster.yaml").write_text(yaml.safe_dump({"run_launcher": shipped["run_launcher"]}))
    (home / "jobs.py").write_text(JOBS.format(mark="first"))
    with DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_launcher, WarmRunLauncher)
        assert instance.run_launcher.warm_up(timeout=300), "the run pool was not ready in 5 minutes"
        yield instance, home


def _launch(instance, home: Path, job: str, out: Path, monkeypatch):
    from dagster._core.definitions.reconstruct import ReconstructableJob

    monkeypatch.setenv("WARM_TEST_OUT", str(out))  # the run gets the launcher's environment
    recon = ReconstructableJob.for_file(str(home / "jobs.py"), job)
    run = instance.create_run_for_job(
        job_def=recon.get_definition(), job_code_origin=recon.get_python_origin()
    )
    instance.launch_run(run.run_id, workspace=None)
    return run.run_id


def _until(condition, seconds: float = 120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {seconds} s")


def _finished(instance, run_id: str):
    return _until(lambda: (run := instance.get_run_by_id(run_id)).is_finished and run)


def test_warm_runs_fork_from_the_pool_and_read_the_code_anew(warm, tmp_path, monkeypatch):
    instance, home = warm
    out = tmp_path / "out.txt"
    run = _finished(instance, _launch(instance, home, "write_job", out, monkeypatch))
    assert run.status == DagsterRunStatus.SUCCESS
    mark, pid, cwd = out.read_text().split()
    assert (mark, pid, cwd) == ("first", run.tags[PID_TAG], os.getcwd())
    events = [e.message for e in instance.all_logs(run.run_id) if e.message]
    assert f"Forked the run's process (pid {pid}) from the warm run pool." in events

    (home / "jobs.py").write_text(JOBS.format(mark="edited"))
    again = _finished(instance, _launch(instance, home, "write_job", out, monkeypatch))
    assert again.status == DagsterRunStatus.SUCCESS
    assert out.read_text().split()[0] == "edited"
    assert again.tags[PID_TAG] != pid


def test_warm_runs_terminating_a_forked_run_cancels_it(warm, tmp_path, monkeypatch):
    instance, home = warm
    out = tmp_path / "out.txt"
    run_id = _launch(instance, home, "wait_job", out, monkeypatch)
    _until(lambda: out.exists() and out.read_text().startswith("waiting"))
    assert (
        instance.run_launcher.check_run_worker_health(instance.get_run_by_id(run_id)).status.name == "RUNNING"
    )
    assert instance.run_launcher.terminate(run_id) is True
    assert _finished(instance, run_id).status == DagsterRunStatus.CANCELED
    assert instance.run_launcher.terminate(run_id) is False  # nothing left to terminate


def test_warm_runs_monitoring_fails_a_run_whose_process_died(warm, tmp_path, monkeypatch):
    instance, home = warm
    out = tmp_path / "out.txt"
    run_id = _launch(instance, home, "wait_job", out, monkeypatch)
    _until(lambda: out.exists() and out.read_text().startswith("waiting"))
    run = instance.get_run_by_id(run_id)
    os.kill(int(run.tags[PID_TAG]), signal.SIGKILL)
    health = _until(
        lambda: (h := instance.run_launcher.check_run_worker_health(run)).status.name == "FAILED" and h
    )
    assert f"pid {run.tags[PID_TAG]}" in health.msg
    instance.report_run_failed(run, health.msg)  # what run monitoring does with that answer


def test_warm_runs_stay_cold_when_asked(warm, tmp_path, monkeypatch):
    """``MLOPS_WARM_RUNS=0`` (``mlops dev --cold``): the run goes to Dagster's default launcher,
    which launches through a code server (none here, so it says it needs a workspace)."""
    instance, home = warm
    monkeypatch.setenv("MLOPS_WARM_RUNS", "0")
    with pytest.raises(Exception, match="requires a workspace"):
        _launch(instance, home, "write_job", tmp_path / "out.txt", monkeypatch)
