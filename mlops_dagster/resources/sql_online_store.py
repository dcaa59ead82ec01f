"""The SQL the online stores share (``SqliteOnlineStore``, ``PostgresOnlineStore``): publish through
a staging table swapped in (or upserted from) in one short transaction, look up by key, and the
catalog table recording which feature tables are published, from which Delta version. Subclasses
bring the connection, placeholders, column types and bulk load.
"""

from __future__ import annotations

import json
import threading
import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import PrivateAttr

from ..serving.keyed_model import not_published, quote, select_by_key
from .online_store import OnlineStore, OnlineTableNotFoundError, PublishInfo, online_table_name

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pyarrow as pa

CATALOG = "mlops_online_tables"  # which feature tables are published, from which Delta version


def _batches(rows) -> pa.RecordBatchReader:
    """What a publish reads: a stream of Arrow batches (pandas and Arrow tables are wrapped)."""
    import pyarrow as pa

    if isinstance(rows, pa.RecordBatchReader):
        return rows
    if not isinstance(rows, pa.Table):
        rows = pa.Table.from_pandas(rows, preserve_index=False)
    return rows.to_reader(max_chunksize=50_000)


class SqlOnlineStore(OnlineStore, ABC):
    """The SQL both stores share; subclasses bring the connection, placeholders and bulk load."""

    _conn: Any = PrivateAttr(default=None)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    placeholder: ClassVar[str] = "?"
    sql_types: ClassVar[dict[str, str]] = {
        "string": "TEXT",
        "double": "DOUBLE PRECISION",
        "long": "BIGINT",
        "boolean": "BOOLEAN",
    }

    @abstractmethod
    def _connect(self): ...

    @abstractmethod
    def _load(self, conn, staging: str, columns: list[str], batches: Iterator[pa.RecordBatch]) -> None:
        """Append ``batches`` (see ``_prepared``) to table ``staging``, committed."""

    def _connection(self):
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def teardown_after_execution(self, context) -> None:
        self.close()

    @staticmethod
    def _kind(dtype: pa.DataType) -> str:
        import pyarrow as pa

        if pa.types.is_boolean(dtype):
            return "boolean"
        if pa.types.is_integer(dtype):
            return "long"
        if pa.types.is_floating(dtype):
            return "double"
        return "string"  # strings, and timestamps as ISO-8601 text (UTC, fixed width: they sort as time)

    @staticmethod
    def _prepared(batch: pa.RecordBatch) -> pa.RecordBatch:
        """A batch as the database stores it: NaN as NULL, timestamps as ISO-8601 text (UTC)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        columns = []
        for column in batch.columns:
            if pa.types.is_timestamp(column.type):
                # Formatted once per distinct time, then taken per row: a feature table's rows share
                # a few ingestion times, and strftime costs about 1 s per million values.
                times = pc.dictionary_encode(column.cast(pa.timestamp("us", tz="UTC")))
                column = pc.take(pc.strftime(times.dictionary, "%Y-%m-%dT%H:%M:%SZ"), times.indices)
            elif pa.types.is_floating(column.type):
                column = pc.if_else(pc.is_nan(column), pa.scalar(None, column.type), column)
            columns.append(column)
        return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)

    def publish(self, table, rows, keys, delta_version, *, incremental=False, newest=None, progress=None):
        online = online_table_name(table)
        staging = online + "__staging"
        reader = _batches(rows)
        columns = list(reader.schema.names)
        kinds = {c: self._kind(reader.schema.field(c).type) for c in columns}
        p = self.placeholder
        loaded = 0

        def prepared():
            nonlocal loaded
            for batch in reader:
                yield self._prepared(batch)
                loaded += batch.num_rows
                if progress:
                    progress(batch.num_rows)

        with self._lock:
            conn = self._connection()
            # The rows go to a staging table first, committed: the long load holds no lock on the
            # online table, and a publish that died midway leaves only a staging table (dropped here).
            with self._transaction(conn) as cur:
                cur.execute(f"DROP TABLE IF EXISTS {quote(staging)}")
                ddl = ", ".join(f"{quote(c)} {self.sql_types[kinds[c]]}" for c in columns)
                cur.execute(f"CREATE TABLE {quote(staging)} ({ddl})")
            try:
                self._load(conn, staging, columns, prepared())
                # Then one short transaction swaps it in (or upserts from it): readers see the old
                # version or the new one, never a mix.
                with self._transaction(conn) as cur:
                    cur.execute(
                        f"CREATE TABLE IF NOT EXISTS {CATALOG} (table_name TEXT PRIMARY KEY, online_table TEXT, "
                        "delta_version BIGINT, row_count BIGINT, key_columns TEXT, feature_columns TEXT, "
                        "published_at DOUBLE PRECISION)"
                    )
                    if incremental:
                        self._upsert(cur, online, staging, columns, keys, newest)
                        cur.execute(f"DROP TABLE {quote(staging)}")
                        total = self._count(cur, online)
                    else:
                        cur.execute(f"DROP TABLE IF EXISTS {quote(online)}")
                        cur.execute(f"ALTER TABLE {quote(staging)} RENAME TO {quote(online)}")
                        # The key index is built once the rows are in (faster than row by row); duplicated
                        # keys make it fail, and the transaction leaves the previous version in place.
                        self._index(cur, online, keys, table)
                        total = loaded
                    cur.execute(f"DELETE FROM {CATALOG} WHERE table_name = {p}", (table,))
                    cur.execute(
                        f"INSERT INTO {CATALOG} VALUES ({', '.join([p] * 7)})",
                        (
                            table,
                            online,
                            delta_version,
                            total,
                            json.dumps(keys),
                            json.dumps({c: kinds[c] for c in columns if c not in keys}),
                            time.time(),
                        ),
                    )
            except BaseException:
                with self._transaction(conn) as cur:
                    cur.execute(f"DROP TABLE IF EXISTS {quote(staging)}")
                raise
        return PublishInfo(table, online, loaded, delta_version, self.describe(), incremental)

    def _index(self, cur, online: str, keys: list[str], table: str) -> None:
        columns = ", ".join(map(quote, keys))
        cur.execute("SAVEPOINT key_index")
        try:
            cur.execute(f"CREATE UNIQUE INDEX {quote(online + '__key')} ON {quote(online)} ({columns})")
        except Exception as exc:
            if not self._duplicate_keys(exc):
                raise
            cur.execute("ROLLBACK TO SAVEPOINT key_index")  # so the count below can run (PostgreSQL)
            cur.execute(
                f"SELECT SUM(n - 1) FROM (SELECT COUNT(*) AS n FROM {quote(online)} GROUP BY {columns} "
                "HAVING COUNT(*) > 1) AS d"
            )
            raise ValueError(
                f"cannot publish {table}: {cur.fetchone()[0]} duplicated {keys} row(s); "
                "publish one row per key"
            ) from None

    @abstractmethod
    def _duplicate_keys(self, exc: Exception) -> bool:
        """Whether ``exc`` says a unique index found duplicated keys."""

    @staticmethod
    def _upsert(
        cur, online: str, staging: str, columns: list[str], keys: list[str], newest: str | None
    ) -> None:
        updates = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in columns if c not in keys)
        newer = f" WHERE excluded.{quote(newest)} >= {quote(online)}.{quote(newest)}" if newest else ""
        names = ", ".join(map(quote, columns))
        # "WHERE true": SQLite's parser needs it between INSERT ... SELECT and ON CONFLICT.
        cur.execute(
            f"INSERT INTO {quote(online)} ({names}) SELECT {names} FROM {quote(staging)} WHERE true "
            f"ON CONFLICT ({', '.join(map(quote, keys))}) DO UPDATE SET {updates}{newer}"
        )

    @staticmethod
    def _count(cur, online: str) -> int:
        cur.execute(f"SELECT COUNT(*) FROM {quote(online)}")
        return int(cur.fetchone()[0])

    def _transaction(self, conn):
        return _Transaction(conn)

    def lookup(self, table, keys, values, features):
        def query(sql: str, params: list) -> list[tuple]:
            with self._lock:
                try:
                    return self._query(sql, params)
                except Exception as exc:
                    if self._missing_table(exc):
                        raise OnlineTableNotFoundError(not_published(table, self.describe())) from None
                    raise

        return select_by_key(query, online_table_name(table), keys, values, features, self.placeholder)

    def _query(self, sql: str, params: list) -> list[tuple]:
        cur = self._connection().cursor()
        try:
            cur.execute(sql, params)
            return cur.fetchall()
        finally:
            cur.close()

    @abstractmethod
    def _missing_table(self, exc: Exception) -> bool: ...

    def _published(self, table: str) -> tuple | None:
        with self._lock:
            try:
                rows = self._query(
                    f"SELECT delta_version, key_columns, feature_columns FROM {CATALOG} "
                    f"WHERE table_name = {self.placeholder}",
                    [table],
                )
            except Exception as exc:
                if self._missing_table(exc):
                    return None
                raise
        return rows[0] if rows else None

    def published_version(self, table):
        published = self._published(table)
        return int(published[0]) if published else None

    def published_columns(self, table):
        published = self._published(table)
        return [*json.loads(published[1]), *json.loads(published[2])] if published else None


class _Transaction:
    """BEGIN ... COMMIT (ROLLBACK on error) on an autocommit connection."""

    def __init__(self, conn):
        self.conn = conn

    def __enter__(self):
        self.cur = self.conn.cursor()
        self.cur.execute("BEGIN")
        return self.cur

    def __exit__(self, exc_type, *exc):
        self.cur.execute("ROLLBACK" if exc_type else "COMMIT")
        self.cur.close()
