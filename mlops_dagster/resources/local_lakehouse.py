"""The local lakehouse: Delta tables on local disk through delta-rs.

``LocalLakehouse`` implements ``Lakehouse`` (``lakehouse.py``) under a local root
(``catalog.schema.table`` -> ``<root>/<catalog>/<schema>/<table>``). Spark reaches the local tables
without Delta jars: it reads a table's active Parquet files, and the Parquet files Spark (or a Spark
task) writes into a staging folder are committed to the Delta table by delta-rs as they are (moved
into the table's folder and added to its log, never rewritten); a merge streams them into delta-rs
in Arrow batches. A large table never has to fit in Python memory.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .lakehouse import (
    LOG_RETENTION,
    Lakehouse,
    TableInfo,
    TableNotFoundError,
    TableSize,
    adds_or_updates_only,
    is_path,
    parquet_batches,
    staging_folder,
)

if TYPE_CHECKING:  # heavy imports stay out of the code location's load path
    import pyarrow as pa
    from pyspark.sql import DataFrame as SparkDataFrame


def _delta_safe(data: Any) -> Any:
    """Arrow data delta-rs accepts: pandas converted, timestamps in microseconds, UTC."""
    import pyarrow as pa

    if hasattr(data, "to_records") and hasattr(data, "columns"):  # pandas
        data = pa.Table.from_pandas(data, preserve_index=False)
    if not isinstance(data, pa.Table):
        return data
    fields = []
    for f in data.schema:
        if pa.types.is_timestamp(f.type):
            f = f.with_type(pa.timestamp("us", tz="UTC"))
        elif pa.types.is_null(f.type):
            f = f.with_type(pa.string())
        fields.append(f)
    # Delta stores microseconds: nanoseconds are truncated, which a safe cast would refuse.
    return data.cast(pa.schema(fields), safe=False)


def _commit(commit_info: dict[str, str] | None, once: str | None = None):
    """The commit's properties: its metadata, and ``once`` as its transaction identifier."""
    from deltalake import CommitProperties, Transaction

    if not commit_info and not once:
        return None
    return CommitProperties(
        custom_metadata=commit_info, app_transactions=[Transaction(once, 1)] if once else None
    )


class LocalLakehouse(Lakehouse):
    """Delta tables on local disk through delta-rs: ``<root>/<catalog>/<schema>/<table>``."""

    root: str

    def setup_for_execution(self, context) -> None:
        from .migration import check_lakehouse_home

        check_lakehouse_home(self.root)  # a home of an older format is refused before anything writes

    def location(self, name: str) -> str:
        if is_path(name):  # a table outside this project's catalog, by its path
            return name
        parts = name.split(".")
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"table name {name!r} must have three parts: catalog.schema.table")
        return str(Path(self.root, *parts))

    def exists(self, name: str) -> bool:
        from deltalake import DeltaTable

        return DeltaTable.is_deltatable(self.location(name))

    def _table(self, name: str, version: int | None = None):
        from deltalake import DeltaTable

        if not self.exists(name):
            raise TableNotFoundError(
                f"Delta table {name} does not exist (looked in {self.location(name)}); "
                "materialize the asset that writes it first"
            )
        return DeltaTable(self.location(name), version=version)

    def _arrow_schema(self, dt) -> pa.Schema:
        import pyarrow as pa

        return pa.schema(dt.schema().to_arrow())

    def _info(self, name: str, operation: str) -> TableInfo:
        dt = self._table(name)
        schema = self._arrow_schema(dt)
        return TableInfo(
            name=name,
            location=self.location(name),
            version=dt.version(),
            num_rows=dt.count(),
            columns=[(f.name, str(f.type)) for f in schema],
            operation=operation,
        )

    def _written(self, name: str, once: str | None) -> bool:
        """Whether ``once`` names a commit the table already holds (Delta's transaction identifiers)."""
        return bool(once) and self.exists(name) and self._table(name).transaction_version(once) is not None

    def write(
        self, name, data, mode="overwrite", *, description=None, properties=None, commit_info=None, once=None
    ):
        from deltalake import write_deltalake

        if self._written(name, once):
            return self._info(name, "NONE (written before)")
        location = self.location(name)
        Path(location).parent.mkdir(parents=True, exist_ok=True)
        write_deltalake(
            location,
            _delta_safe(data),
            mode=mode,
            name=name,
            description=description,
            schema_mode="overwrite" if mode == "overwrite" else "merge",
            commit_properties=_commit(commit_info, once),
        )
        self._annotate(name, description, properties)
        return self._info(name, mode.upper())

    def merge(self, name, data, keys, *, description=None, properties=None, commit_info=None):
        if not keys:
            raise ValueError(f"merge into {name} needs at least one key column")
        data = _delta_safe(data)
        if not self.exists(name):
            return self.write(
                name,
                data,
                "overwrite",
                description=description,
                properties=properties,
                commit_info=commit_info,
            )
        predicate = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        (
            self._table(name)
            .merge(
                data, predicate, source_alias="s", target_alias="t", commit_properties=_commit(commit_info)
            )
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )
        self._annotate(name, description, properties)
        return self._info(name, "MERGE")

    def read_arrow(self, name, version=None, columns=None):
        return self._table(name, version).to_pyarrow_table(columns=columns)

    def version(self, name):
        return self._table(name).version()

    def row_count(self, name, version=None):
        return self._table(name, version).count()

    def history(self, name, limit=None):
        return self._table(name).history(limit)

    def restore(self, name, version):
        self._table(name).restore(version)
        return self._info(name, "RESTORE")

    def set_properties(self, name, properties):
        self._table(name).alter.set_table_properties(properties, raise_if_not_exists=False)

    def properties(self, name):
        return dict(self._table(name).metadata().configuration)

    def description(self, name):
        return self._table(name).metadata().description

    def _annotate(self, name: str, description: str | None, properties: dict[str, str] | None) -> None:
        """Comment and properties, committed only when they change (each change is a version)."""
        dt = self._table(name)
        if description is not None and dt.metadata().description != description:
            dt.alter.set_table_description(description)
        current = dict(dt.metadata().configuration)
        if properties and any(current.get(k) != v for k, v in properties.items()):
            dt.alter.set_table_properties(properties, raise_if_not_exists=False)

    def set_column_comments(self, name, comments):
        dt = self._table(name)
        current = self.column_comments(name)
        columns = {f.name for f in dt.schema().fields}
        unknown = sorted(set(comments) - columns)
        if unknown:
            raise ValueError(f"cannot comment on {unknown}: {name} has no such column(s)")
        for column, comment in comments.items():
            if current.get(column) != comment:
                dt.alter.set_column_metadata(column, {"comment": comment})

    def column_comments(self, name):
        return {
            f.name: f.metadata["comment"]
            for f in self._table(name).schema().fields
            if "comment" in (f.metadata or {})
        }

    def size(self, name):
        actions = self._table(name).get_add_actions(flatten=True)
        sizes = actions.column("size_bytes").to_pylist() if actions.num_rows else []
        disk = sum(p.stat().st_size for p in Path(self.location(name)).rglob("*") if p.is_file())
        return TableSize(files=len(sizes), bytes=sum(sizes), disk_bytes=disk)

    def delete_older_than(self, name, column, cutoff, dry_run=False):
        import pyarrow as pa
        import pyarrow.compute as pc

        dt = self._table(name)
        edge = pa.scalar(cutoff, pa.timestamp("us", tz="UTC"))
        count = dt.to_pyarrow_dataset().count_rows(filter=pc.field(column) < edge)
        if count and not dry_run:
            dt.delete(f"`{column}` < '{cutoff.isoformat()}'")
        return count

    def compact(self, name, target_mb, zorder_by=None):
        optimize = self._table(name).optimize
        target = target_mb * 1024 * 1024
        if zorder_by:
            optimize.z_order([zorder_by], target_size=target)
        else:
            optimize.compact(target_size=target)

    def vacuum(self, name, retain_hours, dry_run=False):
        dt = self._table(name)
        files = dt.vacuum(retention_hours=retain_hours, dry_run=dry_run, enforce_retention_duration=False)
        if not dry_run:
            # The log keeps what the data keeps: entries older than that (and a checkpoint) go too.
            self._annotate(name, None, {LOG_RETENTION: f"interval {int(retain_hours)} hours"})
            self._table(name).cleanup_metadata()
        return len(files)

    def mlflow_dataset_source(self, name, version):
        from mlflow.data.delta_dataset_source import DeltaDatasetSource

        # By path: given a three-level name, MLflow would ask a Databricks workspace for the table id.
        return DeltaDatasetSource(path=self.location(name), delta_table_version=version)

    def read_spark(self, spark, name, version=None):
        from pyspark.sql.pandas.types import from_arrow_schema

        dt = self._table(name, version)
        # The table's schema, not one file's: files written before a column was added lack it.
        schema = from_arrow_schema(self._arrow_schema(dt))
        files = dt.file_uris()
        if not files:
            return spark.createDataFrame([], schema)
        return spark.read.schema(schema).parquet(*files)

    def read_spark_changes(self, spark, name, since_version):
        from deltalake import DeltaTable
        from pyspark.sql.pandas.types import from_arrow_schema

        dt = self._table(name)
        commits = [h for h in dt.history() if h["version"] > since_version]
        if not all(adds_or_updates_only(c) for c in commits):
            return None
        try:
            before = set(DeltaTable(self.location(name), version=since_version).file_uris())
        except Exception:  # that version's log was cleaned up: no way to tell what changed
            return None
        # A merge rewrites the files it touches: the files added since hold every changed row.
        added = [f for f in dt.file_uris() if f not in before]
        schema = from_arrow_schema(self._arrow_schema(dt))  # the table's, as read_spark uses
        return spark.read.schema(schema).parquet(*added) if added else spark.createDataFrame([], schema)

    def staging_dir(self):
        return staging_folder(str(Path(self.root, "_staging")))

    def write_files(
        self,
        name,
        files,
        mode="overwrite",
        *,
        description=None,
        properties=None,
        commit_info=None,
        column_comments=None,
        once=None,
    ):
        import pyarrow.parquet as pq
        from deltalake import DeltaTable
        from deltalake.schema import Schema
        from deltalake.transaction import create_table_with_add_actions

        if not files:
            raise ValueError(f"nothing to write to {name}: no Parquet files were given")
        if self._written(name, once):
            return self._info(name, "NONE (written before)")
        schema = _nullable(pq.read_schema(files[0]), column_comments or {})
        location = self.location(name)
        if (
            mode == "append"
            and self.exists(name)
            and not _fits(schema, self._arrow_schema(self._table(name)))
        ):
            # New columns: delta-rs's writer evolves the schema (an add-files commit would not).
            return self.write(
                name,
                parquet_batches(files),
                "append",
                description=description,
                properties=properties,
                commit_info=commit_info,
                once=once,
            )
        Path(location).mkdir(parents=True, exist_ok=True)
        actions = [_adopt(location, f) for f in files]
        if not self.exists(name):
            create_table_with_add_actions(
                location,
                Schema.from_arrow(schema),
                actions,
                mode="error",
                name=name,
                description=description,
                commit_properties=_commit(commit_info, once),
            )
        else:
            DeltaTable(location).create_write_transaction(
                actions, mode, Schema.from_arrow(schema), commit_properties=_commit(commit_info, once)
            )
        self._annotate(name, description, properties)
        return self._info(name, mode.upper())

    def merge_files(
        self, name, files, keys, *, description=None, properties=None, commit_info=None, column_comments=None
    ):
        if not self.exists(name):
            return self.write_files(
                name,
                files,
                "overwrite",
                description=description,
                properties=properties,
                commit_info=commit_info,
                column_comments=column_comments,
            )
        info = self.merge(
            name,
            parquet_batches(files),
            keys,
            description=description,
            properties=properties,
            commit_info=commit_info,
        )
        if column_comments:
            self.set_column_comments(name, column_comments)
            info = self._info(name, info.operation)
        return info

    def write_spark(
        self, name, df, mode="overwrite", *, description=None, properties=None, commit_info=None, once=None
    ):
        if self._written(name, once):  # before Spark computes anything
            return self._info(name, "NONE (written before)")
        with self.staging_dir() as staging:
            return self.write_files(
                name,
                _spark_parquet(df, staging),
                mode,
                description=description,
                properties=properties,
                commit_info=commit_info,
                once=once,
            )

    def merge_spark(
        self, name, df, keys, *, description=None, properties=None, commit_info=None, column_comments=None
    ):
        with self.staging_dir() as staging:
            return self.merge_files(
                name,
                _spark_parquet(df, staging),
                keys,
                description=description,
                properties=properties,
                commit_info=commit_info,
                column_comments=column_comments,
            )


def _spark_parquet(df: SparkDataFrame, folder: str) -> list[str]:
    """``df`` written as Parquet files into ``folder`` by Spark; their paths (Spark's markers left out)."""
    df.write.mode("overwrite").parquet(folder)
    return sorted(str(p) for p in Path(folder).glob("*.parquet"))


def _nullable(schema: pa.Schema, comments: dict[str, str]) -> pa.Schema:
    """The Delta schema of staged files: every column nullable (Spark marks some not null, and a later
    write must not be refused for that), timestamps in UTC microseconds, comments as column metadata."""
    import pyarrow as pa

    fields = []
    for f in schema:
        if pa.types.is_timestamp(f.type):
            f = f.with_type(pa.timestamp("us", tz="UTC"))
        f = f.with_nullable(True).with_metadata({"comment": comments[f.name]} if f.name in comments else None)
        fields.append(f)
    return pa.schema(fields)


def _fits(files: pa.Schema, table: pa.Schema) -> bool:
    """Whether files with this schema can be added to the table as they are (no new columns)."""
    return set(files.names) <= set(table.names)


def _adopt(location: str, file: str):
    """Move a staged Parquet file into the table folder and describe it as a Delta add action."""
    import json
    import time

    import pyarrow.parquet as pq
    from deltalake.transaction import AddAction

    target = Path(location, f"part-{uuid.uuid4().hex[:12]}-{Path(file).name}")
    rows = pq.read_metadata(file).num_rows
    shutil.move(file, target)
    # Only the row count: min/max statistics written wrong would make readers skip files wrongly.
    return AddAction(
        target.name,
        target.stat().st_size,
        {},
        int(time.time() * 1000),
        True,
        json.dumps({"numRecords": rows}),
    )
