"""Benchmark: online feature lookup latency, SQLite and PostgreSQL, single keys and batches of 100.

    .venv/bin/python bench/feature_lookup.py [--single 5000] [--batches 1000]

The churn feature table's shape (7,043 customers; the 21 model features of the demo config: 15
strings, 6 doubles) is published to each store through `OnlineStore.publish`, then looked up
through `OnlineStore.lookup`, the call the serving gateway makes: random existing keys, one
connection, a warm-up of 200 calls not counted. PostgreSQL is a throwaway server on 127.0.0.1
(Debian's binaries, the same launcher the tests use). Goals: single-key p99 < 2 ms on SQLite
and < 5 ms on PostgreSQL. Prints Markdown and writes bench/results/feature_lookup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the PostgreSQL launcher lives with the tests

from mlops_dagster.data.telco import generate_customers  # noqa: E402
from mlops_dagster.resources.postgres_online_store import PostgresOnlineStore  # noqa: E402
from mlops_dagster.resources.sqlite_online_store import SqliteOnlineStore  # noqa: E402
from mlops_dagster.settings import load_settings  # noqa: E402
from mlops_dagster_tests.postgres import postgres_bin, running_postgres  # noqa: E402

TABLE = "ml_dev_catalog.mlops.churn_features"
GOALS_MS = {"sqlite": 2.0, "postgres": 5.0}


def feature_frame():
    """The demo feature table's latest values (pandas versions of the configured derived columns)."""
    settings = load_settings("local")
    raw = generate_customers(7043, 42)
    addons = [
        "onlineSecurity",
        "onlineBackup",
        "deviceProtection",
        "techSupport",
        "streamingTV",
        "streamingMovies",
    ]
    frame = raw.assign(
        totalCharges=raw["totalCharges"].fillna(0.0),
        avgMonthlySpend=raw["totalCharges"].fillna(0.0) / raw["tenure"].clip(lower=1.0),
        numAddonServices=(raw[addons] == "Yes").sum(axis=1).astype(float),
    )
    columns = settings.features.columns
    return frame[["customerID", *columns]], columns


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    ms = sorted(s / 1e6 for s in samples_ns)
    return {
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(ms[int(len(ms) * 0.99) - 1], 3),
        "mean_ms": round(statistics.fmean(ms), 3),
        "calls": len(ms),
    }


def measure(store, frame, columns, single: int, batches: int, seed: int = 7) -> dict:
    started = time.perf_counter()
    store.publish(TABLE, frame, ["customerID"], delta_version=1)
    publish_s = time.perf_counter() - started
    keys = [(k,) for k in frame["customerID"]]
    rng = random.Random(seed)
    for _ in range(200):
        store.lookup(TABLE, ["customerID"], [rng.choice(keys)], columns)
    result = {"publish_s": round(publish_s, 2), "rows": len(frame)}
    for name, calls, size in (("single", single, 1), ("batch100", batches, 100)):
        samples = []
        for _ in range(calls):
            wanted = rng.sample(keys, size)
            t0 = time.perf_counter_ns()
            found = store.lookup(TABLE, ["customerID"], wanted, columns)
            samples.append(time.perf_counter_ns() - t0)
            assert len(found) == size, f"{len(found)} of {size} keys found"
        result[name] = percentiles(samples)
    store.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=5000, help="single-key lookups per store")
    parser.add_argument("--batches", type=int, default=1000, help="100-key lookups per store")
    args = parser.parse_args()
    frame, columns = feature_frame()
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-online-") as tmp:
        results["sqlite"] = measure(
            SqliteOnlineStore(path=f"{tmp}/features.db"), frame, columns, args.single, args.batches
        )
    bin_dir = postgres_bin()
    if bin_dir is None:
        print(
            "PostgreSQL binaries not found (apt-get install -y postgresql): PostgreSQL not measured",
            file=sys.stderr,
        )
    else:
        with running_postgres(bin_dir) as dsn:
            os.environ["BENCH_ONLINE_DSN"] = dsn
            results["postgres"] = measure(
                PostgresOnlineStore(dsn_env="BENCH_ONLINE_DSN"), frame, columns, args.single, args.batches
            )
    machine = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}
    print(
        f"Python {machine['python']}, {machine['machine']}, {machine['cpus']} cores; "
        f"{len(frame)} keys x {len(columns)} features\n"
    )
    print(
        "| store | publish | single key p50 | single key p99 | 100 keys p50 | 100 keys p99 | goal (single p99) |"
    )
    print("|---|---|---|---|---|---|---|")
    for store, r in results.items():
        ok = "met" if r["single"]["p99_ms"] < GOALS_MS[store] else "MISSED"
        print(
            f"| {store} | {r['publish_s']} s | {r['single']['p50_ms']} ms | {r['single']['p99_ms']} ms | "
            f"{r['batch100']['p50_ms']} ms | {r['batch100']['p99_ms']} ms | < {GOALS_MS[store]} ms: {ok} |"
        )
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "feature_lookup.json").write_text(json.dumps({"machine": machine, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
