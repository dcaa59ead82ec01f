"""Benchmark: a full publish into the SQLite online store, rows per second.

    .venv/bin/python bench/online_publish.py --rows 1000000 3000000

For each size: generated rows shaped like the demo's feature table (a string key, an ingestion
timestamp, 6 doubles, 15 short strings), streamed as 50,000-row Arrow batches into
``SqliteOnlineStore.publish`` on a fresh file under /tmp, timed wall to wall. Generating the rows
is part of the time (about 2.8 s per million here); run the script on two commits one after the
other to compare them (the machine's speed varies over a day).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import pyarrow as pa

from mlops_dagster.resources.sqlite_online_store import SqliteOnlineStore

BATCH = 50_000


def _batches(rows: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for start in range(0, rows, BATCH):
        n = min(BATCH, rows - start)
        columns = {
            "customerID": pa.array([f"C{i:09d}" for i in range(start, start + n)]),
            "_ingested_at": pa.array(np.full(n, 1_700_000_000_000_000, dtype="datetime64[us]")).cast(
                pa.timestamp("us", tz="UTC")
            ),
        }
        columns.update({f"number{j}": pa.array(rng.random(n)) for j in range(6)})
        columns.update(
            {f"text{j}": pa.array(rng.choice(np.array(["Yes", "No", "Maybe"]), n)) for j in range(15)}
        )
        yield pa.record_batch(columns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 3_000_000])
    for rows in parser.parse_args().rows:
        schema = next(_batches(1)).schema
        with tempfile.TemporaryDirectory() as folder:
            store = SqliteOnlineStore(path=f"{folder}/features.db")
            started = time.perf_counter()
            info = store.publish(
                "ml.bench.features",
                pa.RecordBatchReader.from_batches(schema, _batches(rows)),
                ["customerID"],
                delta_version=1,
            )
            seconds = time.perf_counter() - started
            store.close()
        print(f"{info.rows:,} rows: {seconds:.1f} s ({info.rows / seconds:,.0f} rows/s, generation included)")


if __name__ == "__main__":
    main()
