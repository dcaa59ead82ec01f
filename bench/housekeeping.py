"""Benchmark: 30 days of an endpoint and of daily batch scorings, then housekeeping (issue 41).

    .venv/bin/python bench/housekeeping.py [--days 30] [--flushes-per-day 48] [--rows-per-flush 50]
                                           [--batch-rows 20000] [--repeat 3]

Into a fresh home: every simulated day the endpoint's capture appends `--flushes-per-day` small
batches to the inference table (the gateway flushes about once a second under traffic: 86,400 a
day; scaled down to stay a few minutes here) and one batch scoring appends `--batch-rows` rows to
the prediction log, each stamped with its simulated day. It times the monitoring steps' reads of
those tables (the drift step's newest answered requests of the last 24 h from the inference table,
the performance step's join of outcomes to the whole prediction log, both on Spark as the assets
run them) on day 1 and on day 30, counts files and bytes, runs the housekeeping asset's table step
(`tidy_table`: delete past retention, compact, vacuum; versions kept 0 days here, so what
compaction replaced is freed at once) and times the reads again. Goal: after housekeeping, day 30's
reads take at most 1.5x day 1's, and each table's file count is bounded by the compaction target,
not by the number of appends. Prints Markdown and writes bench/results/housekeeping.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SAMPLE_ROWS = 5_000  # monitoring.sample_rows' default


def capture_batch(day_start: datetime, flush: int, flushes: int, rows: int, endpoint: str):
    """One flush of the capture table: ``rows`` answered requests at one moment of the day."""
    import pyarrow as pa

    at = day_start + timedelta(seconds=86_400 * flush / flushes)
    ids = [f"{at:%Y%m%d%H%M%S}-{i}" for i in range(rows)]
    request = json.dumps(
        {"dataframe_records": [{"tenure": 12, "MonthlyCharges": 70.5, "Contract": "One year"}]}
    )
    return pa.table(
        {
            "request_id": ids,
            "request_time": pa.array([at] * rows, pa.timestamp("us", tz="UTC")),
            "endpoint": [endpoint] * rows,
            "served_model_name": ["churn_model-1"] * rows,
            "model_name": ["churn_model"] * rows,
            "model_version": ["1"] * rows,
            "status_code": pa.array([200] * rows, pa.int32()),
            "latency_ms": [3.2] * rows,
            "request": [request] * rows,
            "response": ['{"predictions": [0.31]}'] * rows,
            "error": pa.array([None] * rows, pa.string()),
            "mirrored": [False] * rows,
        }
    )


def scoring_batch(at: datetime, rows: int):
    """One day's batch scoring as the prediction log keeps it (key, score, slices, model, time)."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(int(at.timestamp()))
    return pa.table(
        {
            "customerID": [f"C{i:08d}" for i in range(rows)],
            "churn_probability": rng.random(rows),
            "prediction": rng.integers(0, 2, rows).astype("float64"),
            "Contract": rng.choice(["Month-to-month", "One year", "Two year"], rows),
            "model_name": ["churn_model"] * rows,
            "model_version": ["1"] * rows,
            "scored_at": pa.array([at] * rows, pa.timestamp("us", tz="UTC")),
        }
    )


def monitoring_reads(spark, lake, inference: str, log: str, now: datetime) -> float:
    """The monitoring steps' reads of the two tables, as the drift and performance assets make them."""
    from pyspark.sql import functions as F

    from mlops_dagster.serving.capture import answered

    started = time.perf_counter()
    served = answered(lake.read_spark(spark, inference), now - timedelta(hours=24))
    served.count()
    newest = served.orderBy(F.desc("request_time")).select("request").limit(SAMPLE_ROWS)
    sum(1 for _ in newest.toLocalIterator())
    outcomes = spark.range(0, 1000).select(F.format_string("C%08d", "id").alias("customerID"))
    lake.read_spark(spark, log).join(outcomes, "customerID").count()
    return time.perf_counter() - started


def timed(spark, lake, inference, log, now, repeat: int) -> float:
    return statistics.median(monitoring_reads(spark, lake, inference, log, now) for _ in range(repeat))


def sizes(lake, tables: list[str]) -> dict[str, dict[str, int]]:
    out = {}
    for table in tables:
        size = lake.size(table)
        out[table] = {"files": size.files, "data_bytes": size.bytes, "disk_bytes": size.disk_bytes}
    return out


def simulate(args, home: Path) -> dict:
    import yaml

    from mlops_dagster.assets.housekeeping import tidy_table
    from mlops_dagster.governance.retention import housekept_tables
    from mlops_dagster.resources.local_lakehouse import LocalLakehouse
    from mlops_dagster.resources.spark import SparkResource
    from mlops_dagster.settings import CONF_DIR, load_settings

    override = home / "override.yaml"
    override.write_text(yaml.safe_dump({"retention": {"table_versions_days": 0}}))
    settings = load_settings("local", extra_file=override)
    lake = LocalLakehouse(root=str(settings.root / "lakehouse"))
    spark = SparkResource(
        spark_config=yaml.safe_load((CONF_DIR / "local.yaml").read_text())["spark"]
    ).session()
    inference, log = settings.inference_table(), settings.table(settings.names.prediction_log)
    now = datetime.now(UTC)
    start = now - timedelta(days=args.days)
    result: dict = {}
    write_seconds = 0.0
    for day in range(args.days):
        day_start = start + timedelta(days=day)
        started = time.perf_counter()
        for flush in range(args.flushes_per_day):
            lake.write(
                inference,
                capture_batch(
                    day_start, flush, args.flushes_per_day, args.rows_per_flush, settings.serving.endpoint
                ),
                "append",
            )
        lake.write(log, scoring_batch(day_start + timedelta(hours=2), args.batch_rows), "append")
        write_seconds += time.perf_counter() - started
        if day == 0:
            day_end = day_start + timedelta(days=1)
            monitoring_reads(spark, lake, inference, log, day_end)  # warm-up: Spark's first query is slow
            result["day1_seconds"] = timed(spark, lake, inference, log, day_end, args.repeat)
            result["day1"] = sizes(lake, [inference, log])
    result["write_seconds"] = round(write_seconds, 1)
    result["day30_before_seconds"] = timed(spark, lake, inference, log, now, args.repeat)
    result["day30_before"] = sizes(lake, [inference, log])
    policies = [p for p in housekept_tables(settings) if p.table in (inference, log)]
    started = time.perf_counter()
    result["housekeeping"] = [tidy_table(lake, p, settings, now, dry_run=False) for p in policies]
    result["housekeeping_seconds"] = round(time.perf_counter() - started, 1)
    result["day30_after_seconds"] = timed(spark, lake, inference, log, now, args.repeat)
    result["day30_after"] = sizes(lake, [inference, log])
    result["compaction_target_mb"] = settings.retention.compact_target_mb
    return result


def report(args, r: dict) -> str:
    ratio = r["day30_after_seconds"] / r["day1_seconds"]
    target_bytes = r["compaction_target_mb"] * 1024 * 1024
    lines = [
        f"{args.days} days; the endpoint {args.flushes_per_day} flushes/day x {args.rows_per_flush} rows, "
        f"batch scoring {args.batch_rows:,} rows/day; reads timed as the median of {args.repeat}",
        "",
        "| table | files day 1 | files day 30, before | after housekeeping | bound (data / target) | disk bytes before | after |",
        "|---|---|---|---|---|---|---|",
    ]
    for table, after in r["day30_after"].items():
        before = r["day30_before"][table]
        bound = -(-after["data_bytes"] // target_bytes)
        lines.append(
            f"| {table} | {r['day1'][table]['files']} | {before['files']} | {after['files']} | {bound} | "
            f"{before['disk_bytes']:,} | {after['disk_bytes']:,} |"
        )
    lines += [
        "",
        "| monitoring reads | seconds |",
        "|---|---|",
        f"| day 1 | {r['day1_seconds']:.2f} |",
        f"| day 30, before housekeeping | {r['day30_before_seconds']:.2f} |",
        f"| day 30, after housekeeping | {r['day30_after_seconds']:.2f} (x{ratio:.2f} day 1; goal <= 1.5) |",
        f"| housekeeping itself | {r['housekeeping_seconds']} |",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--flushes-per-day", type=int, default=48)
    parser.add_argument("--rows-per-flush", type=int, default=50)
    parser.add_argument("--batch-rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-housekeeping-") as tmp:
        home = Path(tmp) / "mlops"
        home.mkdir()
        os.environ.update(MLOPS_HOME=str(home), MLOPS_TARGET="local")
        os.environ.pop("MLOPS_CONFIG", None)
        started = time.perf_counter()
        result = simulate(args, home)
        result["total_seconds"] = round(time.perf_counter() - started, 1)
    result.update(args=vars(args), machine=f"{platform.machine()}, {os.cpu_count()} cores")
    print(report(args, result))
    print(f"\nwhole benchmark {result['total_seconds']} s (writing the 30 days: {result['write_seconds']} s)")
    out = REPO / "bench" / "results" / "housekeeping.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
