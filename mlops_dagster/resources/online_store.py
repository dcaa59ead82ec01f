"""The online store: the latest feature values per key, for lookups at serving time.

``OnlineStore`` is the interface; ``SqliteOnlineStore`` (embedded, a file under the local root;
``sqlite_online_store.py``) and ``PostgresOnlineStore`` (a server; its DSN, password included, comes
from an environment variable and is never logged or shown; ``postgres_online_store.py``) implement
it, on the SQL they share (``sql_online_store.py``); ``LakebaseOnlineStore`` is PostgreSQL on a
Databricks Lakebase database instance, its credentials from the workspace
(``lakebase_online_store.py``). A publish is one transaction, so a reader sees either the old or the new version,
never a mix: a full publish replaces a table's rows, an incremental one upserts the rows that
changed. Rows arrive as a stream of Arrow batches and are loaded batch by batch into a staging
table, so a publish holds one batch in memory whatever the table's size; one short transaction
then swaps the staging table in (or upserts from it). Each publish records the Delta version.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster import ConfigurableResource

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd
    import pyarrow as pa

    from ..settings import Settings


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


def build_online_store(settings: Settings) -> OnlineStore:
    """The target's online store, from ``feature_store.online_store``."""
    cfg = settings.feature_store.online_store
    if cfg.kind == "lakebase":
        from .lakebase_online_store import LakebaseOnlineStore
        from .section_config import to_config

        return LakebaseOnlineStore(
            databricks=to_config(settings.databricks),
            instance=cfg.instance,
            database=cfg.database,
            port=cfg.port,
            sslmode=cfg.sslmode,
        )
    if cfg.kind == "postgres":
        from .postgres_online_store import PostgresOnlineStore

        return PostgresOnlineStore(dsn_env=cfg.dsn_env)
    if cfg.path is None and settings.root is None:
        from ..settings import ConfigError

        raise ConfigError(
            f"target {settings.target!r} has no local root for the SQLite online store: set "
            "feature_store.online_store.path, or kind: postgres with its DSN in dsn_env"
        )
    from .sqlite_online_store import SqliteOnlineStore

    return SqliteOnlineStore(path=cfg.path or str(Path(settings.root, "online", "features.db")))
