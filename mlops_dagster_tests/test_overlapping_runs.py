"""Two runs of one use case at once: the later waits for the earlier (pool ``mlops/<use case>``, held
by the executor of every run), and a run killed while holding the pool does not block the use case."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus

from mlops_dagster.runtime.run_lock import PROCESS_TAG, pools_of, process_alive, this_process
from mlops_dagster.settings import USE_CASE_TAG


class HeldRuns:
    """Runs of ``support/held_run.py`` on one Dagster instance (a DAGSTER_HOME of its own)."""

    def __init__(self, root: Path):
        self.home, self.folder = root / "dagster_home", root / "steps"
        self.home.mkdir()
        self.folder.mkdir()
        (self.home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        self.env = {**os.environ, "DAGSTER_HOME": str(self.home)}

    def start(self, use_case: str = "demo") -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "mlops_dagster_tests.support.held_run", str(self.folder), use_case],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def start_behind(self) -> tuple[subprocess.Popen, subprocess.Popen]:
        """A run whose step holds the use case, and a second run of it, up (its process tagged its
        run) and waiting."""
        first = self.start()
        self.started(first)
        second = self.start()
        deadline = time.monotonic() + 60
        while str(second.pid) not in self.runs():
            assert time.monotonic() < deadline, "the second run never started"
            time.sleep(0.2)
        return first, second

    def started(self, process: subprocess.Popen, timeout: float = 120) -> float:
        return _wait_for(self.folder / f"{process.pid}.started", timeout)

    def ended(self, process: subprocess.Popen) -> float:
        return float((self.folder / f"{process.pid}.ended").read_text())

    def release(self) -> None:
        (self.folder / "release").touch()

    def runs(self) -> dict[str, object]:
        """The instance's runs by the pid that executed them (once their executor has tagged them)."""
        with DagsterInstance.from_config(str(self.home)) as instance:
            return {
                r.tags[PROCESS_TAG].split(":")[1]: r for r in instance.get_runs() if PROCESS_TAG in r.tags
            }

    def engine_messages(self, run_id: str) -> list[str]:
        with DagsterInstance.from_config(str(self.home)) as instance:
            return [e.message for e in instance.all_logs(run_id) if e.is_dagster_event]


def _wait_for(path: Path, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} did not appear in {timeout:.0f} s"
        time.sleep(0.1)
    return float(path.read_text())


def _finish(process: subprocess.Popen) -> str:
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 0, out[-3000:]
    return out


@pytest.fixture
def held(tmp_path) -> HeldRuns:
    runs = HeldRuns(tmp_path)
    yield runs
    runs.release()


def test_a_second_run_of_a_use_case_waits_for_the_first_and_says_for_which(held):
    first, second = held.start_behind()
    time.sleep(3)
    assert not (held.folder / f"{second.pid}.started").exists(), "both runs of the use case ran at once"
    held.release()
    _finish(first)
    _finish(second)
    assert held.started(second) >= held.ended(first)
    runs = held.runs()
    waited = held.engine_messages(runs[str(second.pid)].run_id)
    first_id = runs[str(first.pid)].run_id
    assert any(m.startswith(f"waiting for run {first_id} to finish: pool mlops/demo") for m in waited), waited


def test_runs_of_different_use_cases_do_not_wait_for_each_other(held):
    churn = held.start("churn")
    held.started(churn)
    houses = held.start("houses")
    held.started(houses)  # while churn's step holds its run: houses did not wait for it
    held.release()
    _finish(churn)
    _finish(houses)


def test_a_run_killed_holding_the_pool_is_reported_failed_and_the_next_run_goes_on(held):
    killed = held.start()
    held.started(killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    held.release()
    _finish(next_run := held.start())
    runs = held.runs()
    dead, done = runs[str(killed.pid)], runs[str(next_run.pid)]
    assert dead.status == DagsterRunStatus.FAILURE and done.status == DagsterRunStatus.SUCCESS
    assert f"freed the pool slot of run {dead.run_id} (reported failed: its process is gone)" in (
        held.engine_messages(done.run_id)
    )
    with DagsterInstance.from_config(str(held.home)) as instance:
        info = instance.event_log_storage.get_concurrency_info("mlops/demo")
    assert info.limit == 1 and not info.claimed_slots  # the pool is back to free once both ended


class _Run:
    def __init__(self, tags, selection=None):
        self.tags, self.asset_selection = tags, selection


def test_a_run_holds_its_use_cases_pool_or_each_pool_of_the_assets_it_materializes():
    assert pools_of(_Run({USE_CASE_TAG: "churn"})) == ["mlops/churn"]
    selection = {AssetKey(["sales", "sales_features"]), AssetKey(["churn", "churn_features"])}
    assert pools_of(_Run({}, selection)) == ["mlops/churn", "mlops/sales"]  # sorted: no two runs deadlock
    assert pools_of(_Run({}, {AssetKey("compliance_report")})) == []  # project-wide: no use case
    assert pools_of(_Run({})) == []


def test_only_a_process_known_gone_on_this_host_counts_as_dead():
    assert process_alive(this_process())
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    assert not process_alive(f"{socket.gethostname()}:{done.stdout.strip()}:")
    host, pid, start = this_process().split(":")
    assert not process_alive(f"{host}:{pid}:{int(start) - 1}")  # the pid reused by a later process
    assert process_alive(f"another-host:{done.stdout.strip()}:")  # its run monitoring decides there
    assert process_alive("")  # a run from before the tag existed


def test_a_run_terminated_while_it_waits_ends_and_leaves_no_claim(held):
    first, waiting = held.start_behind()
    time.sleep(1)
    waiting.send_signal(signal.SIGINT)  # what terminating a run from the UI sends its process
    out, _ = waiting.communicate(timeout=60)
    assert waiting.returncode == 1 and "FAILURE" in out, out[-3000:]
    assert not (held.folder / f"{waiting.pid}.started").exists()
    with DagsterInstance.from_config(str(held.home)) as instance:
        info = instance.event_log_storage.get_concurrency_info("mlops/demo")
    holder = {held.runs()[str(first.pid)].run_id}
    assert info.active_run_ids == holder and {p.run_id for p in info.pending_steps} == holder
    held.release()
    _finish(first)


@pytest.mark.parametrize("config", ["dagster.yaml", "deploy/dagster.yaml"])
def test_the_run_queue_starts_one_run_of_a_use_case_at_a_time(config, tmp_path):
    """Queued runs (the UI's, sensors', schedules') of one use case wait in the queue, not in a process."""
    import yaml

    root = Path(__file__).parents[1]
    (tmp_path / "dagster.yaml").write_text((root / config).read_text())
    coordinator = yaml.safe_load((root / config).read_text())["run_coordinator"]
    assert coordinator["config"]["tag_concurrency_limits"] == [
        {"key": USE_CASE_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    ]
    if config == "dagster.yaml":  # the deployment's needs PostgreSQL to load: test_daemon_end_to_end
        with DagsterInstance.from_config(str(tmp_path)) as instance:
            limits = instance.run_coordinator.get_run_queue_config().tag_concurrency_limits
        assert limits == coordinator["config"]["tag_concurrency_limits"]
