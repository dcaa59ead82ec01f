"""What running steps on Databricks costs per launch mode, measured against the workspace emulator.

Seeds a project on `local` (raw table + champion), then materializes the feature tables with
their checks (5 steps) through `dagster asset materialize`: on `local` (in process) and on `dev`
against the emulator once per launch mode (`databricks.launch`): `step_launcher` (dagster-databricks'
step launcher), `pipes` (a job run through `PipesDatabricksClient`) and `serverless` (a serverless
job run through `PipesDatabricksServerlessClient`). Each remote step is a job
run: code upload, submit, poll, a fresh Spark on the "cluster". Prints, side by side, the wall
times, the per-step remote time (submit to terminated), the API calls per step and the upload size.

    .venv/bin/python bench/remote_steps.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mlops_dagster_tests.project import project_at  # noqa: E402
from mlops_dagster_tests.support.databricks_emulator import DatabricksEmulator  # noqa: E402

SELECT = "churn/churn_features,churn/churn_labels"  # the demo use case's assets
MODES = ("step_launcher", "pipes", "serverless")
UPSTREAM = [
    "raw_customers",
    "raw_customers_quarantine",
    "churn_features",
    "churn_labels",
    "churn_training_set",
    "churn_model",
    "challenger_model_version",
    "champion_model_version",
]


def materialize(env: dict[str, str]) -> float:
    started = time.perf_counter()
    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "asset",
            "materialize",
            "-m",
            "mlops_dagster.definitions",
            "--select",
            SELECT,
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=1800,
    )
    if out.returncode != 0:
        raise SystemExit(out.stdout[-3000:] + out.stderr[-3000:])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rows", type=int, default=7043)
    args = parser.parse_args()
    token = f"dapi-bench-{uuid.uuid4().hex}"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "mlops"
        with project_at(root) as project:
            project.land(args.rows, seed=1)
            result = project.run(selection=UPSTREAM)
            assert result.success, project.failures(result)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "MLOPS_"))}
        local_env = {
            **base,
            "MLOPS_TARGET": "local",
            "MLOPS_HOME": str(root),
            "MLOPS_CONFIG": str(root / "override.yaml"),
            "DAGSTER_HOME": str(Path(tmp) / "home_local"),
        }
        Path(local_env["DAGSTER_HOME"]).mkdir()
        local_times = [materialize(local_env) for _ in range(args.repeat)]
        print(
            f"{len(SELECT.split(','))} assets ({SELECT}) and their checks, {args.rows} rows, {args.repeat} repeats"
        )
        print(
            f"{'local (in process)':<28} median {statistics.median(local_times):6.1f} s  {[round(t, 1) for t in local_times]}"
        )
        for mode in MODES:
            measure_mode(mode, Path(tmp), root, base, token, args.repeat)


def measure_mode(mode: str, tmp: Path, root: Path, base: dict[str, str], token: str, repeat: int) -> None:
    """``repeat`` materializations on `dev` with ``databricks.launch: mode``, each on a fresh emulator."""
    mlflow = f"sqlite:///{root}/mlflow/mlflow.db"
    config = tmp / f"dev-{mode}.yaml"
    config.write_text(
        f"root: {root}\nlanding: {root / 'landing' / 'churn'}\n"
        f"mlflow: {{tracking_uri: '{mlflow}', registry_uri: '{mlflow}', experiment: churn, model_name: churn_model}}\n"
        f"databricks: {{poll_interval_seconds: 0.5, launch: {mode}}}\n"
    )
    times, per_step, calls, upload_kb = [], [], [], 0.0
    for i in range(repeat):
        # The project's folders stand for its volumes (serverless steps stage in the io volume).
        with DatabricksEmulator(tmp / f"emulator-{mode}{i}", token, volumes=[root]) as emulator:
            home = tmp / f"home-{mode}{i}"
            home.mkdir()
            env = {**base, "MLOPS_TARGET": "dev", "MLOPS_CONFIG": str(config), "DAGSTER_HOME": str(home)}
            times.append(materialize({**env, "DATABRICKS_HOST": emulator.url, "DATABRICKS_TOKEN": token}))
            runs = list(emulator.runs.values())
            per_step += [(r.end_time - r.start_time) / 1000 for r in runs]
            calls.append(len(emulator.calls) / len(runs))
            staged = root / "io" / "_pipes"  # where serverless steps stage, in this project's io "volume"
            zips = [*emulator.dbfs_root.rglob("*.zip"), *staged.rglob("*.zip")]
            upload_kb = sum(p.stat().st_size for p in zips) / 1024 / len(runs)
            shutil.rmtree(staged, ignore_errors=True)
    print(
        f"{'dev, launch: ' + mode:<28} median {statistics.median(times):6.1f} s  {[round(t, 1) for t in times]}; "
        f"{len(runs)} steps; per remote step (submit to terminated) median {statistics.median(per_step):.1f} s, "
        f"max {max(per_step):.1f} s; {statistics.median(calls):.0f} API calls per step; "
        f"code upload {upload_kb:.0f} KiB per step"
    )


if __name__ == "__main__":
    main()
