"""The `mlops` command as a user runs it: a fresh shell, no DAGSTER_HOME exported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_mlops_runs_jobs_without_dagster_home_exported(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "dagster.yaml").write_text("telemetry:\n  enabled: false\nretention: {}\n")
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env["MLOPS_HOME"] = str(tmp_path / "home")
    mlops = Path(sys.executable).with_name("mlops")
    # A job that needs the instance and nothing else: approving a version that does not exist fails
    # in the job, after Dagster has run it on the project's instance.
    done = subprocess.run(
        [str(mlops), "approve", "--use-case", "churn", "--version", "7", "--comment", "ok"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    home = project / ".dagster_home"
    assert f"DAGSTER_HOME is not set: using {home}" in done.stderr
    assert "DagsterHomeNotSetError" not in done.stdout + done.stderr
    assert (home / "dagster.yaml").read_text() == (project / "dagster.yaml").read_text()
    assert done.returncode == 1 and "run " in done.stdout and "FAILURE" in done.stdout, done.stdout[-2000:]
    assert (home / "history" / "runs.db").exists()  # the run is recorded in the project's instance

    # `mlops promote` (the deploy workflows' step) runs each use case's promotion job with the reason.
    promoted = subprocess.run(
        [str(mlops), "promote", "--reason", "release v1.2.0"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert promoted.returncode == 1, promoted.stdout[-2000:] + promoted.stderr[-2000:]
    assert promoted.stdout.count("churn_promote_to_next_environment_job run") == 1
    assert promoted.stdout.count("house_prices_promote_to_next_environment_job run") == 1
    assert "has no champion to promote" in promoted.stdout


def test_mlops_names_the_use_cases_when_a_command_needs_one(tmp_path):
    env = {**os.environ, "MLOPS_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "dagster")}
    mlops = str(Path(sys.executable).with_name("mlops"))
    ambiguous = subprocess.run(
        [mlops, "approve", "--version", "1", "--comment", "ok"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ambiguous.returncode == 2
    assert "which model? name its use case: --use-case churn | house_prices" in ambiguous.stderr
    unknown = subprocess.run(
        [mlops, "run", "--use-case", "nope"], env=env, capture_output=True, text=True, timeout=120
    )
    assert (
        unknown.returncode == 2
        and "there is no use case 'nope'; this project has churn, house_prices" in unknown.stderr
    )
    assert "Traceback" not in ambiguous.stderr + unknown.stderr
    no_demo = subprocess.run(
        [mlops, "generate", "--use-case", "nope"], env=env, capture_output=True, text=True, timeout=120
    )
    assert no_demo.returncode == 2 and "there is no use case 'nope'" in no_demo.stderr
    houses = subprocess.run(
        [mlops, "generate", "--use-case", "house_prices", "--rows", "50"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert houses.returncode == 0, houses.stderr
    written = Path(houses.stdout.strip())
    assert written == tmp_path / "home" / "landing" / "house_prices" / "houses_50_seed42.csv"
    assert (
        written.read_text().splitlines()[0] == "houseID,neighborhood,houseType,area,rooms,yearBuilt,"
        "distanceToCenter,hasGarden,price"
    )
