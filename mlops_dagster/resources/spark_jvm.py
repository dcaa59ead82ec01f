"""The local Spark JVM: its options, and a class archive that makes it start faster.

Starting Spark's JVM loads some ten thousand classes; Java's class data sharing (AppCDS) maps them
from an archive instead, which cuts a local session's start by about 2.5 s (measured: first job
done 4.4-5.0 s after start instead of 7.4-8.2 s). ``make install`` builds the archive once, for
this virtualenv's pyspark and the machine's Java (``mlops prepare-spark``). Without it (or when
the JVM finds it was built for another Java or other jars, which it checks itself) Spark simply
starts the usual way. A truncated archive would crash the JVM, so one is only ever put in place
whole: dumped to a temporary file, tried by a real session, then renamed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

LOG_CONFIG = Path(__file__).resolve().parents[1] / "conf" / "log4j2.properties"


def class_archive() -> Path:
    """Where this virtualenv's archive lives (named for its pyspark: other jars, other archive)."""
    return Path(sys.prefix, "share", "mlops_dagster", f"spark-{version('pyspark')}-classes.jsa")


# When C2 takes a method over: calls 20x HotSpot's defaults (5,000 and 600), calls + loop turns
# 8x (15,000), loop turns alone (on-stack replacement of a running loop) 4x (40,000). Measured
# against 5x/2x/1x (C2 23 CPU-s) and 40x/16x/8x (C2 12.5 CPU-s, but tasks 10 CPU-s slower).
_C2_LATER = [
    "-XX:Tier4InvocationThreshold=100000",
    "-XX:Tier4MinInvocationThreshold=12000",
    "-XX:Tier4CompileThreshold=120000",
    "-XX:Tier4BackEdgeThreshold=160000",
]


def java_options(archive: Path | None = None) -> str:
    """``spark.driver.extraJavaOptions`` of a local session: the project's log4j2 configuration, the
    throughput collector and, when present, the class archive (the JVM's own notes about it are off).

    A local session is one batch JVM on few cores: the parallel collector spends less of them than
    the default G1, whose concurrent threads compete with Spark's tasks (measured on 2 cores, 1M
    rows: latest row per key 7.0 -> 6.4 s, batch scoring 17.0 -> 15.6 s; start unchanged).

    The optimizing compiler (C2) waits longer (``_C2_LATER``): a method runs its quickly compiled
    (C1) code for more calls and loop turns before C2 recompiles it. Every fresh JVM compiles
    Spark's and the queries' code anew, and on 2 cores C2 alone took 27-28 CPU-s of a 1M-row
    lifecycle; with these thresholds 16 CPU-s, for about 3 CPU-s more in Spark's tasks (the code
    that is really hot still gets C2 early in a run; docs/benchmarks.md, tenth measurement)."""
    options = [f"-Dlog4j2.configurationFile={LOG_CONFIG.as_uri()}", "-XX:+UseParallelGC", *_C2_LATER]
    archive = archive or class_archive()
    if archive.is_file():
        options += [f"-XX:SharedArchiveFile={archive}", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"]
    return " ".join(options)


# A session that loads what a lifecycle run loads: text and Parquet I/O, aggregations, joins,
# windows, Arrow to and from Python workers.
_WORKLOAD = """
import sys, tempfile
from pyspark.sql import SparkSession, Window, functions as F
spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
         .config("spark.ui.showConsoleProgress", "false").config("spark.driver.extraJavaOptions", sys.argv[1])
         .getOrCreate())
def rows(batches):
    for b in batches:
        yield b
with tempfile.TemporaryDirectory() as folder:
    df = spark.range(1000).selectExpr("id", "cast(id % 7 as string) as k", "current_timestamp() as t")
    df.write.parquet(folder + "/p")
    back = spark.read.parquet(folder + "/p")
    joined = back.groupBy("k").count().join(back, "k").withColumn("r", F.row_number().over(
        Window.partitionBy("k").orderBy("id")))
    joined.mapInArrow(rows, joined.schema).collect()
    spark.read.text(folder + "/p").count()
spark.stop()
"""


def build_class_archive(log=print) -> Path:
    """Build the class archive if this virtualenv has none; returns its path."""
    target = class_archive()
    if target.is_file():
        log(f"Spark class archive already built: {target}")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    dumped = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    try:
        for options in (f"{java_options()} -XX:ArchiveClassesAtExit={dumped}", java_options(dumped)):
            done = subprocess.run(
                [sys.executable, "-c", _WORKLOAD, options], env=env, capture_output=True, text=True
            )
            if done.returncode != 0 or not dumped.is_file():
                log(
                    f"Spark class archive not built (Spark starts the usual way): {done.stderr.strip()[-500:]}"
                )
                return target
        os.replace(dumped, target)
    finally:
        dumped.unlink(missing_ok=True)
    log(f"Spark class archive built: {target} ({target.stat().st_size / 2**20:.0f} MiB)")
    return target
