"""Spark through Spark Connect (``spark.remote``): a real Spark Connect server started from the
pyspark distribution the project installs (``mlops spark-connect start``), and the demo's whole
lifecycle run against it: every Spark step's work runs on the server's JVM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from mlops_dagster.resources import spark_connect
from mlops_dagster.resources.local_lakehouse import LocalLakehouse
from mlops_dagster.settings import load_settings

from .project import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("connect")
    with pytest.MonkeyPatch.context() as patch:
        # What an in-process run leaves behind (dagster-mlflow exports its URIs): not the server's.
        patch.setenv("MLFLOW_REGISTRY_URI", f"sqlite:///{home / 'another-registry.db'}")
        info = spark_connect.start(home, port=free_port())
    yield info
    assert spark_connect.stop(home)
    assert spark_connect.running(home) is None


def _server_jobs(info: dict) -> int:
    with urllib.request.urlopen(f"{info['ui']}/api/v1/applications", timeout=10) as response:
        [app] = json.load(response)
    with urllib.request.urlopen(f"{info['ui']}/api/v1/applications/{app['id']}/jobs", timeout=10) as response:
        return len(json.load(response))


def _mlops_run(home: Path, remote: str) -> subprocess.CompletedProcess:
    """``mlops run --use-case churn`` as a user runs it, with ``SPARK_REMOTE`` set. In a process of its
    own: pyspark marks a process that made a Connect session as Connect-only, for good."""
    env = {
        **os.environ,
        "MLOPS_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "SPARK_REMOTE": remote,
    }
    env.pop("MLOPS_CONFIG", None)
    (home / "dagster").mkdir(parents=True)
    try:
        return subprocess.run(
            [sys.executable, "-m", "mlops_dagster.cli", "run", "--use-case", "churn"],
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
        )
    finally:
        subprocess.run(
            [sys.executable, "-m", "mlops_dagster.cli", "stop"], env=env, capture_output=True, timeout=120
        )


def test_spark_connect_the_lifecycle_runs_its_spark_work_on_the_server(server, tmp_path):
    before = _server_jobs(server)
    done = _mlops_run(tmp_path / "home", server["url"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lake = LocalLakehouse(root=str(tmp_path / "home" / "lakehouse"))
    assert len(lake.read(load_settings("local").table("churn_predictions"))) == 7043
    assert (
        _server_jobs(server) > before + 10
    )  # ingestion, features, training set, scoring, checks: on the server


def test_spark_connect_an_unreachable_server_is_named_with_the_fix(tmp_path):
    url = f"sc://127.0.0.1:{free_port()}"
    done = _mlops_run(tmp_path / "home", url)
    assert done.returncode != 0
    out = done.stdout + done.stderr
    assert f"no Spark Connect server answers at {url} (spark.remote)" in out, out[-3000:]
    assert "mlops spark-connect start" in out


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
