"""Runs killed with SIGKILL at the worst moments, then run again: nothing lost, nothing twice.

Each crash is a real `mlops run` process (``support/crash_run.py``) that kills itself right after
a write committed and before the write that follows it, with nothing cleaned up. The next run is
a plain `mlops run` in a fresh process on the same home and Dagster instance. The tests share one
home and go in lifecycle order (ingestion, registration, scoring): each stage's crash needs what
the stages before it left, as in a real deployment. docs/reliability.md lists what each stage
guarantees.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from mlops_dagster.resources.registry import ABANDONED, CHALLENGER, CHAMPION
from mlops_dagster.settings.constants import LANDING_LOG
from mlops_dagster_tests.project import project_at

ROOT = Path(__file__).parents[1]
LAKEHOUSE = "mlops_dagster.resources.local_lakehouse:LocalLakehouse"
REFUSED = (
    "BAD-0001,Male,0,Yes,No,not-a-number,Yes,No,DSL,No,No,No,No,No,No,One year,No,Mailed check,20.0,100.0,No\n"
    "BAD-0002,Male,0,Yes,No,5,Yes,No,DSL,No,No,No,No,No,No,One year,No,Mailed check,-20.0,100.0,No\n"
)


class Home:
    """One MLOPS_HOME and Dagster instance that every run of this module works on."""

    def __init__(self, project, root: Path):
        self.project, self.root = project, root
        (root / "dagster_home").mkdir()
        (root / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        self.env = {
            **os.environ,
            "MLOPS_HOME": str(project.root),
            "MLOPS_CONFIG": str(project.root / "override.yaml"),
            "DAGSTER_HOME": str(root / "dagster_home"),
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }

    def crash(self, job: str, target: str, when: str, match: str) -> None:
        """Run ``job`` until the process kills itself at ``target`` (``before`` / ``after`` a call
        mentioning ``match``)."""
        argv = [
            sys.executable,
            "-m",
            "mlops_dagster_tests.support.crash_run",
            job,
            "churn",
            target,
            when,
            match,
        ]
        done = subprocess.run(argv, env=self.env, cwd=self.root, capture_output=True, text=True, timeout=600)
        assert done.returncode == -9, (
            f"the run was not killed at {target}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )

    def start(self, job: str) -> subprocess.Popen:
        mlops = Path(sys.executable).with_name("mlops")
        return subprocess.Popen(
            [str(mlops), "run", "--job", job, "--use-case", "churn"],
            env=self.env,
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def run(self, job: str) -> str:
        process = self.start(job)
        out, _ = process.communicate(timeout=600)
        assert process.returncode == 0, out[-5000:]
        return out

    def runs(self, job: str) -> list:
        """The runs of ``job`` (``training``, ...), oldest first."""
        with DagsterInstance.from_config(str(self.root / "dagster_home")) as instance:
            runs = instance.get_runs()
        return [r for r in reversed(runs) if r.job_name == self.project.settings.names.job(job)]

    def table(self, name: str):
        return self.project.lakehouse.read(self.project.table(name))


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("crashes")
    with project_at(root / "home") as project:
        landed = project.land(None, 42, name="first.csv")
        with landed.open("a") as f:
            f.write(REFUSED)  # two rows the contract refuses: the quarantine has something to lose
        yield Home(project, root)


def test_a_run_killed_between_ingestions_writes_is_ingested_once_by_the_next(home):
    names = home.project.settings.names
    # Killed after the raw rows were merged and the refused ones appended, before the landing file
    # was logged as ingested: the next run reads the file again.
    home.crash("training", f"{LAKEHOUSE}.write_files", "after", names.quarantine)
    assert len(home.table(names.quarantine)) == 2 and not home.project.lakehouse.exists(
        home.project.table(LANDING_LOG)
    )
    # The next run is killed too, later (registration); its ingestion finished.
    home.crash("training", "mlops_dagster.resources.registry:ModelRegistry.set_alias", "before", CHALLENGER)
    raw, refused, log = home.table(names.raw), home.table(names.quarantine), home.table(LANDING_LOG)
    key = home.project.settings.dataset.key
    assert len(raw) == raw[key].nunique() == 7043  # the demo's customers, each once
    assert len(refused) == 2 and sorted(refused["line_number"]) == [7045, 7046]
    assert len(log) == 1 and log["file_path"].iloc[0].endswith("first.csv")


def test_a_version_registered_by_a_killed_run_is_abandoned_never_promoted(home):
    registry = home.project.registry
    [orphan] = registry.client().search_model_versions(f"name='{registry.model_name}'")
    assert registry.validation_status(orphan) is None  # killed between registering and validating
    home.run("training")
    orphan = registry.version(orphan.version)
    assert registry.validation_status(orphan) == ABANDONED
    assert orphan.tags["validation_details"].startswith("registered by run ")
    champion, challenger = registry.by_alias(CHAMPION), registry.by_alias(CHALLENGER)
    assert champion.version == challenger.version != orphan.version and registry.is_validated(champion)
    # Each killed run is reported failed by the run after it (it held the use case's pool).
    first, second, third = home.runs("training")
    assert (
        first.status == second.status == DagsterRunStatus.FAILURE and third.status == DagsterRunStatus.SUCCESS
    )
    # Their MLflow runs, left RUNNING by the kills, were ended KILLED when the next run started.
    client = registry.client()
    experiment = client.get_experiment_by_name(home.project.settings.mlflow.experiment)
    status = {
        r.data.tags["dagster_run_id"]: r.info.status for r in client.search_runs([experiment.experiment_id])
    }
    assert [status[r.run_id] for r in (first, second, third)] == ["KILLED", "KILLED", "FINISHED"]
    assert len(home.table(home.project.settings.names.raw)) == 7043  # still each customer once


def test_two_runs_after_a_crash_in_scoring_wait_for_each_other_and_log_each_prediction_once(home):
    names = home.project.settings.names
    # Killed right after the predictions were appended to the prediction log.
    home.crash("batch_inference", f"{LAKEHOUSE}.write_files", "after", names.prediction_log)
    assert len(home.table(names.prediction_log)) == 7043
    # Two runs at once (a schedule's and a manual one): one frees the killed run's pool slot and
    # scores, the other waits for it, then scores the same champion on the same features again.
    first, second = home.start("batch_inference"), home.start("batch_inference")
    for process in (first, second):
        out, _ = process.communicate(timeout=600)
        assert process.returncode == 0, out[-5000:]
    killed, *done = home.runs("batch_inference")
    assert (
        killed.status == DagsterRunStatus.FAILURE
        and [r.status for r in done] == [DagsterRunStatus.SUCCESS] * 2
    )
    with DagsterInstance.from_config(str(home.root / "dagster_home")) as instance:
        said = [e.message for r in done for e in instance.all_logs(r.run_id) if e.is_dagster_event]
    assert any(m.startswith(f"freed the pool slot of run {killed.run_id}") for m in said), said
    assert any(m.startswith("waiting for run ") for m in said), said
    log, predictions = home.table(names.prediction_log), home.table(names.predictions)
    key = home.project.settings.dataset.key
    assert len(log) == log[key].nunique() == 7043  # one batch: the same champion and features
    assert len(predictions) == predictions[key].nunique() == 7043


def _capture(tmp_path: Path, flush_seconds: float = 3600.0):
    """The gateway's inference capture as ``server.build_gateway`` makes it: a journal folder and a
    real Delta inference table, each batch appended once."""
    import pandas as pd

    from mlops_dagster.resources.local_lakehouse import LocalLakehouse
    from mlops_dagster.serving.capture import InferenceCapture

    lakehouse = LocalLakehouse(root=str(tmp_path / "lakehouse"))
    table = "ml_dev_catalog.mlops.ep_payload"

    def write(rows, once):
        lakehouse.write(table, pd.DataFrame(rows), "append", once=once)

    capture = InferenceCapture(write, 100_000, flush_seconds, journal=tmp_path / "capture")
    return capture, lambda: lakehouse.read(table) if lakehouse.exists(table) else pd.DataFrame()


_KILLED_GATEWAY = """
import os, signal, sys
sys.path[:0] = [{root!r}]
from mlops_dagster_tests.test_crash_recovery import _capture
from pathlib import Path
capture, _ = _capture(Path({folder!r}))
capture.start()
for i in range(250):
    capture.record({{"request_id": f"r{{i}}", "status_code": 200, "latency_ms": 1.5}})
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_requests_captured_by_a_gateway_killed_before_its_flush_are_committed_by_the_next(tmp_path):
    script = _KILLED_GATEWAY.format(root=str(ROOT), folder=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr[-3000:]
    capture, table = _capture(tmp_path, flush_seconds=0.1)
    assert capture.recovered == 250 and table().empty  # nothing was committed before the kill
    capture.start().close()
    assert sorted(table()["request_id"]) == sorted(f"r{i}" for i in range(250))
    assert not list((tmp_path / "capture").iterdir())  # every journal file committed and removed


def test_a_batch_committed_just_before_a_kill_is_not_committed_again(tmp_path):
    capture, table = _capture(tmp_path)
    for i in range(10):
        capture.record({"request_id": f"r{i}", "status_code": 200, "latency_ms": 1.0})
    [journal] = (tmp_path / "capture").glob("*.jsonl")
    kept = journal.read_text()
    capture.start().close()
    assert len(table()) == 10
    # Killed after the commit and before the journal file was removed: the file is still there,
    # with a last record cut short by the kill.
    journal.write_text(kept + '{"request_id": "r1')
    again, table = _capture(tmp_path)
    assert again.recovered == 10
    again.start().close()
    assert sorted(table()["request_id"]) == sorted(f"r{i}" for i in range(10))
