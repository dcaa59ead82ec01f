"""What running steps on Databricks job clusters costs, measured against the workspace emulator.

Seeds a project on `local` (raw table + champion), then materializes the feature tables with
their checks (5 steps) twice through `dagster asset materialize`: on `local` (in process) and on
`dev` against the emulator (each step a job run: code zip upload, submit, poll, a fresh Spark on
the "cluster"). Prints wall times, the per-step remote overhead, the API calls and upload size.

    .venv/bin/python bench/remote_steps.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
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
        mlflow = f"sqlite:///{root}/mlflow/mlflow.db"
        dev_config = Path(tmp) / "dev.yaml"
        dev_config.write_text(
            f"root: {root}\nlanding: {root / 'landing' / 'churn'}\n"
            f"mlflow: {{tracking_uri: '{mlflow}', registry_uri: '{mlflow}', experiment: churn, model_name: churn_model}}\n"
            "databricks: {poll_interval_seconds: 0.5}\n"
        )
        local_times, remote_times, per_step, calls, zip_kb = [], [], [], [], 0.0
        for i in range(args.repeat):
            local_times.append(materialize(local_env))
            with DatabricksEmulator(Path(tmp) / f"emulator{i}", token) as emulator:
                home = Path(tmp) / f"home_dev{i}"
                home.mkdir()
                remote_times.append(
                    materialize(
                        {
                            **base,
                            "MLOPS_TARGET": "dev",
                            "MLOPS_CONFIG": str(dev_config),
                            "DAGSTER_HOME": str(home),
                            "DATABRICKS_HOST": emulator.url,
                            "DATABRICKS_TOKEN": token,
                        }
                    )
                )
                runs = list(emulator.runs.values())
                per_step += [(r.end_time - r.start_time) / 1000 for r in runs]
                calls.append(len(emulator.calls) / len(runs))
                code = emulator.local_path(runs[0].task["spark_python_task"]["parameters"][2])
                zip_kb = code.stat().st_size / 1024
        steps = len(runs)
        print(f"{steps} steps ({SELECT} + their checks), {args.rows} rows, {args.repeat} repeats")
        print(
            f"local (in process):      median {statistics.median(local_times):6.1f} s  {[round(t, 1) for t in local_times]}"
        )
        print(
            f"dev (emulated clusters): median {statistics.median(remote_times):6.1f} s  {[round(t, 1) for t in remote_times]}"
        )
        print(
            f"per remote step (submit to terminated): median {statistics.median(per_step):.1f} s, "
            f"max {max(per_step):.1f} s"
        )
        print(f"API calls per step: {statistics.median(calls):.0f}; code upload per step: {zip_kb:.0f} KiB")


if __name__ == "__main__":
    main()
