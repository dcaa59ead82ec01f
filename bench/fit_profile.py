"""Where the model fit's time goes: the project's scikit-learn pipeline on the demo's columns.

    .venv/bin/python bench/fit_profile.py [--rows 800000]

Generates the telco demo (`mlops generate`) into a temporary MLOPS_HOME, derives the model's
columns as the feature step does (in pandas here: the point is the fit, not the features), then
times the preprocessing and the classifier of `build_pipeline` apart, and prints the preprocessing
under cProfile (the 15 costliest calls by cumulative time).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
ADDONS = [
    "onlineSecurity",
    "onlineBackup",
    "deviceProtection",
    "techSupport",
    "streamingTV",
    "streamingMovies",
]


def main() -> None:
    import pandas as pd

    from mlops_dagster.ml.training import build_pipeline
    from mlops_dagster.settings import load_project

    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--rows", type=int, default=800_000, help="rows to fit on (the train split of 1M rows)"
    )
    rows = parser.parse_args().rows
    settings = load_project("local").default
    fs, model = settings.features, settings.training.model
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [str(BIN / "mlops"), "generate", "--use-case", "churn", "--rows", str(rows)],
            check=True,
            env={**os.environ, "MLOPS_HOME": tmp},
            capture_output=True,
        )
        [csv] = Path(tmp).rglob("*.csv")
        frame = pd.read_csv(csv)
    frame["totalCharges"] = pd.to_numeric(frame["totalCharges"], errors="coerce").fillna(0.0)
    frame["avgMonthlySpend"] = frame["totalCharges"] / frame["tenure"].clip(lower=1)
    frame["numAddonServices"] = sum((frame[c] == "Yes").astype(float) for c in ADDONS)
    label = (frame["churnString"] == "Yes").astype(int)
    numerical = [c for c in fs.columns if c not in fs.categorical]
    features = frame[fs.columns]

    pipeline = build_pipeline(model.class_path, model.params, fs.categorical, numerical)
    (_, preprocess), (_, classifier) = pipeline.steps
    start = time.perf_counter()
    matrix = preprocess.fit_transform(features)
    print(f"{rows:,} rows: preprocessing {time.perf_counter() - start:.2f} s ({matrix.shape[1]} columns)")
    start = time.perf_counter()
    classifier.fit(matrix, label)
    print(
        f"classifier {time.perf_counter() - start:.2f} s ({type(classifier).__name__}, "
        f"{getattr(classifier, 'n_iter_', ['?'])[0]} iterations)"
    )

    fresh = build_pipeline(model.class_path, model.params, fs.categorical, numerical).steps[0][1]
    profile = cProfile.Profile()
    profile.runcall(fresh.fit_transform, features)
    pstats.Stats(profile).sort_stats("cumulative").print_stats(15)


if __name__ == "__main__":
    main()
