"""The online store on a PostgreSQL server; its DSN, password included, comes from an environment
variable and is never logged or shown. ``PostgresConnection`` is what every PostgreSQL store shares
(loading with ``COPY``, PostgreSQL's errors); a Lakebase instance is one more (its credentials from
the workspace, ``lakebase_online_store.py``)."""

from __future__ import annotations

import os
from abc import abstractmethod
from typing import ClassVar

from .sql_online_store import SqlOnlineStore, quote


class PostgresConnection(SqlOnlineStore):
    """An online store on PostgreSQL, reached through the DSN ``_dsn()`` makes (never stored)."""

    placeholder: ClassVar[str] = "%s"

    @abstractmethod
    def _dsn(self) -> str:
        """The connection string, password included: used to connect, never kept or shown."""

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
            cur.copy(f"COPY {quote(staging)} ({', '.join(map(quote, columns))}) FROM STDIN") as copy,
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


class PostgresOnlineStore(PostgresConnection):
    """The online store on a PostgreSQL server. ``dsn_env`` names the environment variable holding
    the DSN (``postgresql://user:password@host:port/db``); the DSN itself is never stored here."""

    dsn_env: str

    def _dsn(self) -> str:
        dsn = os.environ.get(self.dsn_env)
        if not dsn:
            raise RuntimeError(
                f"the PostgreSQL online store needs its DSN in ${self.dsn_env} "
                "(e.g. postgresql://user:password@host:5432/db)"
            )
        return dsn

    def describe(self):
        from urllib.parse import urlsplit

        dsn = os.environ.get(self.dsn_env, "")
        try:
            parts = urlsplit(dsn)
            where = f"{parts.hostname}:{parts.port or 5432}{parts.path}" if parts.hostname else "?"
        except ValueError:
            where = "?"
        return f"postgresql://{where} (DSN from ${self.dsn_env})"
