"""Spark through Spark Connect (``spark.remote``): a real Spark Connect server started from the
pyspark distribution the project installs (``mlops spark-connect start``), and the demo's whole
lifecycle run against it: every Spark step's work runs on the server's JVM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import pytest

from mlops_dagster.resources import spark_connect

from .project import free_port, project_at

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("connect")
    info = spark_connect.start(home, port=free_port())
    yield info
    from mlops_dagster.resources.spark import _sessions

    _sessions.pop(info["url"]).stop()  # this process's client: ended before its server
    assert spark_connect.stop(home)
    assert spark_connect.running(home) is None


def _server_jobs(info: dict) -> int:
    with urllib.request.urlopen(f"{info['ui']}/api/v1/applications", timeout=10) as response:
        [app] = json.load(response)
    with urllib.request.urlopen(f"{info['ui']}/api/v1/applications/{app['id']}/jobs", timeout=10) as response:
        return len(json.load(response))


def test_spark_connect_the_lifecycle_runs_its_spark_work_on_the_server(server, tmp_path):
    before = _server_jobs(server)
    with project_at(tmp_path / "home", {"spark": {"spark.remote": server["url"]}}) as project:
        project.land(7043, seed=42)
        result = project.run("lifecycle_job")
        assert result.success, project.failures(result)
        assert project.lakehouse.row_count(project.table("churn_predictions")) == 7043
        assert project.registry.by_alias("champion") is not None
    assert (
        _server_jobs(server) > before + 10
    )  # ingestion, features, training set, scoring, checks: on the server


def test_spark_connect_an_unreachable_server_is_named_with_the_fix(tmp_path):
    url = f"sc://127.0.0.1:{free_port()}"
    with project_at(tmp_path / "home", {"spark": {"spark.remote": url}}) as project:
        project.land(200, seed=1)
        result = project.run("lifecycle_job")
        assert not result.success
        failures = " ".join(project.failures(result))
        assert f"no Spark Connect server answers at {url} (spark.remote)" in failures
        assert "mlops spark-connect start" in failures


def test_spark_connect_the_cli_starts_finds_and_stops_the_homes_server(tmp_path):
    home, port = tmp_path / "home", free_port()
    env = {**os.environ, "MLOPS_HOME": str(home)}

    def mlops(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "mlops_dagster.cli", "spark-connect", *args, "--port", str(port)],
            capture_output=True,
            text=True,
            env=env,
            timeout=240,
        )

    started = mlops("start")
    assert started.returncode == 0, started.stdout + started.stderr
    assert f"Spark Connect server at sc://127.0.0.1:{port}" in started.stdout
    again = mlops("start")  # found running, not a second server
    assert again.returncode == 0 and (
        json.loads((home / "spark-connect" / "server.json").read_text())["url"]
    ).endswith(str(port))
    assert "running at" in mlops("status").stdout
    assert "Spark Connect server stopped" in mlops("stop").stdout
    assert "not running" in mlops("status").stdout
