"""Spark through Spark Connect (``spark.remote``): a real Spark Connect server started from the
pyspark distribution the project installs (``mlops run --warm``, ``mlops spark-connect start``), and
the demo's whole lifecycle run against it: every Spark step's work runs on the server's JVM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from mlops_dagster.resources import spark_connect
from mlops_dagster.resources.local_lakehouse import LocalLakehouse
from mlops_dagster.settings import load_settings

from .project import free_port

pytestmark = pytest.mark.integration


def _server_jobs(info: dict) -> int:
    with urllib.request.urlopen(f"{info['ui']}/api/v1/applications", timeout=10) as response:
        [app] = json.load(response)
    with urllib.request.urlopen(f"{info['ui']}/api/v1/applications/{app['id']}/jobs", timeout=10) as response:
        return len(json.load(response))


def _env(home: Path, **changes: str) -> dict[str, str]:
    env = {**os.environ, "MLOPS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), **changes}
    env.pop("MLOPS_CONFIG", None)
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    return env


def _mlops(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """``mlops ...`` as a user runs it, in a process of its own: pyspark marks a process that made a
    Connect session as Connect-only, for good."""
    return subprocess.run(
        [sys.executable, "-m", "mlops_dagster.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )


def test_spark_connect_a_warm_run_starts_the_homes_server_and_runs_its_spark_work_there(tmp_path):
    home, port = tmp_path / "home", free_port()
    # What an in-process run leaves behind (dagster-mlflow exports its URIs): never the server's.
    env = _env(home, MLFLOW_REGISTRY_URI=f"sqlite:///{tmp_path / 'another-registry.db'}")
    try:
        done = _mlops(env, "run", "--use-case", "churn", "--warm", "--connect-port", str(port))
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert f"warm Spark: the Spark Connect server at sc://127.0.0.1:{port}" in done.stderr
        info = spark_connect.running(home)
        assert info is not None and info["url"] == f"sc://127.0.0.1:{port}"
        # ingestion, features, training set, scoring, checks: on the server
        assert _server_jobs(info) > 10
        lake = LocalLakehouse(root=str(home / "lakehouse"))
        assert len(lake.read(load_settings("local").table("churn_predictions"))) == 7043
    finally:
        stopped = _mlops(env, "stop")
    assert "Spark Connect server stopped" in stopped.stdout
    assert spark_connect.running(home) is None


def test_spark_connect_an_unreachable_server_is_named_with_the_fix(tmp_path):
    url = f"sc://127.0.0.1:{free_port()}"
    done = _mlops(_env(tmp_path / "home", SPARK_REMOTE=url), "run", "--use-case", "churn")
    assert done.returncode != 0
    out = done.stdout + done.stderr
    assert f"no Spark Connect server answers at {url} (spark.remote)" in out, out[-3000:]
    assert "mlops spark-connect start" in out


_UC_PROBE = """
import json, sys
from pyspark.sql import SparkSession
from mlops_dagster.resources.unity_catalog import UnityCatalogLakehouse

url, table = sys.argv[1], "spark_catalog.default.sensor_probe"
lake = UnityCatalogLakehouse(staging_root="/unused", spark_config={"spark.remote": url})
before = lake.exists(table)
SparkSession.builder.remote(url).create().range(3).write.saveAsTable(table)
print(json.dumps({"before": before, "after": lake.exists(table)}))
"""


def test_spark_connect_outside_databricks_compute_needs_a_server_and_never_shows_its_token(monkeypatch):
    from mlops_dagster.resources.spark import connect_session
    from mlops_dagster.resources.unity_catalog import UnityCatalogLakehouse

    monkeypatch.delenv("SPARK_REMOTE", raising=False)
    with pytest.raises(
        RuntimeError, match="this process .* has none: set SPARK_REMOTE to a Databricks Connect URL"
    ):
        UnityCatalogLakehouse(staging_root="/unused").exists("main.mlops.churn_features")
    url = f"sc://127.0.0.1:{free_port()}/;use_ssl=false;token=dapi-never-shown"
    with pytest.raises(RuntimeError) as refused:  # nothing listens there: refused before any session
        connect_session(url)
    assert "no Spark Connect server answers at sc://127.0.0.1:" in str(refused.value)
    assert "dapi-never-shown" not in str(refused.value) and "parameters not shown" in str(refused.value)


def test_spark_connect_the_cli_starts_finds_and_stops_the_homes_server(tmp_path):
    home, port = tmp_path / "home", free_port()
    env = _env(home)

    def mlops(*args: str) -> subprocess.CompletedProcess:
        return _mlops(env, "spark-connect", *args, "--port", str(port))

    started = mlops("start")
    assert started.returncode == 0, started.stdout + started.stderr
    assert f"Spark Connect server at sc://127.0.0.1:{port}" in started.stdout
    again = mlops("start")  # found running, not a second server
    assert again.returncode == 0 and (
        json.loads((home / "spark-connect" / "server.json").read_text())["url"]
    ).endswith(str(port))
    assert "running at" in mlops("status").stdout
    # Reads from outside Databricks compute (a sensor in the daemon, `mlops lineage`) go through the
    # target's Spark Connect server: the Unity Catalog lakehouse finds a table the server holds.
    probe = subprocess.run(
        [sys.executable, "-c", _UC_PROBE, f"sc://127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert json.loads(probe.stdout.splitlines()[-1]) == {"before": False, "after": True}
    assert "Spark Connect server stopped" in mlops("stop").stdout
    assert "not running" in mlops("status").stdout


def test_mlops_dev_opens_the_ui_with_its_runs_spark_on_the_homes_server(tmp_path):
    home, ui_port, port = tmp_path / "home", free_port(), free_port()
    env = _env(home)
    ui = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlops_dagster.cli",
            "dev",
            "--port",
            str(ui_port),
            "--connect-port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while True:
            assert ui.poll() is None, ui.stderr.read().decode()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/server_info", timeout=5) as response:
                    assert "dagster_webserver_version" in json.load(response)
                break
            except OSError:
                assert time.monotonic() < deadline, "the Dagster UI never answered"
                time.sleep(1)
        info = spark_connect.running(home)
        assert info is not None and info["url"] == f"sc://127.0.0.1:{port}"
        # `dagster dev` (the same process, exec'd) and so every run it launches: the home's server.
        environ = Path(f"/proc/{ui.pid}/environ").read_bytes().split(b"\0")
        assert f"SPARK_REMOTE={info['url']}".encode() in environ
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=60)
        stopped = _mlops(env, "stop")
    assert "Spark Connect server stopped" in stopped.stdout
