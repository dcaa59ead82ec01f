"""Landing file formats: CSV (any delimiter, quote and encoding, with or without a header, plain or
gzip-compressed), JSON lines and Parquet, each turned into the same thing: per contract column the
text of every cell (stripped, None where empty or missing), the rows whose cells cannot be trusted
with the reason, and the original records for the quarantine. ``landing.py`` checks those cells
against the contract, whatever the format.

Typed formats go through text too (a Parquet double 1.5 is ``"1.5"``), so a value of the wrong type
in a Parquet or JSON file is refused by the same rule, with the same words, as in a CSV file.
Pure Spark + Arrow, no Dagster.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import json
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..settings import CsvOptions
from .contract import Rule

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# Extension (after an optional .gz) -> format.
EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_CHUNK = 1 << 20


def file_format(path: str, configured: str) -> str | None:
    """The format of a landing file: the configured one, else by its extension (None: unknown)."""
    if configured != "auto":
        return configured
    suffixes = [s.lower() for s in PurePosixPath(path).suffixes]
    if suffixes[-1:] == [".gz"]:
        suffixes.pop()
        if suffixes[-1:] in ([".parquet"], [".pq"]):  # Parquet compresses inside the file
            return None
    return EXTENSIONS.get(suffixes[-1]) if suffixes else None


def unknown_format(path: str) -> str:
    return (
        f"cannot tell the format of {PurePosixPath(path).name} from its extension (known: "
        f"{', '.join(sorted(EXTENSIONS))}, each also .gz but Parquet): name the file so, or set `format`"
    )


def is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")


def transcode(path: str, encoding: str, out: str) -> str | None:
    """Copy a text file (gzip-compressed if it ends in .gz) written in ``encoding`` into ``out`` as
    UTF-8, a chunk at a time. Returns why the file cannot be read that way, or None."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    line = 1
    try:
        with (
            (gzip.open if path.lower().endswith(".gz") else open)(path, "rb") as src,
            open(out, "w", encoding="utf-8", newline="") as dst,
        ):
            while True:
                chunk = src.read(_CHUNK)
                try:
                    text = decoder.decode(chunk, final=not chunk)
                except UnicodeDecodeError as error:
                    before = chunk[: error.start].decode(encoding, errors="replace").count("\n")
                    return f"file is not {encoding} text (line {line + before}: {error.reason})"
                dst.write(text)
                line += text.count("\n")
                if not chunk:
                    return None
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        return f"file is not gzip-compressed data or is truncated ({error})"


def gzip_problem(path: str) -> str | None:
    """Why a .gz file cannot be decompressed to its end, or None (read a chunk at a time)."""
    try:
        with gzip.open(path, "rb") as src:
            while src.read(_CHUNK):
                pass
    except (gzip.BadGzipFile, EOFError, zlib.error, OSError) as error:
        return f"file is not gzip-compressed data or is truncated ({error})"
    return None


def parse_header(line: str, options: CsvOptions) -> list[str]:
    return [
        h.strip()
        for h in next(
            csv.reader([line.lstrip("\ufeff")], delimiter=options.delimiter, quotechar=options.quote), []
        )
    ]


# --- Parquet: the file's footer on the driver, its rows through Spark --------------------------


@dataclass(frozen=True)
class ParquetFooter:
    schema: pa.Schema
    rows: int

    @property
    def columns(self) -> list[str]:
        return self.schema.names


def parquet_footer(path: str) -> ParquetFooter | str:
    """The columns and row count of a Parquet file, or why it is not one (only the footer is read)."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(path)
    except (pa.ArrowInvalid, OSError) as error:
        return f"file is not a Parquet file ({error})"
    return ParquetFooter(meta.schema.to_arrow_schema(), meta.num_rows)


def parquet_rows(
    spark: SparkSession, files: Mapping[int, tuple[str, ParquetFooter]], rules: Mapping[str, Rule]
) -> list[DataFrame]:
    """Rows of Parquet files as ``_file``, ``_line`` (row number in its file, from 1) and one column
    per contract column (see ``contract_columns``). One frame per combination of column kinds
    (files that agree are read as one). ``files``: index -> (path, its footer)."""
    from functools import reduce

    from pyspark.sql import functions as F

    # pandas writes nanosecond timestamps, which Spark reads only as their count of nanoseconds.
    spark.conf.set("spark.sql.legacy.parquet.nanosAsLong", "true")
    groups: dict[tuple, list] = {}
    for index, (path, footer) in files.items():
        df = spark.read.parquet(spark_literal(path))
        cells, shape = contract_columns(df, rules, {c: footer.schema.field(c).type for c in footer.columns})
        groups.setdefault(shape, []).append(
            df.select(
                F.lit(index).cast("int").alias("_file"),
                (F.col("_metadata.row_index") + 1).alias("_line"),
                *cells,
            )
        )
    return [reduce(lambda a, b: a.unionByName(b), frames) for frames in groups.values()]


def table_rows(df: DataFrame, index: int, rules: Mapping[str, Rule]) -> DataFrame:
    """Rows of a table (a Spark DataFrame) like ``parquet_rows``'s; ``_line`` is a row id unique
    within this read (a table has no line numbers)."""
    from pyspark.sql import functions as F

    cells, _ = contract_columns(df, rules, {})
    return df.select(
        F.lit(index).cast("int").alias("_file"), (F.monotonically_increasing_id() + 1).alias("_line"), *cells
    )


def contract_columns(
    df: DataFrame, rules: Mapping[str, Rule], arrow_types: Mapping[str, pa.DataType]
) -> tuple[list, tuple]:
    """Per contract column ``c0``, ``c1``, ...: the value itself where its type is the rule's (a
    double for a double), else its text, checked like a CSV cell; null where ``df`` lacks it. And
    the kind of each (what frames must agree on to be read as one)."""
    from pyspark.sql import functions as F

    types = dict(df.dtypes)
    cells, shape = [], []
    for i, (column, rule) in enumerate(rules.items()):
        arrow_type = arrow_types.get(column)
        if column not in types:
            cell, kind = F.lit(None).cast("string"), "missing"
        elif _native(types[column], rule, arrow_type):
            cell, kind = F.col(f"`{column}`").cast(rule.type), rule.type
        else:
            cell, kind = _as_text(F.col(f"`{column}`"), types[column], arrow_type), "text"
        cells.append(cell.alias(f"c{i}"))
        shape.append(kind)
    return cells, tuple(shape)


_INTEGERS = ("tinyint", "smallint", "int", "bigint")


def _native(spark_type: str, rule: Rule, arrow_type: pa.DataType | None) -> bool:
    """Whether a column's values are the rule's type already (no text round trip)."""
    if arrow_type is not None and pa.types.is_timestamp(arrow_type):  # nanoseconds arrive as bigint
        return False
    if rule.type == "double":
        return spark_type == "double" or spark_type in _INTEGERS
    if rule.type == "long":
        return spark_type in _INTEGERS
    return rule.type == "boolean" and spark_type == "boolean"


def _as_text(column, spark_type: str, arrow_type: pa.DataType | None):
    """A Parquet value as the text a CSV file would hold (timestamps in ISO 8601 with their offset;
    one without a zone is UTC, as in a CSV file)."""
    from pyspark.sql import functions as F

    if arrow_type is not None and pa.types.is_timestamp(arrow_type) and arrow_type.unit == "ns":
        column = F.timestamp_micros(F.floor(column.cast("decimal(20,0)") / 1000).cast("long"))
        spark_type = "timestamp"
    if spark_type == "timestamp":
        return F.date_format(column, "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX")
    return column.cast("string")


def spark_literal(path: str) -> str:
    """A path Spark takes as it is (its glob characters escaped)."""
    return "".join("\\" + c if c in "[]{}*?\\" else c for c in path)


# --- inside Spark tasks: one file's rows of a batch -> cells ----------------------------------


@dataclass
class Cells:
    """One file's rows of a batch as text cells, in the order of ``order`` (indices into the batch)."""

    order: np.ndarray
    raw: dict[str, pa.Array]  # contract column -> stripped text, None where empty or missing
    broken: dict[int, str]  # row -> why its cells cannot be trusted (replaces the cell reasons)
    records: Callable[[np.ndarray], list[str]]  # rows -> their original records, as JSON text


def _cleaned(texts: pa.Array) -> pa.Array:
    stripped = pc.utf8_trim_whitespace(texts)
    return pc.if_else(pc.equal(stripped, ""), pa.scalar(None, pa.string()), stripped)


def csv_cells(values: pa.Array, header: list[str], rules: Mapping[str, Rule], options: CsvOptions) -> Cells:
    """CSV lines (one record per line) split on the delimiter, quoted ones by Python's csv module."""
    order, fields, unclosed = _fields(values, options)
    width = len(header)
    flat = pc.list_slice(fields, 0, width, return_fixed_size_list=True).flatten()
    raw = {
        c: _cleaned(flat.take(pa.array(np.arange(header.index(c), len(flat), width))))
        if c in header
        else pa.nulls(len(order), pa.string())
        for c in rules
    }
    counts = pc.list_value_length(fields).to_numpy(zero_copy_only=False)
    broken = {}
    for i in np.flatnonzero(unclosed | (counts != width)):
        broken[int(i)] = (
            "a quoted value is not closed on this line (line breaks inside values are not supported)"
            if unclosed[i]
            else f"row has {counts[i]} fields, the header has {width}"
        )

    def records(rows: np.ndarray) -> list[str]:
        return [
            json.dumps(dict(zip(header, v)), ensure_ascii=False)
            for v in fields.take(pa.array(rows, pa.int64())).to_pylist()
        ]

    return Cells(order, raw, broken, records)


def _fields(values: pa.Array, options: CsvOptions) -> tuple[np.ndarray, pa.Array, np.ndarray]:
    """Each line's fields. Lines without the quote character are split by Arrow; lines with it by
    Python's csv module (RFC 4180 quoting). Returns the row order used (quoted lines last), the
    fields, and which lines have an unclosed quote."""
    delimiter, quote = options.delimiter, options.quote
    data = values.buffers()[2]
    if data is None or memoryview(data).tobytes().find(quote.encode()) < 0:  # one scan of the batch's bytes
        return np.arange(len(values)), pc.split_pattern(values, delimiter), np.zeros(len(values), dtype=bool)
    quoted = pc.fill_null(pc.match_substring(values, quote), False).to_numpy(zero_copy_only=False)
    plain, special = np.flatnonzero(~quoted), np.flatnonzero(quoted)
    texts = values.take(pa.array(special)).to_pylist()
    parsed = pa.array(
        [next(csv.reader([t], delimiter=delimiter, quotechar=quote), []) for t in texts],
        pa.list_(pa.string()),
    )
    fields = pa.concat_arrays([pc.split_pattern(values.take(pa.array(plain)), delimiter), parsed])
    unclosed = np.concatenate(
        [np.zeros(len(plain), dtype=bool), np.array([t.count(quote) % 2 == 1 for t in texts])]
    )
    return np.concatenate([plain, special]), fields, unclosed


def json_cells(values: pa.Array, rules: Mapping[str, Rule]) -> Cells:
    """JSON lines: each line one object; keys not in the contract are ignored, a missing key is empty.
    Arrow's JSON reader parses the batch when every line is an object of plain values of one type
    per key (the usual case); otherwise each line is parsed alone, to say what is wrong with it."""
    records = lambda rows: values.take(pa.array(rows, pa.int64())).to_pylist()  # noqa: E731
    raw = _json_batch(values, rules)
    if raw is not None:
        return Cells(np.arange(len(values)), raw, {}, records)
    texts = values.to_pylist()
    columns: dict[str, list] = {c: [None] * len(texts) for c in rules}
    broken = {}
    for i, text in enumerate(texts):
        try:
            record = json.loads(text)
        except ValueError as error:
            broken[i] = (
                f"line is not valid JSON ({getattr(error, 'msg', error)} at column {getattr(error, 'colno', '?')})"
            )
            continue
        if not isinstance(record, dict):
            broken[i] = f"line is a JSON {type(record).__name__}, not an object"
            continue
        nested = []
        for column in rules:
            value = record.get(column)
            if value is None:
                continue
            if isinstance(value, (dict, list)):
                nested.append(column)
            elif isinstance(value, bool):
                columns[column][i] = "true" if value else "false"
            else:
                columns[column][i] = value if isinstance(value, str) else json.dumps(value)
        if nested:
            broken[i] = f"{', '.join(nested)}: a JSON object or array where one value is expected"
    raw = {c: _cleaned(pa.array(v, pa.string())) for c, v in columns.items()}
    return Cells(np.arange(len(texts)), raw, broken, records)


_PLAIN_JSON = (pa.string(), pa.bool_(), pa.int64(), pa.float64(), pa.null())


def _json_batch(values: pa.Array, rules: Mapping[str, Rule]) -> dict[str, pa.Array] | None:
    """The contract columns of a batch of JSON lines as text, parsed by Arrow in one go; None when
    Arrow cannot (a line that is not an object, a key of two types, a nested or date-like value)."""
    import pyarrow.json as pj

    lines = pc.binary_join_element_wise(
        values.cast(pa.large_string()), pa.scalar("", pa.large_string()), pa.scalar("\n", pa.large_string())
    )
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)  # each line and its line break, end to end
    data = lines.buffers()[2][offsets[lines.offset] : offsets[lines.offset + len(lines)]]
    try:
        table = pj.read_json(pa.BufferReader(data), read_options=pj.ReadOptions(use_threads=False))
    except pa.ArrowInvalid:
        return None
    if table.num_rows != len(values) or any(
        c in table.column_names and table.schema.field(c).type not in _PLAIN_JSON for c in rules
    ):
        return None
    return {
        c: _cleaned(table.column(c).combine_chunks().cast(pa.string()))
        if c in table.column_names
        else pa.nulls(len(values), pa.string())
        for c in rules
    }


def parquet_cells(batch: pa.RecordBatch, columns: list[str], rules: Mapping[str, Rule]) -> Cells:
    """Rows of ``parquet_rows`` (``c0``, ``c1``, ...: values of the rule's type, or text);
    ``columns``: those the file has."""
    cells = {c: batch.column(f"c{i}") for i, c in enumerate(rules)}

    def records(rows: np.ndarray) -> list[str]:
        taken = {c: cells[c].take(pa.array(rows, pa.int64())).to_pylist() for c in rules if c in columns}
        return [json.dumps({c: taken[c][j] for c in taken}, ensure_ascii=False) for j in range(len(rows))]

    raw = {c: _cleaned(v) if pa.types.is_string(v.type) else v for c, v in cells.items()}
    return Cells(np.arange(batch.num_rows), raw, {}, records)
