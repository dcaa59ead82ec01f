"""The deployment, for real: the code server, the daemon and the webserver of
deploy/docker-compose.yaml, run as the processes that file starts, on deploy/dagster.yaml with a
real PostgreSQL. A dropped file retrains with no hands (sensor -> run queue -> run in the code
server), and after all three restart the state is still there and the same file does not trigger
again. (A second file, drift and the sensors' other rules are covered by test_sensors.py.)

Docker is not available here, so the image itself is not built: the test runs the compose
services' own commands and environment variables in this virtualenv."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from mlops_dagster.cli import generate
from mlops_dagster.resources.local_lakehouse import LocalLakehouse
from mlops_dagster.resources.registry import ModelRegistry
from mlops_dagster.serving.server import stop as stop_gateway
from mlops_dagster.settings import load_settings

from .project import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
BIN = Path(sys.executable).parent
SERVICES = ("code", "daemon", "webserver")  # started in this order, as compose's depends_on has it


class Service:
    """One compose service's command, as a process of this machine."""

    def __init__(self, name: str, command: list[str], env: dict, log: Path):
        self.name, self.command, self.env, self.log = name, command, env, log
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(BIN / self.command[0]), *self.command[1:]],
            env=self.env,
            cwd=REPO,
            stdout=self.log.open("a"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def _with(command: list[str], option: str, value: str) -> list[str]:
    """``command`` with the value after ``option`` replaced (compose's fixed ports and 0.0.0.0)."""
    at = command.index(option)
    return [*command[: at + 1], value, *command[at + 2 :]]


def _wait(what: str, ready, timeout: float, logs: list[Path]) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if ready():
            return
        time.sleep(1)
    pytest.fail(f"{what} not ready within {timeout} s:\n" + "\n".join(p.read_text()[-3000:] for p in logs))


class Deployment:
    """The compose file's code server, daemon and webserver on this machine."""

    def __init__(self, env: dict, folder: Path):
        compose = yaml.safe_load((DEPLOY / "docker-compose.yaml").read_text())
        self.code_port, self.web_port = int(env["DAGSTER_CODE_SERVER_PORT"]), free_port()
        commands = {name: compose["services"][name]["command"] for name in SERVICES}
        commands["code"] = _with(_with(commands["code"], "-h", "127.0.0.1"), "-p", str(self.code_port))
        commands["webserver"] = _with(
            _with(commands["webserver"], "-h", "127.0.0.1"), "-p", str(self.web_port)
        )
        self.services = [Service(name, commands[name], env, folder / f"{name}.log") for name in SERVICES]
        self.env = env

    @property
    def logs(self) -> list[Path]:
        return [s.log for s in self.services]

    def start(self) -> float:
        started = time.time()
        code, daemon, webserver = self.services
        code.start()
        _wait("the code server", self._code_server_serves, 180, self.logs)
        daemon.start()
        webserver.start()
        _wait("the webserver", lambda: self.graphql("{ version }") is not None, 120, self.logs)
        return started

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()

    def _code_server_serves(self) -> bool:
        # The compose file's health check, as compose would run it.
        done = subprocess.run(
            [str(BIN / "dagster"), "api", "grpc-health-check", "-p", str(self.code_port)],
            env=self.env,
            capture_output=True,
            text=True,
        )
        return done.returncode == 0

    def graphql(self, query: str) -> dict | None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.web_port}/graphql",
            data=json.dumps({"query": query}).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())["data"]
        except OSError:
            return None

    def runs_in_ui(self) -> dict[str, str]:
        data = self.graphql("{ runsOrError { ... on Runs { results { runId status } } } }")
        return {r["runId"]: r["status"] for r in data["runsOrError"]["results"]}


@pytest.fixture
def dagster_database(postgres_dsn):
    """A new, empty database on the session's PostgreSQL server: the instance's storage."""
    import psycopg

    name = f"dagster_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(postgres_dsn)
    yield (
        {
            "DAGSTER_PG_HOST": parts.hostname,
            "DAGSTER_PG_PORT": str(parts.port),
            "DAGSTER_PG_DB": name,
            "DAGSTER_PG_USER": parts.username,
            "DAGSTER_PG_PASSWORD": parts.password,
        },
        parts._replace(path=f"/{name}").geturl(),
    )


def _file_runs(instance, statuses=None):
    return instance.get_runs(RunsFilter(tags={"mlops/trigger": "file_arrival"}, statuses=statuses or []))


def _wait_for_successes(instance, count: int, logs: list[Path], timeout: float = 420) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        failed = _file_runs(instance, [DagsterRunStatus.FAILURE])
        if failed:
            events = [
                e.dagster_event.message
                for e in instance.all_logs(failed[0].run_id)
                if e.dagster_event and e.dagster_event.is_step_failure
            ]
            pytest.fail(f"run {failed[0].run_id} failed: {events}")
        if len(_file_runs(instance, [DagsterRunStatus.SUCCESS])) >= count:
            return
        time.sleep(2)
    pytest.fail(
        f"no {count} successful file-arrival runs within {timeout} s; logs:\n"
        + "\n".join(p.read_text()[-3000:] for p in logs)
    )


def _sensor_ticks_since(instance, name: str, since: float) -> int:
    [state] = [s for s in instance.all_instigator_state() if s.instigator_name == name]
    return len(instance.get_ticks(state.instigator_origin_id, state.selector_id, after=since))


def test_the_deployment_retrains_on_a_dropped_file_and_keeps_its_state_across_restarts(
    tmp_path, dagster_database, monkeypatch
):
    import psycopg

    pg_env, database_url = dagster_database
    root, home = tmp_path / "mlops", tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((DEPLOY / "dagster.yaml").read_text())
    config = tmp_path / "automation.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "automation": {
                    "default_status": "running",
                    "file_sensor": {"interval_seconds": 2, "stable_seconds": 1},
                    "drift_sensor": {"interval_seconds": 2, "cooldown_minutes": 0},
                },
                "serving": {"port": free_port()},
            }
        )
    )
    deployment_env = {
        **pg_env,
        "DAGSTER_MAX_CONCURRENT_RUNS": "1",
        "DAGSTER_CODE_SERVER_HOST": "127.0.0.1",
        "DAGSTER_CODE_SERVER_PORT": str(free_port()),
    }
    compose = yaml.safe_load((DEPLOY / "docker-compose.yaml").read_text())
    # The variables the instance and workspace files read are exactly those compose sets.
    assert set(compose["x-dagster"]["environment"]) == set(deployment_env)
    for name, value in {**deployment_env, "DAGSTER_HOME": str(home)}.items():
        monkeypatch.setenv(name, value)
    env = {
        **os.environ,
        "MLOPS_HOME": str(root),
        "MLOPS_CONFIG": str(config),
        "MLOPS_TARGET": "local",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    monkeypatch.setenv("MLOPS_HOME", str(root))
    settings = load_settings("local", extra_file=config)
    lakehouse = LocalLakehouse(root=str(root / "lakehouse"))
    registry = ModelRegistry(
        tracking_uri=settings.mlflow.tracking_uri,
        registry_uri=settings.mlflow.registry_uri,
        model_name=settings.mlflow.model_name,
    )
    deployment = Deployment(env, tmp_path)
    with DagsterInstance.get() as instance:
        try:
            deployment.start()
            generate(2000, 2, False, "base.csv", landing=settings.landing_path)
            _wait_for_successes(instance, 1, deployment.logs)
            [run] = _file_runs(instance)
            assert Path(run.tags["mlops/landing_file"]).name == "base.csv"
            # It went through the daemon's queue (the run coordinator), not straight to a process.
            assert instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_ENQUEUED)
            champion = registry.by_alias("champion")
            assert str(champion.version) == "1" and champion.tags["dagster_run_id"] == run.run_id
            assert len(lakehouse.read(settings.table("raw_customers"))) == 2000
            reports = lakehouse.read(settings.table("churn_drift_metrics"))
            assert reports["dagster_run_id"].tolist() == [run.run_id] and reports[
                "current_rows"
            ].tolist() == [2000]
            assert deployment.runs_in_ui()[run.run_id] == "SUCCESS"

            deployment.stop()
            restarted = deployment.start()
            deadline = time.time() + 60
            while (
                _sensor_ticks_since(instance, "churn_landing_file_sensor", restarted) < 3
                and time.time() < deadline
            ):
                time.sleep(1)
            assert _sensor_ticks_since(instance, "churn_landing_file_sensor", restarted) >= 3
            assert (
                len(_file_runs(instance)) == 1
            )  # the sensor's cursor survived: the same file did not trigger
            assert deployment.runs_in_ui()[run.run_id] == "SUCCESS"  # and the new webserver shows the old run
        finally:
            deployment.stop()
            stop_gateway(settings)
        # All of it lives in PostgreSQL: no SQLite storage next to the instance's config.
        assert not list(home.rglob("*.db"))
        with psycopg.connect(database_url) as connection:
            stored = connection.execute("SELECT count(*) FROM runs").fetchone()[0]
        assert stored == len(instance.get_runs()) >= 1
