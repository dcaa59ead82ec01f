"""Which rows of a large Spark table share their key with another row: found by sorting 64-bit
hashes of the key in Arrow tasks, not by grouping every key in Spark.

Grouping 10M distinct keys to count them is Spark's slow case: the hash aggregation of every key
outgrows its memory on both sides of the shuffle (measured on 2 cores: 12-17 s for 10M keys,
3.6-4.3 s this way; 1.3 s either way at 1M). Here only one long per row is shuffled, by its
value, into partitions of at most ``ROWS_PER_TASK`` rows, and each task sorts its hashes with
NumPy. Hashes that occur twice are usually none; the rows carrying them are then found exactly
(a hash may collide), by the caller grouping those few rows on the key itself. Up to
``GROUPED_UP_TO`` rows Spark groups the keys as they are: there the aggregation fits, and a job
without Python tasks is cheaper (the hash job made small tables' checks about a third slower in
the test suite). Pure Spark + Arrow, no Dagster.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame

HASH = "_key_hash"
GROUPED_UP_TO = 2_000_000  # rows up to which the keys are grouped in Spark, not hashed
ROWS_PER_TASK = 4_000_000  # hashes one task sorts: 32 MB of longs, about three times that at its peak
_SENT = 1_000_000  # repeated hashes up to which they are sent to every task instead of shuffled


def rows_sharing_keys(df: DataFrame, columns: list[str], rows: int) -> DataFrame | None:
    """The rows of ``df`` (about ``rows`` of them) whose 64-bit hash of ``columns`` occurs in more than
    one row: every row whose ``columns`` equal another row's, and possibly a few that only collide
    with one (group them on ``columns`` to tell). None when no hash repeats: no key is repeated."""
    from pyspark.sql import functions as F

    spark = df.sparkSession
    if rows <= GROUPED_UP_TO:
        return _grouped(df, columns)
    hashed = df.withColumn(HASH, F.xxhash64(*columns))
    tasks = max(_parallelism(spark), -(-rows // ROWS_PER_TASK))
    repeated = hashed.select(HASH).repartition(tasks, HASH).mapInArrow(repeated_hashes, f"{HASH} long")
    seen = repeated.limit(_SENT + 1).collect()
    if not seen:
        return None
    # Usually a few: sent to every task, so the rows are not shuffled to meet them.
    found = F.broadcast(spark.createDataFrame(seen, f"{HASH} long")) if len(seen) <= _SENT else repeated
    return hashed.join(found, HASH, "left_semi").drop(HASH)


def _parallelism(spark) -> int:
    """How many tasks the session runs at once: its SparkContext's, or (a Spark Connect client has
    none) the server's shuffle partitions."""
    from pyspark.sql.utils import is_remote

    if is_remote():
        return int(spark.conf.get("spark.sql.shuffle.partitions"))
    return spark.sparkContext.defaultParallelism


def _grouped(df: DataFrame, columns: list[str]) -> DataFrame | None:
    """``rows_sharing_keys`` for a table whose keys Spark can group in memory: the rows whose keys
    (nulls equal to nulls, as grouping treats them) occur more than once, or None."""
    from pyspark.sql import functions as F

    repeated = df.groupBy(*columns).agg(F.count(F.lit(1)).alias("_n")).where("_n > 1").drop("_n")
    if not repeated.limit(1).collect():
        return None
    rows, keys = df.alias("_rows"), repeated.alias("_keys")
    same = [F.col(f"_rows.`{c}`").eqNullSafe(F.col(f"_keys.`{c}`")) for c in columns]
    return rows.join(keys, same, "left_semi")


def repeated_hashes(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Inside a Spark task: the hashes (first column) of its partition that occur more than once."""
    import numpy as np
    import pyarrow as pa

    parts = [b.column(0).to_numpy() for b in batches]
    hashes = np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
    repeats = np.unique(hashes[1:][hashes[1:] == hashes[:-1]])
    yield pa.RecordBatch.from_arrays([pa.array(repeats, pa.int64())], names=[HASH])
