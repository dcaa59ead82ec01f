"""Benchmark: iterating in the UI, warm against cold, on the demo's churn use case in one fresh project.

    .venv/bin/python bench/warm.py [--runs 3]

1. `mlops run --use-case churn --warm` once sets the project up (data, champion, gateway and the
   home's Spark Connect server); not counted.
2. For each way `make dev` runs (warm: `mlops dev`, whose runs fork from the warm run pool and use
   the Spark Connect server; cold: `mlops dev --cold`, a new process and a Spark JVM per run),
   `dagster dev` is started and its first runs warm it up (not counted: the first run starts the
   pool, and the run that follows it is the first forked from it). Then `--runs` times each, the
   way the UI's "Materialize" does it (a GraphQL launch, then the queue, the daemon and the run
   launcher): `churn/churn_model` alone, then the whole `churn_lifecycle_job`. Each time is wall
   time from the launch request to the run's SUCCESS, polled every 0.1 s.
3. `mlops stop`: the gateway and the server.

Prints Markdown and writes bench/results/warm.json. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CONNECT_PORT = 15012  # not the defaults: a developer's own servers may hold 15002 and 3000
UI_PORT = 3412
MODEL = [["churn", "churn_model"]]
LIFECYCLE = "churn_lifecycle_job"


def _run(command: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")


class _Ui:
    """A `mlops dev` of its own process group, and launches through its GraphQL API."""

    def __init__(self, env: dict[str, str], cold: bool, log: Path):
        from dagster_graphql import DagsterGraphQLClient

        command = [str(BIN / "mlops"), "dev", "--port", str(UI_PORT), "--connect-port", str(CONNECT_PORT)]
        self.process = subprocess.Popen(
            command + (["--cold"] if cold else []),
            cwd=REPO,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{UI_PORT}/server_info", timeout=2)
                break
            except OSError:
                if self.process.poll() is not None:
                    raise SystemExit(f"mlops dev exited ({self.process.returncode}); see {log}") from None
                time.sleep(1)
        self.client = DagsterGraphQLClient("127.0.0.1", port_number=UI_PORT)

    def launch(self, job: str | None) -> tuple[float, str]:
        """Seconds from the launch request to SUCCESS, and the run's id."""
        started = time.perf_counter()
        if job is None:
            run_id = self.client.submit_job_execution("__ASSET_JOB", asset_selection=MODEL)
        else:
            run_id = self.client.submit_job_execution(job)
        while (status := self.client.get_run_status(run_id).value) not in ("SUCCESS", "FAILURE", "CANCELED"):
            time.sleep(0.1)
        if status != "SUCCESS":
            raise SystemExit(f"run {run_id} ended {status}")
        return time.perf_counter() - started, run_id

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)


def _forked(env: dict[str, str], run_id: str) -> bool:
    """Whether the run's process was forked from the warm run pool (its tag says so)."""
    from dagster import DagsterInstance

    from mlops_dagster.runtime.warm_launcher import PID_TAG

    os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
    with DagsterInstance.get() as instance:
        return PID_TAG in instance.get_run_by_id(run_id).tags


def _measure(env: dict[str, str], cold: bool, runs: int, home: Path) -> dict[str, list[float]]:
    ui = _Ui(env, cold, home / f"dev-{'cold' if cold else 'warm'}.log")
    times: dict[str, list[float]] = {"model": [], "lifecycle": []}
    try:
        for _ in range(10):  # warm-up: until a run forks from the pool (cold: one run)
            _, run_id = ui.launch(None)
            if cold or _forked(env, run_id):
                break
            time.sleep(5)
        else:
            raise SystemExit("no run forked from the warm run pool after 10 runs")
        for _ in range(runs):
            times["model"].append(ui.launch(None)[0])
            times["lifecycle"].append(ui.launch(LIFECYCLE)[0])
    finally:
        ui.stop()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="mlops-warm-"))
    (home / "dagster").mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster")
    env = {
        k: v for k, v in os.environ.items() if k not in ("MLOPS_CONFIG", "SPARK_REMOTE", "MLOPS_WARM_RUNS")
    }
    env.update(MLOPS_HOME=str(home / "mlops"), DAGSTER_HOME=str(home / "dagster"), MLOPS_TARGET="local")
    mlops = [str(BIN / "mlops")]
    try:
        _run([*mlops, "run", "--use-case", "churn", "--warm", "--connect-port", str(CONNECT_PORT)], env)
        measured = {
            "warm": _measure(env, False, args.runs, home),
            "cold": _measure(env, True, args.runs, home),
        }
    finally:
        subprocess.run([*mlops, "stop"], cwd=REPO, env=env, capture_output=True, timeout=300)
        shutil.rmtree(home, ignore_errors=True)
    rows = {
        f"{what} {way}": {"median": statistics.median(v), "min": min(v), "max": max(v), "runs": v}
        for way, times in measured.items()
        for what, v in times.items()
    }
    print(f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}\n")
    print("| what | median s | min s | max s |\n|---|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['median']:.1f} | {row['min']:.1f} | {row['max']:.1f} |")
    out = REPO / "bench" / "results" / "warm.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
