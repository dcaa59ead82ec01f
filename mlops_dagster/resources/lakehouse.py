"""The lakehouse: Delta tables addressed by Unity-Catalog-style ``catalog.schema.table`` names.

``Lakehouse`` is the interface assets use, with ``TableInfo`` (what a write left behind) and the
helpers every implementation shares: naming, staging folders, streaming staged Parquet files and
telling from a table's history what changed. ``LocalLakehouse`` (``local_lakehouse.py``) implements
it with delta-rs under a local root, ``UnityCatalogLakehouse`` (``unity_catalog.py``) on Databricks.
"""

from __future__ import annotations

import shutil
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dagster import ConfigurableResource

if TYPE_CHECKING:  # heavy imports stay out of the code location's load path
    import pandas as pd
    import pyarrow as pa
    from pyspark.sql import DataFrame as SparkDataFrame
    from pyspark.sql import SparkSession


LOG_RETENTION = "delta.logRetentionDuration"  # how long a table's log keeps its entries


class TableNotFoundError(LookupError):
    """A table that should exist does not; the message names it and says what creates it."""


@dataclass(frozen=True)
class TableInfo:
    """What a write left behind: enough for the Dagster UI and for lineage."""

    name: str
    location: str
    version: int
    num_rows: int
    columns: list[tuple[str, str]] = field(default_factory=list)
    operation: str = ""


@dataclass(frozen=True)
class TableSize:
    """How much of the disk a table takes: its current version's data files, and (where the storage
    can be listed) everything in its folder: older versions' files not yet vacuumed, and the log."""

    files: int
    bytes: int
    disk_bytes: int | None = None


class Lakehouse(ConfigurableResource, ABC):
    """Delta tables by ``catalog.schema.table`` name: one interface, one implementation per target."""

    @abstractmethod
    def exists(self, name: str) -> bool: ...

    @abstractmethod
    def location(self, name: str) -> str: ...

    @abstractmethod
    def write(
        self,
        name: str,
        data: Any,
        mode: Literal["overwrite", "append"] = "overwrite",
        *,
        description: str | None = None,
        properties: dict[str, str] | None = None,
        commit_info: dict[str, str] | None = None,
        once: str | None = None,
    ) -> TableInfo:
        """Write an Arrow table / batch reader / pandas frame; returns the new version.

        ``description`` and ``properties`` are the table comment and TBLPROPERTIES; ``commit_info``
        is stamped on the Delta commit (who wrote it, from what). ``once`` makes an append
        idempotent: it is the commit's Delta transaction identifier (``txnAppId``), and a table that
        already holds a commit with it is left as it is, so a run replaying a write after a crash
        does not write its rows twice."""

    @abstractmethod
    def merge(
        self,
        name: str,
        data: Any,
        keys: list[str],
        *,
        description: str | None = None,
        properties: dict[str, str] | None = None,
        commit_info: dict[str, str] | None = None,
    ) -> TableInfo:
        """Upsert on ``keys``: matching rows are updated, new rows inserted (table created if needed)."""

    @abstractmethod
    def read_arrow(
        self, name: str, version: int | None = None, columns: list[str] | None = None
    ) -> pa.Table: ...

    @abstractmethod
    def version(self, name: str) -> int: ...

    @abstractmethod
    def row_count(self, name: str, version: int | None = None) -> int:
        """Rows in a version of the table (default: the current one), from the Delta log where it can:
        no data is read."""

    @abstractmethod
    def history(self, name: str, limit: int | None = None) -> list[dict[str, Any]]: ...

    @abstractmethod
    def restore(self, name: str, version: int | datetime) -> TableInfo: ...

    @abstractmethod
    def set_properties(self, name: str, properties: dict[str, str]) -> None: ...

    @abstractmethod
    def properties(self, name: str) -> dict[str, str]: ...

    @abstractmethod
    def description(self, name: str) -> str | None: ...

    @abstractmethod
    def read_spark(self, spark: SparkSession, name: str, version: int | None = None) -> SparkDataFrame: ...

    @abstractmethod
    def read_spark_changes(self, spark: SparkSession, name: str, since_version: int) -> SparkDataFrame | None:
        """Every row inserted or updated after ``since_version`` (possibly some unchanged ones too), or
        None when that cannot be told from the table's history: rows were deleted or replaced since
        (a restore, an overwrite, a delete), or that history is gone. None means: read it all."""

    @abstractmethod
    def write_spark(
        self,
        name: str,
        df: SparkDataFrame,
        mode: Literal["overwrite", "append"] = "overwrite",
        *,
        description: str | None = None,
        properties: dict[str, str] | None = None,
        commit_info: dict[str, str] | None = None,
        once: str | None = None,
    ) -> TableInfo:
        """Write Spark output (``once``: as for ``write``)."""

    @abstractmethod
    def merge_spark(
        self,
        name: str,
        df: SparkDataFrame,
        keys: list[str],
        *,
        description: str | None = None,
        properties: dict[str, str] | None = None,
        commit_info: dict[str, str] | None = None,
        column_comments: dict[str, str] | None = None,
    ) -> TableInfo:
        """Upsert Spark output on ``keys`` (the table is created if needed, with ``column_comments``)."""

    @abstractmethod
    def set_column_comments(self, name: str, comments: dict[str, str]) -> None:
        """Column comments (Delta column metadata ``comment``); only changed ones are committed."""

    @abstractmethod
    def column_comments(self, name: str) -> dict[str, str]: ...

    @abstractmethod
    def staging_dir(self) -> AbstractContextManager[str]:
        """A new empty folder that Spark tasks can write Parquet files into (on a cluster: a volume
        every node reaches), removed with what is left in it when the block ends."""

    @abstractmethod
    def write_files(
        self,
        name: str,
        files: list[str],
        mode: Literal["overwrite", "append"] = "overwrite",
        *,
        description: str | None = None,
        properties: dict[str, str] | None = None,
        commit_info: dict[str, str] | None = None,
        once: str | None = None,
    ) -> TableInfo:
        """Commit Parquet files written into a ``staging_dir`` (same columns in each) as one write
        (``once``: as for ``write``)."""

    @abstractmethod
    def merge_files(
        self,
        name: str,
        files: list[str],
        keys: list[str],
        *,
        description: str | None = None,
        properties: dict[str, str] | None = None,
        commit_info: dict[str, str] | None = None,
        column_comments: dict[str, str] | None = None,
    ) -> TableInfo:
        """Upsert the rows of staged Parquet files on ``keys`` (the table is created if needed)."""

    @abstractmethod
    def size(self, name: str) -> TableSize: ...

    @abstractmethod
    def delete_older_than(self, name: str, column: str, cutoff: datetime, dry_run: bool = False) -> int:
        """Delete the rows whose ``column`` is before ``cutoff`` (one commit); the number of rows
        deleted, or with ``dry_run`` the number that would be (nothing is written)."""

    @abstractmethod
    def compact(self, name: str, target_mb: int, zorder_by: str | None = None) -> None:
        """Rewrite the table's small files into files of about ``target_mb`` (Z-ordered by
        ``zorder_by`` when given); every row is kept, the old files stay until vacuumed."""

    @abstractmethod
    def vacuum(self, name: str, retain_hours: int, dry_run: bool = False) -> int:
        """Delete the files no version of the last ``retain_hours`` reads; how many were deleted (or
        with ``dry_run``, would be)."""

    @abstractmethod
    def mlflow_dataset_source(self, name: str, version: int):
        """How MLflow should record this table version as a run input (a ``DeltaDatasetSource``)."""

    def read(self, name: str, version: int | None = None, columns: list[str] | None = None) -> pd.DataFrame:
        """A table (or one of its versions) as pandas: for steps that work on samples or small tables."""
        return self.read_arrow(name, version, columns).to_pandas()


@contextmanager
def staging_folder(root: str) -> Iterator[str]:
    """A new empty folder under ``root``, removed with what is left in it when the block ends (each
    lakehouse's ``staging_dir``, under its own root)."""
    staging = Path(root, uuid.uuid4().hex)
    staging.mkdir(parents=True)
    try:
        yield str(staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# Delta operations after which the files added since a version hold every row changed since it.
_METADATA_ONLY = {
    "SET TBLPROPERTIES",
    "UNSET TBLPROPERTIES",
    "UPDATE TABLE METADATA",
    "UPDATE FIELD METADATA",
    "ADD COLUMN",
    "CHANGE COLUMN",
    "OPTIMIZE",
    "VACUUM START",
    "VACUUM END",
}


def is_path(name: str) -> bool:
    """Whether a table is named by its storage path (``/data/t``, ``s3://b/t``) rather than
    ``catalog.schema.table``."""
    return "/" in name


def adds_or_updates_only(commit: dict[str, Any]) -> bool:
    """Whether a commit only added or rewrote rows (no row of the table can have disappeared)."""
    operation, parameters = commit.get("operation", ""), commit.get("operationParameters") or {}
    if operation in _METADATA_ONLY or operation == "UPDATE":
        return True
    if operation == "WRITE":
        return parameters.get("mode") == "Append"
    if operation == "MERGE":
        clauses = (
            f"{parameters.get('matchedPredicates', '')}{parameters.get('notMatchedBySourcePredicates', '')}"
        )
        return "delete" not in clauses
    return False


def parquet_batches(files: str | list[str], batch_size: int = 64_000) -> pa.RecordBatchReader:
    """Parquet files (or a folder of them) as a stream of Arrow batches, in bounded memory whatever
    their size: one file read at a time, two batches ahead (Arrow's defaults read four files and
    sixteen batches ahead, over a GB of buffers for the files of a 10M-row table)."""
    import pyarrow.dataset as ds

    return (
        ds.dataset(files, format="parquet")
        .scanner(batch_size=batch_size, batch_readahead=2, fragment_readahead=1)
        .to_reader()
    )
