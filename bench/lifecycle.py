"""Benchmark: the whole lifecycle (`make run`'s work after install) and the code location's load time.

    .venv/bin/python bench/lifecycle.py [--rows 7043] [--repeat 3]

Each lifecycle run starts from nothing in a fresh temporary MLOPS_HOME and DAGSTER_HOME, in a new
process (so Spark's JVM start and every import are paid, as on a user's first `make run`),
including starting the serving gateway; the gateway is stopped after each run.
Import times are the best of N fresh interpreters. Results are printed as Markdown and written to
bench/results/lifecycle.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _import_seconds(module: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True, cwd=REPO)
        times.append(time.perf_counter() - start)
    return min(times)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _lifecycle_seconds(rows: int) -> tuple[float, float, str]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp, "dagster_home")
        home.mkdir()
        conf = Path(tmp, "bench.yaml")  # each run's serving gateway on its own port
        conf.write_text(f"serving:\n  port: {_free_port()}\n")
        env = {
            **os.environ,
            "MLOPS_HOME": str(Path(tmp, "mlops")),
            "DAGSTER_HOME": str(home),
            "MLOPS_TARGET": "local",
            "MLOPS_CONFIG": str(conf),
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        }
        subprocess.run(
            [str(BIN / "mlops"), "generate", "--use-case", "churn", "--rows", str(rows)],
            check=True,
            env=env,
            capture_output=True,
            cwd=REPO,
        )
        start = time.perf_counter()
        try:
            out = subprocess.run(
                [str(BIN / "mlops"), "run", "--use-case", "churn"],
                env=env,
                capture_output=True,
                text=True,
                cwd=REPO,
            )
            wall = time.perf_counter() - start
        finally:  # the run leaves its serving gateway up, as `make run` does: stop it
            subprocess.run([str(BIN / "mlops"), "stop"], env=env, capture_output=True, cwd=REPO)
        if out.returncode != 0:
            raise SystemExit(f"lifecycle failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
        in_run = float(re.search(r"SUCCESS in ([\d.]+) s", out.stdout).group(1))
        summary = out.stdout[out.stdout.index("run ") :]
        return wall, in_run, summary


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=7043)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    dagster_s = _import_seconds("dagster", 5)
    defs_s = _import_seconds("mlops_dagster.definitions", 5)
    runs = [_lifecycle_seconds(args.rows) for _ in range(args.repeat)]
    walls, in_runs = [r[0] for r in runs], [r[1] for r in runs]
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    result = {
        "machine": machine,
        "rows": args.rows,
        "import_dagster_s": round(dagster_s, 3),
        "import_definitions_s": round(defs_s, 3),
        "import_ratio": round(defs_s / dagster_s, 2),
        "lifecycle_wall_s": [round(w, 1) for w in walls],
        "lifecycle_in_run_s": [round(r, 1) for r in in_runs],
        "lifecycle_wall_median_s": round(statistics.median(walls), 1),
    }
    out_dir = REPO / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "lifecycle.json").write_text(json.dumps(result, indent=2))
    print(f"""| measure | value | goal |
|---|---|---|
| `import dagster` (best of 5) | {dagster_s:.2f} s | |
| `import mlops_dagster.definitions` (best of 5) | {defs_s:.2f} s ({defs_s / dagster_s:.2f}x) | <= 1.5x |
| lifecycle, {args.rows} rows, whole `mlops run --use-case churn` process (median of {args.repeat}) | {statistics.median(walls):.1f} s (runs: {", ".join(f"{w:.1f}" for w in walls)}) | <= 60 s |
| of which inside the Dagster run | {statistics.median(in_runs):.1f} s | |

machine: {machine}

last run's summary:
```
{runs[-1][2].strip()}
```""")


if __name__ == "__main__":
    main()
