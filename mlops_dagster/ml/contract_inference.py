"""A dataset contract (``dataset.columns``) inferred from a sample of a CSV, JSON lines or Parquet file.

The file is read in batches until ``rows`` rows are in (never more than a batch past them), so a large
file costs its first rows only. Each column's rule is the narrowest the contract's own parser
(``contract.parse_column``) accepts for every sampled cell: ``long``, then ``double``, ``boolean``
(only true / false text), ``timestamp`` (ISO 8601), else ``string``; ``nullable`` when a cell is
empty; ``allowed`` for a text column of few values; ``min`` and ``max`` as sampled for numbers.
Pure Arrow: no Spark, no Dagster.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .contract import OK, parse_column

# A text column with at most this many values (and each seen at least twice on average) gets `allowed`.
MAX_ALLOWED = 10
_BATCH_BYTES = 1 << 20
_TEXT_TYPES = ("long", "double", "boolean", "timestamp")


def _batches(path: Path, file_format: str) -> Iterator[pa.RecordBatch]:
    if file_format == "parquet":
        import pyarrow.parquet as pq

        yield from pq.ParquetFile(path).iter_batches(batch_size=65536)
    elif file_format == "csv":
        import pyarrow.csv as pacsv

        # Every column as text, so a later batch never disagrees with a type the first one suggested.
        names = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=_BATCH_BYTES)).schema.names
        yield from pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=_BATCH_BYTES),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in names}, strings_can_be_null=True
            ),
        )
    else:
        import pyarrow.json as pajson

        yield from pajson.open_json(path, read_options=pajson.ReadOptions(block_size=_BATCH_BYTES))


def sample(path: Path, file_format: str, rows: int) -> pa.Table:
    """The file's first ``rows`` rows (fewer if it has fewer)."""
    batches, read = [], 0
    for batch in _batches(path, file_format):
        batches.append(batch)
        read += batch.num_rows
        if read >= rows:
            break
    if not batches:
        raise ValueError(f"{path} holds no rows to infer a contract from")
    return pa.Table.from_batches(batches).slice(0, rows)


def _rule(kind: str) -> SimpleNamespace:
    """A rule that only parses: the contract's parser checks the type, nothing else."""
    return SimpleNamespace(type=kind, nullable=True, allowed=None, min=None, max=None)


def _fits(values: pa.Array, kind: str) -> bool:
    if (
        kind == "boolean"
        and not pc.all(pc.is_in(pc.utf8_lower(values.drop_null()), pa.array(["true", "false"]))).as_py()
    ):
        return False  # Yes/No and 0/1 are text or numbers with allowed values, as people read them
    _, codes = parse_column(values, _rule(kind))
    return bool(np.all(codes == OK))


def _type(values: pa.Array) -> str:
    """The contract type of one sampled column."""
    kind = values.type
    if pa.types.is_integer(kind):
        return "long"
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return "double"
    if pa.types.is_boolean(kind):
        return "boolean"
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return "timestamp"
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)) or values.null_count == len(values):
        return "string"
    text = pc.utf8_trim_whitespace(values.cast(pa.string()))
    return next((t for t in _TEXT_TYPES if _fits(text, t)), "string")


def _number(value: float, kind: str) -> int | float:
    return int(value) if kind == "long" else float(value)


def column_rule(values: pa.Array) -> dict:
    """One column's rule, as ``dataset.columns`` writes it."""
    kind = _type(values)
    rule: dict = {"type": kind}
    if values.null_count:
        rule["nullable"] = True
    present = values.drop_null()
    if kind in ("long", "double") and len(present):
        text = pc.utf8_trim_whitespace(present) if pa.types.is_string(present.type) else present
        typed, _ = parse_column(text, _rule(kind))
        bounds = pc.min_max(typed)
        rule["min"], rule["max"] = (_number(bounds[b].as_py(), kind) for b in ("min", "max"))
    elif kind == "string" and len(present):
        distinct = pc.unique(present.cast(pa.string()))
        if len(distinct) <= MAX_ALLOWED and len(distinct) * 2 <= len(present):
            rule["allowed"] = sorted(distinct.to_pylist())
    return rule


def infer_contract(path: str | Path, file_format: str, rows: int = 100_000) -> tuple[dict[str, dict], int]:
    """Each column's rule (in the file's order) and how many rows were sampled."""
    table = sample(Path(path), file_format, rows)
    return {name: column_rule(table.column(name).combine_chunks()) for name in table.column_names}, len(table)


def contract_yaml(columns: dict[str, dict]) -> str:
    """``columns:`` and one flow mapping per column, as the shipped configuration writes them."""
    import yaml

    flows = (
        yaml.safe_dump({name: rule}, default_flow_style=True, width=10_000, sort_keys=False).strip()[1:-1]
        for name, rule in columns.items()
    )
    return "".join(["columns:\n", *(f"  {flow}\n" for flow in flows)])
