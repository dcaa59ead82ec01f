"""Benchmark: ingestion throughput per landing file format (issue 14).

    .venv/bin/python bench/formats.py --rows 1000000 [--repeat 2]

The same generated telco customers (``write_customers_csv``, seed 42) are written once as: CSV,
gzip-compressed CSV, semicolon-separated Latin-1 CSV (decoded into the staging folder first),
Parquet (typed columns, as pandas or Spark would write it, snappy) and JSON lines. Each file is
then ingested alone by ``read_landing_files`` (the ingestion step's work: every row checked against
the dataset contract on Spark, valid rows and quarantine written as Parquet to a staging folder) on
one warm local Spark session with the local target's Spark config (warmed by one unmeasured CSV
ingestion). Writing the files is not timed;
the best and the median of ``--repeat`` runs per format are reported, with rows per second. Every run must load
every row (asserted), so a fast but lossy reader cannot win.
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.csv as pcsv
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def write_files(folder: Path, rows: int) -> dict[str, tuple[Path, object]]:
    from mlops_dagster.data.telco import write_customers_csv
    from mlops_dagster.settings import CsvOptions, LandingFormat

    plain = write_customers_csv(folder / "customers.csv", rows)
    with plain.open("rb") as src, gzip.open(folder / "customers.csv.gz", "wb", compresslevel=6) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    with (
        plain.open("r", encoding="utf-8") as src,
        (folder / "customers_eu.csv").open("w", encoding="latin-1") as dst,
    ):
        for line in src:
            dst.write(line.replace(",", ";"))
    reader = pcsv.open_csv(plain, convert_options=pcsv.ConvertOptions(strings_can_be_null=False))
    with (
        pq.ParquetWriter(folder / "customers.parquet", reader.schema) as parquet,
        (folder / "customers.jsonl").open("w") as jsonl,
    ):
        for batch in reader:
            parquet.write_batch(batch)
            jsonl.writelines(json.dumps(r) + "\n" for r in batch.to_pylist())
    default = LandingFormat()
    return {
        "CSV": (plain, default),
        "CSV, gzip": (folder / "customers.csv.gz", default),
        "CSV, `;` and Latin-1": (
            folder / "customers_eu.csv",
            LandingFormat(csv=CsvOptions(delimiter=";", encoding="latin-1")),
        ),
        "Parquet": (folder / "customers.parquet", default),
        "JSON lines": (folder / "customers.jsonl", default),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    import yaml

    from mlops_dagster.ml.landing import read_landing_files
    from mlops_dagster.resources.spark import SparkResource
    from mlops_dagster.settings import CONF_DIR, load_settings

    dataset = load_settings("local").dataset
    spark = SparkResource(
        spark_config=yaml.safe_load((CONF_DIR / "local.yaml").read_text())["spark"]
    ).session()
    spark.range(1).collect()
    work = Path(tempfile.mkdtemp(prefix="formats_bench_"))
    try:
        print(f"writing {args.rows:,} rows in each format ...", file=sys.stderr)
        files = write_files(work, args.rows)
        results = []
        warm_up = files["CSV"]  # the JVM's first big job is slower: not counted for any format
        read_landing_files(
            spark,
            [str(warm_up[0])],
            dataset.columns,
            dataset.key,
            str(work / "warm_up"),
            datetime.now(UTC),
            "bench",
            warm_up[1],
        )
        for name, (path, options) in files.items():
            times = []
            for _ in range(args.repeat):
                out = work / f"staging_{len(times)}_{path.name}"
                start = time.perf_counter()
                batch = read_landing_files(
                    spark,
                    [str(path)],
                    dataset.columns,
                    dataset.key,
                    str(out),
                    datetime.now(UTC),
                    "bench",
                    options,
                )
                times.append(time.perf_counter() - start)
                assert batch.rows_loaded == args.rows and batch.rows_quarantined == 0, (name, batch.files)
                shutil.rmtree(out)
            best = min(times)
            results.append((name, path.stat().st_size, best, times))
            print(f"  {name}: best {best:.1f} s of {[round(t, 1) for t in times]}", file=sys.stderr)
        print(f"\n{args.rows:,} rows; best of {args.repeat} per format; one warm local Spark session\n")
        print(
            "| format | file size | best, s | median, s | every run, s | rows/s (best) |\n|---|---:|---:|---:|---|---:|"
        )
        for name, size, best, times in results:
            print(
                f"| {name} | {size / 1e6:,.0f} MB | {best:.1f} | {statistics.median(times):.1f} | "
                f"{', '.join(f'{t:.1f}' for t in times)} | {args.rows / best:,.0f} |"
            )
        print(f"\nmachine: {platform.machine()}, Python {platform.python_version()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
