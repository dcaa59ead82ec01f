"""Landing files (CSV, JSON lines, Parquet) -> typed valid rows and quarantined rows, on Spark, at any size.

Nothing is dropped: every data row becomes either a valid row or a quarantine row with its file,
physical line number (a Parquet file: row number), original fields (JSON) and every reason it was
refused. How (``landing_formats.py`` holds what differs per format):

1. Spark reads the text files (CSV, JSON lines; gzip-compressed or not; other encodings than UTF-8
   decoded into the staging folder first) as text. One aggregation over the lines gives, per file
   block, its line count (so every line gets its physical number), its first non-blank line (a
   CSV header) and its first line that is not UTF-8. A Parquet file's footer gives its columns and
   rows.
2. Whole-file problems are decided from that: unknown format, not UTF-8 (or not the configured
   encoding), not gzip or not Parquet, empty, header without rows (one quarantine row each, line
   0), required columns missing or a column named twice (every row quarantined with that reason).
3. Spark tasks check their rows against the contract with Arrow kernels (``contract.py``) and
   write the valid rows and the quarantine rows as Parquet files into a staging folder
   themselves, and each line's key aside: the text is read once more, never collected, and no
   task holds more than a batch. Only the files' names and row counts come back to the driver.
4. Keys that occur more than once in a file are found from the keys written aside (one small
   column, not the text again) by sorting their hashes (``repeated_keys.py``). Usually there are
   none; if there are, the lines are checked again as in 3, each duplicated one quarantined with
   its reason, and the first output is left unused.

Blank (empty or whitespace-only) lines are skipped; line numbers stay physical. A line break inside
a quoted value is not supported: such a record's lines are quarantined as unclosed quotes or as
rows with the wrong number of fields. Pure Spark + Arrow, no Dagster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from ..settings import SOURCE_FILE, CsvOptions, LandingFormat
from .contract import Rule
from .landing_formats import (
    ParquetFooter,
    file_format,
    gzip_problem,
    is_utf8,
    parquet_footer,
    parquet_rows,
    parse_header,
    spark_literal,
    table_rows,
    transcode,
    unknown_format,
)
from .landing_tasks import (
    CheckTask,
    LandingFile,
    check_partition,
    write_refusal,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_BLANK = r"^\s*$"
_BROADCAST_DUPLICATES = 1_000_000  # duplicated lines up to which they are sent to every task


@dataclass
class LandingBatch:
    """What a set of landing files became: staged Parquet files and a report per landing file."""

    files: list[LandingFile]
    valid_files: list[str]  # typed contract columns + _source_file + _ingested_at
    quarantine_files: list[str]  # QUARANTINE_SCHEMA

    @property
    def rows_loaded(self) -> int:
        return sum(f.rows_loaded for f in self.files)

    @property
    def rows_quarantined(self) -> int:
        return sum(f.rows_quarantined for f in self.files)


def read_landing_files(
    spark: SparkSession,
    paths: list[str],
    rules: Mapping[str, Rule],
    key: str,
    out_dir: str,
    ingested_at: datetime,
    run_id: str,
    options: LandingFormat | None = None,
    progress=None,
) -> LandingBatch:
    """Check ``paths`` (oldest first) against the contract; valid and quarantined rows land as Parquet
    files under ``out_dir`` (a folder every Spark task can write to). ``options``: formats and CSV
    dialect (default: CSV with a header, by extension). ``progress(text)`` is told what is happening
    between Spark jobs."""
    options = options or LandingFormat()
    say = progress or (lambda text: None)
    files = [LandingFile(i, p, file_format(p, options.format), p) for i, p in enumerate(paths)]
    for f in files:
        if f.format is None:
            f.refusal = unknown_format(f.path)
    task = CheckTask({f.index: f for f in files}, dict(rules), options.csv, key, out_dir, ingested_at, run_id)
    _fetch(task, [f for f in files if "://" in f.path])
    if not is_utf8(task.csv.encoding):
        _decode(task, [f for f in files if f.format == "csv" and not f.refusal])
    frames = [
        *_text_rows(spark, task, [f for f in files if f.format in ("csv", "json")]),
        *_parquet_rows(spark, task, [f for f in files if f.format == "parquet"]),
    ]
    say(f"{sum(f.data_rows for f in files):,} data rows in {len(files)} file(s)")
    refused = [write_refusal(f, task) for f in files if f.refusal and not f.data_rows]
    return _checked(spark, task, frames, refused, say)


def read_table_rows(
    spark: SparkSession,
    df: DataFrame,
    label: str,
    rules: Mapping[str, Rule],
    key: str,
    out_dir: str,
    ingested_at: datetime,
    run_id: str,
    progress=None,
) -> LandingBatch:
    """Check the rows of a table (``df``: a Delta table or a database read) against the contract like
    a landing file's; ``label`` names them in lineage and quarantine (``delta:<table>@v12``) and
    ``line_number`` is a row id unique within this read. Every contract column must be there: a
    table without one is a source to fix, not rows to quarantine."""
    missing = [c for c in rules if c not in df.columns]
    if missing:
        raise ValueError(
            f"{label} lacks the contract column(s) {', '.join(missing)} (it has: {', '.join(df.columns)})"
        )
    f = LandingFile(0, label, "table", label, header=list(df.columns))
    f.extra_columns = [c for c in f.header if c not in rules]
    task = CheckTask({0: f}, dict(rules), CsvOptions(), key, out_dir, ingested_at, run_id)
    batch = _checked(spark, task, [table_rows(df, 0, rules)], [], progress or (lambda text: None))
    f.data_rows = f.rows_read
    return batch


def _checked(
    spark: SparkSession, task: CheckTask, frames: list[DataFrame], outputs: list[dict], say
) -> LandingBatch:
    """Check ``frames`` (rows of ``task.files``) in Spark tasks; with the refusals already written
    (``outputs``), what the files became."""
    from pyspark.sql import functions as F

    files, out_dir, key = list(task.files.values()), task.out_dir, task.key
    if frames:
        # Checked once as if no key were duplicated, the tasks writing each row's key aside; the
        # keys are then counted from that small output. Only if some key occurs twice in a file are
        # the rows checked again, each duplicated one with its reason (the first output is dropped).
        say("checking every row against the contract")
        checked = [
            o
            for frame in frames
            for o in _check(frame.withColumn("_duplicate", F.lit(None).cast("string")), task, with_keys=True)
        ]
        say("finding duplicate keys")
        keys = [o["path"] for o in checked if o["kind"] == "keys"]
        duplicates = _duplicates(spark, spark.read.parquet(*keys), task) if keys else None
        if duplicates is not None:
            say("checking the rows again with their duplicated keys")
            checked = [
                o
                for frame in frames
                for o in _check(
                    frame.join(duplicates, ["_file", "_line"], "left"),
                    replace(task, out_dir=f"{out_dir}/recheck"),
                    with_keys=False,
                )
            ]
        outputs += [o for o in checked if o["kind"] != "keys"]
    for out in outputs:
        if out["kind"] == "valid":
            task.files[out["file"]].rows_loaded += out["rows"]
        else:
            task.files[out["file"]].rows_quarantined += out["rows"]
    valid = sorted({o["path"] for o in outputs if o["kind"] == "valid"})
    quarantine = sorted({o["path"] for o in outputs if o["kind"] == "quarantine"})
    if sum(1 for f in files if f.rows_loaded) > 1:
        say("keeping each key's row from the newest file")
        valid = _newest_per_key(spark, valid, files, key, out_dir)
    return LandingBatch(files, valid, quarantine)


def _text_rows(spark: SparkSession, task: CheckTask, files: list[LandingFile]) -> list[DataFrame]:
    """The data lines of CSV and JSON-lines files with their file and physical line number (none:
    no such file has rows). A .gz file that cannot be decompressed is refused whole."""
    readable = [f for f in files if not f.refusal]
    if not readable:
        return []
    try:
        lines = _text(spark, [f.read_from for f in readable])
        blocks = _summarize(lines, readable, task)
    except Exception:
        # Spark stops at the first file it cannot decompress: find which, refuse them, read the rest.
        broken = {
            f.index: problem
            for f in readable
            if f.read_from.lower().endswith(".gz") and (problem := gzip_problem(f.read_from))
        }
        if not broken:
            raise
        for f in readable:
            f.refusal = broken.get(f.index)
        return _text_rows(spark, task, [f for f in readable if f.index not in broken])
    with_rows = [f for f in readable if f.data_rows]
    return [_numbered(lines, blocks, with_rows)] if with_rows else []


def _fetch(task: CheckTask, files: list[LandingFile]) -> None:
    """Object store files (``s3://...``) copied into the staging folder, a chunk at a time, so Spark
    reads them as local files (local Spark has no object store connectors); their lineage stays
    the URI. A file that cannot be fetched fails the run: it stays unread, to be ingested next time."""
    import pyarrow.fs as pafs

    for f in files:
        f.read_from = f"{task.out_dir}/fetched/{f.index}-{Path(f.path).name}"
        Path(f.read_from).parent.mkdir(parents=True, exist_ok=True)
        try:
            source, path = pafs.FileSystem.from_uri(f.path)
            pafs.copy_files(
                path,
                f.read_from,
                source_filesystem=source,
                destination_filesystem=pafs.LocalFileSystem(),
                chunk_size=1 << 20,
            )
        except (OSError, ValueError) as error:
            raise OSError(f"cannot read landing file {f.path}: {error}") from None


def _decode(task: CheckTask, files: list[LandingFile]) -> None:
    """CSV files in another encoding than UTF-8, decoded into the staging folder a chunk at a time
    (refused whole, naming the line, at a byte the encoding does not allow)."""
    for f in files:
        decoded = f"{task.out_dir}/decoded/{f.index}.csv"
        Path(decoded).parent.mkdir(parents=True, exist_ok=True)
        f.refusal = transcode(f.read_from, task.csv.encoding, decoded)
        f.read_from = decoded


def _parquet_rows(spark: SparkSession, task: CheckTask, files: list[LandingFile]) -> list[DataFrame]:
    """The rows of Parquet files (``_file``, ``_line`` = row number, contract columns)."""
    footers = {}
    for f in files:
        footer = parquet_footer(f.read_from)
        if not isinstance(footer, ParquetFooter):
            f.refusal = footer
            continue
        footers[f.index] = footer
        f.header, f.data_rows = footer.columns, footer.rows
        f.refusal = "file is empty" if not footer.rows else _header_refusal(f, task.rules)
        f.extra_columns = [c for c in f.header if c not in task.rules]
    with_rows = {f.index: (f.read_from, footers[f.index]) for f in files if f.data_rows}
    return parquet_rows(spark, with_rows, task.rules) if with_rows else []


def _text(spark: SparkSession, paths: list[str]) -> DataFrame:
    from pyspark.sql import functions as F

    return spark.read.text([spark_literal(p) for p in paths]).select(
        "value",
        F.col("_metadata.file_path").alias("_path"),
        F.col("_metadata.file_block_start").alias("_block"),
        # Position of the line within its Spark partition; with the block's first id, its line number.
        F.monotonically_increasing_id().alias("_id"),
    )


def _same_file(spark_path: str, path: str) -> bool:
    return unquote(urlsplit(spark_path).path) == str(Path(path).resolve()) or spark_path == path


def _summarize(lines: DataFrame, files: list[LandingFile], task: CheckTask) -> list[dict]:
    """Pass 1: per block, its lines, first id, first non-blank line and first line that is not UTF-8.
    Fills in each file's header, data rows and whole-file refusal; returns the blocks with the
    physical number of their first line."""
    from pyspark.sql import functions as F

    nonblank = ~F.col("value").rlike(_BLANK)
    rows = (
        lines.groupBy("_path", "_block")
        .agg(
            F.count("*").alias("lines"),
            F.min("_id").alias("first_id"),
            F.sum(nonblank.cast("long")).alias("nonblank"),
            F.min(F.when(nonblank, F.struct("_id", "value"))).alias("first_nonblank"),
            F.min(F.when(~F.expr("is_valid_utf8(value)"), F.col("_id"))).alias("first_bad_id"),
        )
        .collect()
    )
    blocks = []
    for f in files:
        header = f.format == "csv" and task.csv.header  # else: fields in contract order (CSV), keys (JSON)
        if f.format == "csv" and not header:
            f.header = list(task.rules)
        mine = sorted((r for r in rows if _same_file(r["_path"], f.read_from)), key=lambda r: r["_block"])
        start, bad_line, nonblank_lines = 1, None, 0
        for r in mine:
            block = {
                "_path": r["_path"],
                "_block": r["_block"],
                "_file": f.index,
                "_start": start,
                "_first_id": r["first_id"],
            }
            blocks.append(block)
            if r["first_bad_id"] is not None and bad_line is None:
                bad_line = start + r["first_bad_id"] - r["first_id"]
            if r["first_nonblank"] is not None and header and not f.header:
                f.header_line = start + r["first_nonblank"]["_id"] - r["first_id"]
                f.header = parse_header(r["first_nonblank"]["value"], task.csv)
            nonblank_lines += r["nonblank"]
            start += r["lines"]
        f.data_rows = max(nonblank_lines - header, 0)
        f.refusal = _file_refusal(f, bad_line, nonblank_lines, header) or (
            _header_refusal(f, task.rules) if header else None
        )
        f.extra_columns = [c for c in f.header if c not in task.rules]
    return blocks


def _file_refusal(f: LandingFile, bad_line: int | None, nonblank_lines: int, header: bool) -> str | None:
    if bad_line is not None:
        f.data_rows = 0  # not one of its rows can be trusted
        return f"file is not UTF-8 text (line {bad_line} is not valid UTF-8)" + (
            "; set csv.encoding if it is written in another" if f.format == "csv" else ""
        )
    if nonblank_lines == 0:
        return "file is empty"
    if nonblank_lines == 1 and header:
        return "file has a header but no rows"
    return None


def _header_refusal(f: LandingFile, rules: Mapping[str, Rule]) -> str | None:
    missing = [c for c in rules if c not in f.header]
    if missing:
        return f"file lacks required column(s) {', '.join(missing)} (header: {', '.join(f.header)})"
    twice = sorted({c for c in f.header if c in rules and f.header.count(c) > 1})
    if twice:
        return f"column(s) {', '.join(twice)} appear more than once in the header"
    return None


def _numbered(lines: DataFrame, blocks: list[dict], files: list[LandingFile]) -> DataFrame:
    """The data lines of ``files`` with their file index and physical line number (looked up in
    literal maps of the few blocks: cheaper than a join for every line)."""
    from pyspark.sql import functions as F

    wanted = {f.index: f for f in files}
    mine = [b for b in blocks if b["_file"] in wanted]
    paths = {b["_path"]: b["_file"] for b in mine}
    index = F.create_map(*[x for path, i in paths.items() for x in (F.lit(path), F.lit(i))])
    # A block is (file index, byte offset) packed in one long, the offset in its low bits: a number
    # per line to look up, not a string built per line (10M lines: 1.2 s less).
    bits = max(b["_block"] for b in mine).bit_length()
    offset = F.create_map(
        *[
            x
            for b in mine
            for x in (
                F.lit((b["_file"] << bits) | b["_block"]).cast("long"),
                F.lit(b["_start"] - b["_first_id"]),
            )
        ]
    )
    header = F.create_map(*[x for f in files for x in (F.lit(f.index), F.lit(f.header_line))])
    file = F.element_at(index, F.col("_path")).cast("int")
    block = F.shiftleft(file.cast("long"), bits).bitwiseOR(F.col("_block"))
    numbered = lines.select(
        file.alias("_file"), (F.element_at(offset, block) + F.col("_id")).alias("_line"), "value"
    )
    return numbered.where(
        F.col("_file").isNotNull()
        & (F.col("_line") > F.element_at(header, F.col("_file")))
        & ~F.col("value").rlike(_BLANK)
    )


def _check(lines: DataFrame, task: CheckTask, with_keys: bool) -> list[dict]:
    """Check ``lines`` in Spark tasks that write their outputs; returns (kind, path, file, rows) of each
    output: valid and quarantine rows, and with ``with_keys`` every line's (file, line, key)."""
    schema = "kind string, path string, file int, rows long"
    return [r.asDict() for r in lines.mapInArrow(partial(check_partition, task, with_keys), schema).collect()]


def _duplicates(spark: SparkSession, keys: DataFrame, task: CheckTask) -> DataFrame | None:
    """The lines whose key occurs more than once in their file, with the reason (staged as Parquet,
    so the check reads it instead of computing it again); None when there are none.

    ``keys``: (file, line, key) of every line with a key. The lines that may share their key come
    from ``rows_sharing_keys`` (usually none); only those are grouped by the exact key to name them."""
    from pyspark.sql import functions as F

    from .repeated_keys import rows_sharing_keys

    candidates = rows_sharing_keys(keys, ["_file", "_key"], sum(f.data_rows for f in task.files.values()))
    if candidates is None:
        return None
    grouped = (
        candidates.groupBy("_file", "_key")
        .agg(F.count("*").alias("n"), F.array_sort(F.collect_list("_line")).alias("lines"))
        .where("n > 1")
    )
    reason = F.concat(
        F.lit(f"{task.key} '"),
        "_key",
        F.lit("' appears more than once in this file (lines "),
        F.array_join("lines", ", "),
        F.lit(")"),
    )
    folder = f"{task.out_dir}/duplicates"
    grouped.select("_file", F.explode("lines").alias("_line"), reason.alias("_duplicate")).write.parquet(
        folder
    )
    found = spark.read.parquet(folder)
    for row in found.groupBy("_file").count().collect():
        task.files[row["_file"]].duplicated_rows = row["count"]
    duplicated = sum(f.duplicated_rows for f in task.files.values())
    if not duplicated:  # hashes that collided, no key twice
        return None
    # Usually a few: sent to every task, so the lines are not shuffled to meet them.
    return F.broadcast(found) if duplicated <= _BROADCAST_DUPLICATES else found


def _newest_per_key(
    spark: SparkSession, valid: list[str], files: list[LandingFile], key: str, out_dir: str
) -> list[str]:
    """Several files in one run: a key's row comes from the newest file that has a valid one."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    order = F.create_map(*[x for f in files for x in (F.lit(f.path), F.lit(f.index))])
    rows = (
        spark.read.parquet(*valid)
        .withColumn("_order", F.element_at(order, F.col(SOURCE_FILE)))
        .withColumn("_newest", F.max("_order").over(Window.partitionBy(key)))
    )
    folder = f"{out_dir}/newest"
    rows.where(F.col("_order") == F.col("_newest")).drop("_order", "_newest").write.parquet(folder)
    return sorted(str(p) for p in Path(folder).glob("*.parquet"))


# --- inside Spark tasks (Arrow batches of one partition) -------------------------------------------
