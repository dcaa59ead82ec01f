"""Benchmark: iterating warm (runs' Spark on the home's Spark Connect server) against cold (a Spark
JVM per run), on the demo's churn use case, in one fresh project.

    .venv/bin/python bench/warm.py [--runs 3]

1. `mlops run --use-case churn --warm` once to set the project up (data, champion, gateway,
   and the Spark Connect server); not counted.
2. `--runs` times each, alternating warm and cold: the whole lifecycle (`mlops run --use-case churn`,
   with and without `--warm`), then re-materializing `churn/churn_model` alone the way the UI's
   "Materialize" does it outside a UI (`dagster asset materialize`, a process of its own, with
   `SPARK_REMOTE` set or not).
3. `mlops stop`: the gateway and the server.

Prints Markdown and writes bench/results/warm.json. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PORT = 15012  # not the default: a developer's own server may hold 15002


def _timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="mlops-warm-"))
    (home / "dagster").mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster")
    env = {k: v for k, v in os.environ.items() if k not in ("MLOPS_CONFIG", "SPARK_REMOTE")}
    env.update(MLOPS_HOME=str(home / "mlops"), DAGSTER_HOME=str(home / "dagster"), MLOPS_TARGET="local")
    mlops = [str(BIN / "mlops")]
    warm_flags = ["--warm", "--connect-port", str(PORT)]
    materialize = [str(BIN / "dagster"), "asset", "materialize", "-m", "mlops_dagster.definitions"]
    materialize += ["--select", "churn/churn_model"]
    times: dict[str, list[float]] = {
        k: [] for k in ("lifecycle warm", "lifecycle cold", "model warm", "model cold")
    }
    try:
        _timed([*mlops, "run", "--use-case", "churn", *warm_flags], env)
        warm_env = {**env, "SPARK_REMOTE": f"sc://127.0.0.1:{PORT}"}
        for _ in range(args.runs):
            times["lifecycle warm"].append(_timed([*mlops, "run", "--use-case", "churn", *warm_flags], env))
            times["lifecycle cold"].append(_timed([*mlops, "run", "--use-case", "churn"], env))
            times["model warm"].append(_timed(materialize, warm_env))
            times["model cold"].append(_timed(materialize, env))
    finally:
        subprocess.run([*mlops, "stop"], cwd=REPO, env=env, capture_output=True, timeout=300)
        shutil.rmtree(home, ignore_errors=True)
    rows = {
        k: {"median": statistics.median(v), "min": min(v), "max": max(v), "runs": v} for k, v in times.items()
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
