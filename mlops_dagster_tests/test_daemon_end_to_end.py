"""The closed loop with the real Dagster daemon: a dropped file retrains with no hands, and a
restarted daemon does not ingest the same file twice."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from mlops_dagster.cli import generate
from mlops_dagster.resources.lakehouse import LocalLakehouse
from mlops_dagster.resources.registry import ModelRegistry
from mlops_dagster.serving.server import stop as stop_gateway
from mlops_dagster.settings import load_settings

from .project import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


class Daemon:
    def __init__(self, env: dict, log: Path):
        self.env, self.log = env, log
        self.process: subprocess.Popen | None = None

    def start(self) -> float:
        started = time.time()
        self.process = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")],
            env=self.env, cwd=self.log.parent, stdout=self.log.open("a"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return started

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def _file_runs(instance, statuses=None):
    return instance.get_runs(RunsFilter(tags={"mlops/trigger": "file_arrival"}, statuses=statuses or []))


def _wait_for_successes(instance, count: int, log: Path, timeout: float = 420) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        failed = _file_runs(instance, [DagsterRunStatus.FAILURE])
        if failed:
            events = [e.dagster_event.message for e in instance.all_logs(failed[0].run_id)
                      if e.dagster_event and e.dagster_event.is_step_failure]
            pytest.fail(f"run {failed[0].run_id} failed: {events}")
        if len(_file_runs(instance, [DagsterRunStatus.SUCCESS])) >= count:
            return
        time.sleep(2)
    pytest.fail(f"no {count} successful file-arrival runs within {timeout} s; daemon log:\n"
                + log.read_text()[-4000:])


def _sensor_ticks_since(instance, name: str, since: float) -> int:
    [state] = [s for s in instance.all_instigator_state() if s.instigator_name == name]
    return len(instance.get_ticks(state.instigator_origin_id, state.selector_id, after=since))


def test_dropped_files_retrain_and_a_restart_does_not_repeat_them(tmp_path):
    root, home = tmp_path / "mlops", tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    config = tmp_path / "automation.yaml"
    config.write_text(yaml.safe_dump({"automation": {
        "default_status": "running",
        "file_sensor": {"interval_seconds": 2, "stable_seconds": 1},
        "drift_sensor": {"interval_seconds": 2, "cooldown_minutes": 0},
    }, "serving": {"port": free_port()}}))
    env = {**os.environ, "MLOPS_HOME": str(root), "MLOPS_CONFIG": str(config), "MLOPS_TARGET": "local",
           "DAGSTER_HOME": str(home), "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    os.environ["MLOPS_HOME"] = str(root)
    settings = load_settings("local", extra_file=config)
    lakehouse = LocalLakehouse(root=str(root / "lakehouse"))
    registry = ModelRegistry(tracking_uri=settings.mlflow.tracking_uri, registry_uri=settings.mlflow.registry_uri,
                             model_name=settings.mlflow.model_name)
    daemon = Daemon(env, tmp_path / "daemon.log")
    with DagsterInstance.from_config(str(home)) as instance:
        try:
            daemon.start()
            generate(2000, 2, False, "base.csv", landing=settings.landing_path)
            _wait_for_successes(instance, 1, daemon.log)
            assert str(registry.by_alias("champion").version) == "1"

            generate(800, 8, True, "drifted.csv", landing=settings.landing_path)
            _wait_for_successes(instance, 2, daemon.log)
            runs = _file_runs(instance)
            assert sorted(Path(r.tags["mlops/landing_file"]).name for r in runs) == ["base.csv", "drifted.csv"]
            newest = max(registry.client().search_model_versions(f"name='{settings.mlflow.model_name}'"),
                         key=lambda v: int(v.version))
            assert int(newest.version) == 2 and newest.tags["dagster_run_id"] == runs[0].run_id
            reports = lakehouse.read(settings.table("churn_drift_metrics")).sort_values("report_time")
            assert len(reports) == 2 and reports["dagster_run_id"].iloc[-1] == runs[0].run_id
            assert reports["current_rows"].tolist() == [2000, 800]
            raw = lakehouse.read(settings.table("raw_customers"))
            assert len(raw) == 2800

            # The drift sensor sees the new report but the file run already retrained on that data.
            time.sleep(8)
            assert instance.get_runs(RunsFilter(tags={"mlops/trigger": "drift"})) == []

            daemon.stop()
            restarted = daemon.start()
            deadline = time.time() + 60
            while _sensor_ticks_since(instance, "churn_landing_file_sensor", restarted) < 3 and time.time() < deadline:
                time.sleep(1)
            assert _sensor_ticks_since(instance, "churn_landing_file_sensor", restarted) >= 3
            assert len(_file_runs(instance)) == 2  # the same files did not trigger again
        finally:
            daemon.stop()
            stop_gateway(settings)
