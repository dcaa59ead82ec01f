"""The online store: the latest feature values per key, for lookups at serving time.

``OnlineStore`` is the interface; ``SqliteOnlineStore`` (embedded, a file under the local root)
and ``PostgresOnlineStore`` (a server; its DSN, password included, comes from an environment
variable and is never logged or shown) implement it. A Databricks online table would be one more
implementation. A publish is one transaction, so a reader sees either the old or the new version,
never a mix: a full publish replaces a table's rows, an incremental one upserts the rows that
changed. Rows arrive as a stream of Arrow batches and are loaded batch by batch into a staging
table, so a publish holds one batch in memory whatever the table's size; one short transaction
then swaps the staging table in (or upserts from it). Each publish records the Delta version.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from dagster import ConfigurableResource
from pydantic import PrivateAttr

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import pandas as pd
    import pyarrow as pa

    from ..settings import Settings

CATALOG = "mlops_online_tables"  # which feature tables are published, from which Delta version


class OnlineTableNotFoundError(LookupError):
    """A feature table was never published to the online store."""


@dataclass(frozen=True)
class PublishInfo:
    table: str
    online_table: str
    rows: int
    delta_version: int
    store: str
    incremental: bool = False


def online_table_name(table: str) -> str:
    """``catalog.schema.table`` -> ``catalog__schema__table`` (one SQL table per feature table)."""
    name = table.replace(".", "__")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(
            f"feature table name {table!r} must be letters, digits and underscores (catalog.schema.table)"
        )
    return name


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _batches(rows) -> pa.RecordBatchReader:
    """What a publish reads: a stream of Arrow batches (pandas and Arrow tables are wrapped)."""
    import pyarrow as pa

    if isinstance(rows, pa.RecordBatchReader):
        return rows
    if not isinstance(rows, pa.Table):
        rows = pa.Table.from_pandas(rows, preserve_index=False)
    return rows.to_reader(max_chunksize=50_000)


class OnlineStore(ConfigurableResource, ABC):
    """Latest feature values per key: published from the offline Delta table, looked up by key."""

    @abstractmethod
    def publish(
        self,
        table: str,
        rows: pd.DataFrame | pa.Table | pa.RecordBatchReader,
        keys: list[str],
        delta_version: int,
        *,
        incremental: bool = False,
        newest: str | None = None,
        progress: Callable[[int], Any] | None = None,
    ) -> PublishInfo:
        """Publish ``rows`` (one per key) in one transaction: replace the table's online rows, or with
        ``incremental`` upsert them by key (a row whose ``newest`` column is older than the stored
        one's is skipped). ``progress(n)`` is told how many rows each loaded batch held."""

    @abstractmethod
    def published_columns(self, table: str) -> list[str] | None:
        """The columns last published for ``table`` (None: never published): an incremental
        publish needs the same ones."""

    @abstractmethod
    def lookup(
        self, table: str, keys: list[str], values: list[tuple], features: list[str]
    ) -> dict[tuple, dict[str, Any]]:
        """Feature values for each key tuple found; keys not found are absent from the result."""

    @abstractmethod
    def published_version(self, table: str) -> int | None:
        """The Delta version last published for ``table`` (None: never published)."""

    @abstractmethod
    def describe(self) -> str:
        """Which store, safe to log: no password."""

    def close(self) -> None:
        """Release connections (nothing to release by default)."""


class _SqlOnlineStore(OnlineStore, ABC):
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
                cur.execute(f"DROP TABLE IF EXISTS {_quote(staging)}")
                ddl = ", ".join(f"{_quote(c)} {self.sql_types[kinds[c]]}" for c in columns)
                cur.execute(f"CREATE TABLE {_quote(staging)} ({ddl})")
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
                        cur.execute(f"DROP TABLE {_quote(staging)}")
                        total = self._count(cur, online)
                    else:
                        cur.execute(f"DROP TABLE IF EXISTS {_quote(online)}")
                        cur.execute(f"ALTER TABLE {_quote(staging)} RENAME TO {_quote(online)}")
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
                    cur.execute(f"DROP TABLE IF EXISTS {_quote(staging)}")
                raise
        return PublishInfo(table, online, loaded, delta_version, self.describe(), incremental)

    def _index(self, cur, online: str, keys: list[str], table: str) -> None:
        columns = ", ".join(map(_quote, keys))
        cur.execute("SAVEPOINT key_index")
        try:
            cur.execute(f"CREATE UNIQUE INDEX {_quote(online + '__key')} ON {_quote(online)} ({columns})")
        except Exception as exc:
            if not self._duplicate_keys(exc):
                raise
            cur.execute("ROLLBACK TO SAVEPOINT key_index")  # so the count below can run (PostgreSQL)
            cur.execute(
                f"SELECT SUM(n - 1) FROM (SELECT COUNT(*) AS n FROM {_quote(online)} GROUP BY {columns} "
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
        updates = ", ".join(f"{_quote(c)} = excluded.{_quote(c)}" for c in columns if c not in keys)
        newer = f" WHERE excluded.{_quote(newest)} >= {_quote(online)}.{_quote(newest)}" if newest else ""
        names = ", ".join(map(_quote, columns))
        # "WHERE true": SQLite's parser needs it between INSERT ... SELECT and ON CONFLICT.
        cur.execute(
            f"INSERT INTO {_quote(online)} ({names}) SELECT {names} FROM {_quote(staging)} WHERE true "
            f"ON CONFLICT ({', '.join(map(_quote, keys))}) DO UPDATE SET {updates}{newer}"
        )

    @staticmethod
    def _count(cur, online: str) -> int:
        cur.execute(f"SELECT COUNT(*) FROM {_quote(online)}")
        return int(cur.fetchone()[0])

    def _transaction(self, conn):
        return _Transaction(conn)

    def lookup(self, table, keys, values, features):
        if not values:
            return {}
        online, p = online_table_name(table), self.placeholder
        selected = ", ".join(_quote(c) for c in [*keys, *features])
        if len(keys) == 1:
            where = f"{_quote(keys[0])} IN ({', '.join([p] * len(values))})"
            params = [v[0] for v in values]
        else:
            row = "(" + ", ".join([p] * len(keys)) + ")"
            where = f"({', '.join(map(_quote, keys))}) IN (VALUES {', '.join([row] * len(values))})"
            params = [part for v in values for part in v]
        sql = f"SELECT {selected} FROM {_quote(online)} WHERE {where}"
        with self._lock:
            try:
                rows = self._query(sql, params)
            except Exception as exc:
                if self._missing_table(exc):
                    raise OnlineTableNotFoundError(
                        f"feature table {table} is not in the online store ({self.describe()}): "
                        "materialize its online asset (<name>_features_online) first"
                    ) from None
                raise
        n = len(keys)
        return {tuple(r[:n]): dict(zip(features, r[n:])) for r in rows}

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


class SqliteOnlineStore(_SqlOnlineStore):
    """The embedded online store: one SQLite file (WAL, so lookups never wait for a publish)."""

    path: str

    sql_types: ClassVar[dict[str, str]] = {
        "string": "TEXT",
        "double": "REAL",
        "long": "INTEGER",
        "boolean": "INTEGER",
    }

    def _connect(self):
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _load(self, conn, staging, columns, batches):
        # Arrow batches go to a child process that loads them with ADBC's SQLite driver (C, no
        # Python value per cell: about 3x sqlite3's executemany). Not in this process: ADBC links
        # its own SQLite, and two SQLite libraries writing one file from one process break each
        # other's locks.
        import pyarrow as pa

        batches = iter(batches)
        first = next(batches, None)
        if first is None:
            return
        with tempfile.TemporaryFile() as errors:
            child = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("sqlite_bulk_load.py")), self.path, staging],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=errors,
            )
            try:
                with pa.ipc.new_stream(child.stdin, first.schema) as stream:
                    stream.write_batch(first)
                    for batch in batches:
                        stream.write_batch(batch)
            except BrokenPipeError:
                pass  # the child stopped reading: its exit code and message say why
            finally:
                with contextlib.suppress(BrokenPipeError):
                    child.stdin.close()
                code = child.wait()
            if code != 0:
                errors.seek(0)
                said = errors.read().decode(errors="replace").strip().splitlines()
                raise RuntimeError(
                    f"loading {staging} into the online store {self.describe()} failed "
                    f"(exit {code}): {said[-1] if said else 'no message'}"
                )

    def _missing_table(self, exc):
        return isinstance(exc, sqlite3.OperationalError) and "no such table" in str(exc)

    def _duplicate_keys(self, exc):
        return isinstance(exc, sqlite3.IntegrityError)

    def describe(self):
        return f"sqlite:{self.path}"


class PostgresOnlineStore(_SqlOnlineStore):
    """The online store on a PostgreSQL server. ``dsn_env`` names the environment variable holding
    the DSN (``postgresql://user:password@host:port/db``); the DSN itself is never stored here."""

    dsn_env: str

    placeholder: ClassVar[str] = "%s"

    def _dsn(self) -> str:
        dsn = os.environ.get(self.dsn_env)
        if not dsn:
            raise RuntimeError(
                f"the PostgreSQL online store needs its DSN in ${self.dsn_env} "
                "(e.g. postgresql://user:password@host:5432/db)"
            )
        return dsn

    def _connect(self):
        import psycopg

        try:
            # No server-side prepared statements: a publish may recreate a table with other columns.
            return psycopg.connect(self._dsn(), autocommit=True, connect_timeout=10, prepare_threshold=None)
        except psycopg.OperationalError as exc:
            # psycopg's message names host and port, not the password; still, say only what is safe.
            raise RuntimeError(
                f"cannot connect to the PostgreSQL online store ({self.describe()}): "
                f"{str(exc).splitlines()[0]}"
            ) from None

    def _load(self, conn, staging, columns, batches):
        with (
            self._transaction(conn) as cur,
            cur.copy(f"COPY {_quote(staging)} ({', '.join(map(_quote, columns))}) FROM STDIN") as copy,
        ):
            for batch in batches:
                # A column without nulls goes through NumPy's ``tolist`` (the same Python values,
                # twice as fast as Arrow's).
                values = [
                    c.to_numpy(zero_copy_only=False).tolist() if c.null_count == 0 else c.to_pylist()
                    for c in batch.columns
                ]
                for row in zip(*values):
                    copy.write_row(row)

    def _missing_table(self, exc):
        import psycopg

        return isinstance(exc, psycopg.errors.UndefinedTable)

    def _duplicate_keys(self, exc):
        import psycopg

        return isinstance(exc, psycopg.errors.UniqueViolation)

    def describe(self):
        from urllib.parse import urlsplit

        dsn = os.environ.get(self.dsn_env, "")
        try:
            parts = urlsplit(dsn)
            where = f"{parts.hostname}:{parts.port or 5432}{parts.path}" if parts.hostname else "?"
        except ValueError:
            where = "?"
        return f"postgresql://{where} (DSN from ${self.dsn_env})"


def build_online_store(settings: Settings) -> OnlineStore:
    """The target's online store, from ``feature_store.online_store``."""
    cfg = settings.feature_store.online_store
    if cfg.kind == "postgres":
        return PostgresOnlineStore(dsn_env=cfg.dsn_env)
    if cfg.path is None and settings.root is None:
        from ..settings import ConfigError

        raise ConfigError(
            f"target {settings.target!r} has no local root for the SQLite online store: set "
            "feature_store.online_store.path, or kind: postgres with its DSN in dsn_env"
        )
    return SqliteOnlineStore(path=cfg.path or str(Path(settings.root, "online", "features.db")))
