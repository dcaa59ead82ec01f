"""The work of one Spark task over landing rows: check a batch of lines against the contract with
Arrow kernels and write the valid rows, the quarantined rows and each line's key aside as Parquet
files into the staging folder (``landing.py`` plans the tasks and reads what they wrote).
Pure Arrow, no Spark session, no Dagster: these functions run in Spark's Python workers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..settings import INGESTED_AT, SOURCE_FILE, CsvOptions
from .contract import OK, Rule, cell_reasons, check_cells, typed_schema
from .landing_formats import Cells, csv_cells, json_cells, parquet_cells

QUARANTINE_SCHEMA = pa.schema(
    [
        ("source_file", pa.string()),
        ("line_number", pa.int64()),
        ("record", pa.string()),
        ("reason", pa.string()),
        ("quarantined_at", pa.timestamp("us", tz="UTC")),
        ("dagster_run_id", pa.string()),
    ]
)
KEYS_SCHEMA = pa.schema([("_file", pa.int32()), ("_line", pa.int64()), ("_key", pa.string())])


@dataclass
class LandingFile:
    """One landing file: what its header says, and what happened to its rows."""

    index: int  # order of arrival (a later file wins a key)
    path: str
    format: str | None = (
        "csv"  # csv, json, parquet, or table (a Delta table or a database read); None: unknown
    )
    read_from: str = ""  # what Spark reads (a UTF-8 copy of a file in another encoding)
    header: list[str] = field(default_factory=list)
    header_line: int = 0
    data_rows: int = 0  # non-blank lines after the header
    refusal: str | None = None  # a problem with the whole file
    extra_columns: list[str] = field(default_factory=list)
    duplicated_rows: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0

    @property
    def rows_read(self) -> int:
        return self.rows_loaded + self.rows_quarantined

    def problems(self, key: str) -> list[str]:
        if self.refusal:
            return [self.refusal]
        found = []
        if self.extra_columns:
            found.append(f"ignored column(s) not in the dataset contract: {', '.join(self.extra_columns)}")
        if self.duplicated_rows:
            found.append(f"{self.duplicated_rows} rows share a {key} with another row of the file")
        if self.rows_quarantined:
            found.append(f"{self.rows_quarantined} of {self.data_rows} rows quarantined")
        return found


@dataclass(frozen=True)
class CheckTask:
    """What a Spark task needs to check its lines (pickled to the executors: keep it small)."""

    files: dict[int, LandingFile]
    rules: dict[str, Rule]
    csv: CsvOptions
    key: str
    out_dir: str
    ingested_at: datetime
    run_id: str


def _per_file(batch: pa.RecordBatch) -> Iterator[tuple[int, pa.RecordBatch]]:
    files = batch.column("_file")
    indexes = pc.unique(files).to_pylist()
    if len(indexes) == 1:  # the usual case: a batch of one file
        yield indexes[0], batch
        return
    for index in indexes:
        yield index, batch.filter(pc.equal(files, index))


class _Output:
    """A Parquet file a task writes its rows of one kind into, opened on the first rows."""

    def __init__(self, folder: str, schema: pa.Schema):
        self.path, self.schema, self.writer, self.rows = (
            f"{folder}/{uuid.uuid4().hex}.parquet",
            schema,
            None,
            {},
        )

    def write(self, index: int, table: pa.Table | None) -> None:
        import pyarrow.parquet as pq

        if table is None or not len(table):
            return
        if self.writer is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(self.path, self.schema)
        self.writer.write_table(table.cast(self.schema))
        self.rows[index] = self.rows.get(index, 0) + len(table)

    def close(self, kind: str) -> list[tuple]:
        if self.writer is not None:
            self.writer.close()
        return [(kind, self.path, index, rows) for index, rows in self.rows.items()]


def valid_schema(rules: Mapping[str, Rule]) -> pa.Schema:
    """The raw table's columns: the contract's, typed, then the landing file and ingestion time."""
    return (
        typed_schema(rules)
        .append(pa.field(SOURCE_FILE, pa.string()))
        .append(pa.field(INGESTED_AT, pa.timestamp("us", tz="UTC")))
    )


def check_partition(
    task: CheckTask, with_keys: bool, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """Check each line, write valid and quarantined rows (and the keys), return (kind, path, file, rows)."""
    valid = _Output(f"{task.out_dir}/valid", valid_schema(task.rules))
    quarantine = _Output(f"{task.out_dir}/quarantine", QUARANTINE_SCHEMA)
    keys = _Output(f"{task.out_dir}/keys", KEYS_SCHEMA)
    for batch in batches:
        for index, rows in _per_file(batch):
            good, bad, found = _check_rows(task, task.files[index], rows)
            valid.write(index, good)
            quarantine.write(index, bad)
            if with_keys:
                keys.write(index, found)
    done = valid.close("valid") + quarantine.close("quarantine") + keys.close("keys")
    yield pa.RecordBatch.from_pylist(
        [dict(zip(("kind", "path", "file", "rows"), d)) for d in done],
        schema=pa.schema(
            [("kind", pa.string()), ("path", pa.string()), ("file", pa.int32()), ("rows", pa.int64())]
        ),
    )


def _check_rows(
    task: CheckTask, f: LandingFile, rows: pa.RecordBatch
) -> tuple[pa.Table | None, pa.Table, pa.Table | None]:
    """One file's rows of a batch: (typed valid rows, quarantine rows, (file, line, key) of the
    rows with a key)."""
    cells = _cells(task, f, rows)
    taken = pa.array(cells.order)
    lines, duplicate = rows.column("_line").take(taken), rows.column("_duplicate").take(taken)
    n = len(cells.order)
    if f.refusal:
        return None, _quarantine(task, f, cells, lines, np.arange(n), [[f.refusal]] * n), None
    raw = cells.raw
    typed, codes = check_cells(raw, task.rules)
    broken = np.zeros(n, dtype=bool)
    broken[list(cells.broken)] = True
    dup = pc.is_valid(duplicate).to_numpy(zero_copy_only=False)
    bad = broken | dup | np.any([c != OK for c in codes.values()], axis=0)
    bad_rows = np.flatnonzero(bad)
    reasons = cell_reasons(bad_rows, raw, typed, codes, task.rules)
    duplicates = duplicate.take(pa.array(bad_rows)).to_pylist()
    for j, i in enumerate(bad_rows):
        if i in cells.broken:  # shifted values, an unclosed quote, not JSON: its cell reasons would mislead
            reasons[j] = [cells.broken[i]]
        elif duplicates[j]:
            reasons[j].append(duplicates[j])
    keep = pa.array(~bad)
    good = pa.table({c: typed[c].filter(keep) for c in task.rules})
    good = good.append_column(SOURCE_FILE, pa.repeat(pa.scalar(f.path, pa.string()), len(good)))
    good = good.append_column(INGESTED_AT, pa.repeat(_at(task), len(good)))
    key = raw[task.key].cast(pa.string())
    found = pa.table(
        {"_file": pa.repeat(pa.scalar(f.index, pa.int32()), n), "_line": lines, "_key": key},
        schema=KEYS_SCHEMA,
    ).filter(pc.is_valid(key))
    return good, _quarantine(task, f, cells, lines, bad_rows, reasons), found


def _cells(task: CheckTask, f: LandingFile, rows: pa.RecordBatch) -> Cells:
    if f.format in ("parquet", "table"):
        return parquet_cells(rows, f.header, task.rules)
    if f.format == "json":
        return json_cells(rows.column("value"), task.rules)
    return csv_cells(rows.column("value"), f.header, task.rules, task.csv)


def _at(task: CheckTask) -> pa.Scalar:
    return pa.scalar(task.ingested_at, pa.timestamp("us", tz="UTC"))


def _quarantine(
    task: CheckTask, f: LandingFile, cells: Cells, lines: pa.Array, rows: np.ndarray, reasons: list[list[str]]
) -> pa.Table:
    return _quarantine_table(
        task,
        f.path,
        lines.take(pa.array(rows, pa.int64())),
        cells.records(rows),
        ["; ".join(r) for r in reasons],
    )


def _quarantine_table(task: CheckTask, path: str, lines, records: list[str], reasons: list[str]) -> pa.Table:
    n = len(records)
    return pa.table(
        {
            "source_file": pa.repeat(pa.scalar(path, pa.string()), n),
            "line_number": pa.array(lines, pa.int64()),
            "record": pa.array(records, pa.string()),
            "reason": pa.array(reasons, pa.string()),
            "quarantined_at": pa.repeat(_at(task), n),
            "dagster_run_id": pa.repeat(pa.scalar(task.run_id), n),
        },
        schema=QUARANTINE_SCHEMA,
    )


def write_refusal(f: LandingFile, task: CheckTask) -> dict:
    """A file refused whole before any row could be read: one quarantine row saying why (line 0)."""
    import pyarrow.parquet as pq

    path = f"{task.out_dir}/quarantine/{uuid.uuid4().hex}.parquet"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(_quarantine_table(task, f.path, [0], [""], [f.refusal]), path)
    return {"kind": "quarantine", "path": path, "file": f.index, "rows": 1}
