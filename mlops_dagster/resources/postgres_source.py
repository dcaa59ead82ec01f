"""A PostgreSQL table or query as a use case's source: the rows past a watermark, streamed.

A server-side cursor hands over ``batch_rows`` rows at a time; each batch becomes Arrow (one
schema for the whole read, from the result's column types) and a Parquet file in the staging
folder, so memory is bounded by a batch, never by the table. The DSN (it holds the password) is
read from an environment variable here and nowhere else, and no message says more of it than the
server's own words (host and port, never the password). No Dagster.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from ..settings import PostgresSourceSettings


class SourceError(RuntimeError):
    """The source cannot be read: the message names it and what to fix."""


@dataclass
class SourceRead:
    files: list[str]  # Parquet files of the rows read (none: nothing new)
    rows: int
    watermark: str | None  # the greatest watermark read, as PostgreSQL writes it (None: nothing read)


def describe(source: PostgresSourceSettings) -> str:
    """How the source is named in lineage, messages and metadata (never the DSN)."""
    return f"postgres:{source.table}" if source.table else "postgres:query"


def read_new_rows(
    source: PostgresSourceSettings, after: str | None, out_dir: str, progress=None
) -> SourceRead:
    """The rows whose ``source.watermark`` is greater than ``after`` (every row when None), as Parquet
    files under ``out_dir``; ``progress(rows)`` after each batch."""
    import psycopg
    import pyarrow.parquet as pq
    from psycopg import sql

    name = describe(source)
    dsn = os.environ.get(source.dsn_env)
    if not dsn:
        raise SourceError(
            f"{name}: the DSN is read from ${source.dsn_env} (dataset.source.dsn_env), which is not "
            "set: export it (postgresql://user:password@host:5432/db) where the step runs"
        )
    relation = (
        sql.SQL("SELECT * FROM {}").format(sql.Identifier(*source.table.split(".")))
        if source.table
        else sql.SQL(source.query)
    )
    where = (
        sql.SQL(" WHERE {} > %s").format(sql.Identifier(source.watermark))
        if after is not None
        else sql.SQL("")
    )
    query = sql.SQL("SELECT * FROM ({}) AS source{}").format(relation, where)
    files, rows, newest = [], 0, None
    try:
        with psycopg.connect(dsn, connect_timeout=10) as conn:
            with conn.cursor(name=f"mlops_{uuid.uuid4().hex[:8]}") as cursor:
                cursor.itersize = source.batch_rows
                cursor.execute(query, (after,) if after is not None else None)
                schema = _schema(conn, cursor.description)
                if source.watermark not in schema.names:
                    raise SourceError(
                        f"{name}: the watermark column {source.watermark!r} is not in the result "
                        f"(columns: {', '.join(schema.names)}); set dataset.source.watermark"
                    )
                at = schema.names.index(source.watermark)
                while batch := cursor.fetchmany(source.batch_rows):
                    table = _arrow(batch, schema)
                    path = f"{out_dir}/source/{len(files):06d}.parquet"
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
                    pq.write_table(table, path)
                    files.append(path)
                    rows += len(batch)
                    top = max((r[at] for r in batch if r[at] is not None), default=None)
                    newest = top if newest is None or (top is not None and top > newest) else newest
                    if progress:
                        progress(rows)
    except psycopg.OperationalError as error:
        # psycopg's message names host and port, not the password; only its first line is kept.
        raise SourceError(
            f"{name}: cannot connect (DSN from ${source.dsn_env}): {str(error).splitlines()[0]}"
        ) from None
    except psycopg.Error as error:
        primary = error.diag.message_primary if error.diag else None
        raise SourceError(
            f"{name}: the query failed: {primary or str(error).splitlines()[0]} "
            "(check dataset.source.table / query and watermark)"
        ) from None
    return SourceRead(files, rows, _text(newest))


# PostgreSQL type name -> Arrow type; anything else is read as its text (and checked as such).
def _arrow_types() -> dict[str, pa.DataType]:
    import pyarrow as pa

    return {
        "int2": pa.int64(),
        "int4": pa.int64(),
        "int8": pa.int64(),
        "float4": pa.float64(),
        "float8": pa.float64(),
        "bool": pa.bool_(),
        "text": pa.string(),
        "varchar": pa.string(),
        "bpchar": pa.string(),
        "timestamptz": pa.timestamp("us", tz="UTC"),
        "timestamp": pa.timestamp("us"),
        "date": pa.date32(),
    }


def _schema(conn, description) -> pa.Schema:
    import pyarrow as pa

    known = _arrow_types()
    fields = []
    for column in description:
        info = conn.adapters.types.get(column.type_code)
        fields.append(pa.field(column.name, known.get(info.name if info else "", pa.string())))
    return pa.schema(fields)


def _arrow(rows: list[tuple], schema: pa.Schema) -> pa.Table:
    import pyarrow as pa

    columns = []
    for i, field in enumerate(schema):
        values = [r[i] for r in rows]
        if pa.types.is_string(field.type):
            values = [v if v is None or isinstance(v, str) else str(v) for v in values]
        columns.append(pa.array(values, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _text(value: Any) -> str | None:
    """A watermark as text PostgreSQL reads back as the same value."""
    from datetime import datetime

    if value is None:
        return None
    if isinstance(value, datetime) and value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.isoformat() if hasattr(value, "isoformat") else str(value)
