"""The lakehouse on Databricks: Unity Catalog Delta tables through Spark and delta-spark.

Runs where a step runs on Databricks targets, on the job cluster, whose SparkSession has Unity
Catalog and Delta. ``saveAsTable`` writes, ``DeltaTable.merge`` upserts, ``RESTORE TABLE`` and
``DESCRIBE HISTORY`` give versions and history, ``COMMENT`` / ``TBLPROPERTIES`` annotate.

Not exercised by this repository's tests: Spark here cannot fetch the delta-spark jars (no Maven),
so the workspace-emulator tests keep tables in delta-rs under ``root`` (see docs/databricks.md, "Running on
Databricks").
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .lakehouse import (
    LOG_RETENTION,
    Lakehouse,
    TableInfo,
    TableNotFoundError,
    TableSize,
    adds_or_updates_only,
    is_path,
    staging_folder,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkDataFrame
    from pyspark.sql import SparkSession


def _quoted(name: str) -> str:
    if is_path(name):  # a Delta table by its path (another team's, outside this catalog)
        return f"delta.`{name}`"
    parts = name.split(".")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"table name {name!r} must have three parts: catalog.schema.table")
    return ".".join(f"`{p}`" for p in parts)


def _sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class UnityCatalogLakehouse(Lakehouse):
    """Unity Catalog tables by three-level name, on the cluster's SparkSession; outside Databricks
    compute (a sensor in the daemon, ``mlops lineage``), through the target's Spark Connect server
    (Databricks Connect)."""

    # A folder on a Unity Catalog volume (``/Volumes/<catalog>/<schema>/io/_staging``): the driver
    # and every executor reach it, so Spark tasks can stage files there.
    staging_root: str
    spark_config: dict[str, str] = {}
    """The target's ``spark`` settings: ``spark.remote`` (or ``SPARK_REMOTE``) for reads from outside
    Databricks compute."""

    def _spark(self) -> SparkSession:
        from pyspark.sql import SparkSession

        from .databricks import on_databricks_cluster
        from .spark import connect_session, spark_remote

        if on_databricks_cluster():
            return SparkSession.builder.getOrCreate()
        remote = spark_remote(self.spark_config)
        if remote is None:
            raise RuntimeError(
                "Unity Catalog tables are read on Databricks compute, and this process (a sensor in the "
                "daemon, or the mlops command) has none: set SPARK_REMOTE to a Databricks Connect URL "
                "(sc://<workspace host>:443/;use_ssl=true;token=<token>;x-databricks-cluster-id=<cluster id>) "
                "where Dagster runs"
            )
        return connect_session(remote)

    def exists(self, name):
        if is_path(name):
            from delta.tables import DeltaTable

            return DeltaTable.isDeltaTable(self._spark(), name)
        return self._spark().catalog.tableExists(name)

    def location(self, name):
        return name  # Unity Catalog manages storage; the name is the address

    def _require(self, name: str) -> None:
        if not self.exists(name):
            raise TableNotFoundError(
                f"table {name} does not exist in Unity Catalog; materialize the asset "
                "that writes it first (and check the catalog and schema grants)"
            )

    def _info(self, name: str, operation: str) -> TableInfo:
        df = self._spark().table(name)
        return TableInfo(
            name=name,
            location=name,
            version=self.version(name),
            num_rows=df.count(),
            columns=[(f.name, f.dataType.simpleString()) for f in df.schema.fields],
            operation=operation,
        )

    def _writer(self, df: SparkDataFrame, mode: str, commit_info: dict[str, str] | None, once: str | None):
        writer = df.write.format("delta").mode(mode)
        if once:  # Delta's idempotent writes: a table that holds this transaction already is left as it is
            writer = writer.option("txnAppId", once).option("txnVersion", 1)
        if mode == "overwrite":
            writer = writer.option("overwriteSchema", "true")
        else:
            writer = writer.option("mergeSchema", "true")
        if commit_info:
            writer = writer.option("userMetadata", json.dumps(commit_info, sort_keys=True))
        return writer

    def _to_spark(self, data: Any) -> SparkDataFrame:
        if hasattr(data, "to_pandas") and not hasattr(data, "columns"):  # Arrow table
            data = data.to_pandas()
        elif hasattr(data, "read_all"):  # Arrow batch reader
            data = data.read_all().to_pandas()
        return self._spark().createDataFrame(data)

    def read_spark_changes(self, spark, name, since_version):
        # Delta's change data feed, where the table keeps one (delta.enableChangeDataFeed); without it
        # the changes cannot be told apart, and the caller reads the whole table.
        from pyspark.sql import functions as F

        if self.properties(name).get("delta.enableChangeDataFeed") != "true":
            return None
        if not all(adds_or_updates_only(h) for h in self.history(name) if int(h["version"]) > since_version):
            return None
        changes = (
            spark.read.format("delta")
            .option("readChangeFeed", "true")
            .option("startingVersion", since_version + 1)
            .table(_quoted(name))
        )
        return changes.where(F.col("_change_type").isin("insert", "update_postimage")).drop(
            "_change_type", "_commit_version", "_commit_timestamp"
        )

    def write(
        self, name, data, mode="overwrite", *, description=None, properties=None, commit_info=None, once=None
    ):
        return self.write_spark(
            name,
            self._to_spark(data),
            mode,
            description=description,
            properties=properties,
            commit_info=commit_info,
            once=once,
        )

    def write_spark(
        self, name, df, mode="overwrite", *, description=None, properties=None, commit_info=None, once=None
    ):
        self._writer(df, mode, commit_info, once).saveAsTable(_quoted(name))
        self._annotate(name, description, properties)
        return self._info(name, mode.upper())

    def merge(self, name, data, keys, *, description=None, properties=None, commit_info=None):
        return self.merge_spark(
            name,
            self._to_spark(data),
            keys,
            description=description,
            properties=properties,
            commit_info=commit_info,
        )

    def merge_spark(
        self, name, df, keys, *, description=None, properties=None, commit_info=None, column_comments=None
    ):
        from delta.tables import DeltaTable

        if not keys:
            raise ValueError(f"merge into {name} needs at least one key column")
        if not self.exists(name):
            info = self.write_spark(
                name, df, "overwrite", description=description, properties=properties, commit_info=commit_info
            )
        else:
            spark = self._spark()
            if commit_info:
                spark.conf.set(
                    "spark.databricks.delta.commitInfo.userMetadata", json.dumps(commit_info, sort_keys=True)
                )
            try:
                (
                    DeltaTable.forName(spark, _quoted(name))
                    .alias("t")
                    .merge(df.alias("s"), " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys))
                    .whenMatchedUpdateAll()
                    .whenNotMatchedInsertAll()
                    .execute()
                )
            finally:
                spark.conf.unset("spark.databricks.delta.commitInfo.userMetadata")
            self._annotate(name, description, properties)
            info = self._info(name, "MERGE")
        if column_comments:
            self.set_column_comments(name, column_comments)
        return info

    def staging_dir(self):
        return staging_folder(self.staging_root)

    def write_files(
        self, name, files, mode="overwrite", *, description=None, properties=None, commit_info=None, once=None
    ):
        # Managed tables own their storage: staged files are read and written by Spark.
        return self.write_spark(
            name,
            self._spark().read.parquet(*files),
            mode,
            description=description,
            properties=properties,
            commit_info=commit_info,
            once=once,
        )

    def merge_files(
        self, name, files, keys, *, description=None, properties=None, commit_info=None, column_comments=None
    ):
        return self.merge_spark(
            name,
            self._spark().read.parquet(*files),
            keys,
            description=description,
            properties=properties,
            commit_info=commit_info,
            column_comments=column_comments,
        )

    def set_column_comments(self, name, comments):
        current = self.column_comments(name)
        columns = set(self._spark().table(_quoted(name)).columns)
        unknown = sorted(set(comments) - columns)
        if unknown:
            raise ValueError(f"cannot comment on {unknown}: {name} has no such column(s)")
        for column, comment in comments.items():
            if current.get(column) != comment:
                self._spark().sql(
                    f"ALTER TABLE {_quoted(name)} ALTER COLUMN `{column}` COMMENT {_sql_string(comment)}"
                )

    def column_comments(self, name):
        self._require(name)
        return {
            f.name: f.metadata["comment"]
            for f in self._spark().table(_quoted(name)).schema.fields
            if "comment" in (f.metadata or {})
        }

    def read_spark(self, spark, name, version=None):
        self._require(name)
        reader = spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.table(_quoted(name))

    def read_arrow(self, name, version=None, columns=None):
        import pyarrow as pa

        df = self.read_spark(self._spark(), name, version)
        if columns:
            df = df.select(*columns)
        return pa.Table.from_pandas(df.toPandas(), preserve_index=False)

    def row_count(self, name, version=None):
        return self.read_spark(self._spark(), name, version).count()

    def version(self, name):
        return int(self.history(name, 1)[0]["version"])

    def history(self, name, limit=None):
        self._require(name)
        query = f"DESCRIBE HISTORY {_quoted(name)}" + (f" LIMIT {int(limit)}" if limit else "")
        commits = []
        for row in self._spark().sql(query).collect():
            commit = row.asDict(recursive=True)
            # Our commit info travels as JSON userMetadata; flattened, it reads as delta-rs gives it.
            commit.update(json.loads(commit.get("userMetadata") or "{}"))
            commits.append(commit)
        return commits

    def restore(self, name, version):
        self._require(name)
        target = (
            f"VERSION AS OF {int(version)}"
            if isinstance(version, int)
            else (f"TIMESTAMP AS OF {_sql_string(version.isoformat())}")
        )
        self._spark().sql(f"RESTORE TABLE {_quoted(name)} TO {target}")
        return self._info(name, "RESTORE")

    def set_properties(self, name, properties):
        if properties:
            pairs = ", ".join(f"{_sql_string(k)} = {_sql_string(str(v))}" for k, v in properties.items())
            self._spark().sql(f"ALTER TABLE {_quoted(name)} SET TBLPROPERTIES ({pairs})")

    def properties(self, name):
        self._require(name)
        rows = self._spark().sql(f"SHOW TBLPROPERTIES {_quoted(name)}").collect()
        return {row["key"]: row["value"] for row in rows}

    def description(self, name):
        self._require(name)
        rows = self._spark().sql(f"DESCRIBE TABLE EXTENDED {_quoted(name)}").collect()
        return next((row["data_type"] for row in rows if row["col_name"] == "Comment"), None)

    def _annotate(self, name: str, description: str | None, properties: dict[str, str] | None) -> None:
        if description is not None and self.description(name) != description:
            self._spark().sql(f"COMMENT ON TABLE {_quoted(name)} IS {_sql_string(description)}")
        current = self.properties(name)
        if properties and any(current.get(k) != v for k, v in properties.items()):
            self.set_properties(name, properties)

    def size(self, name):
        self._require(name)
        [detail] = self._spark().sql(f"DESCRIBE DETAIL {_quoted(name)}").collect()
        return TableSize(files=int(detail["numFiles"]), bytes=int(detail["sizeInBytes"]))

    def delete_older_than(self, name, column, cutoff, dry_run=False):
        condition = f"`{column}` < TIMESTAMP {_sql_string(cutoff.isoformat())}"
        count = self.read_spark(self._spark(), name).where(condition).count()
        if count and not dry_run:
            self._spark().sql(f"DELETE FROM {_quoted(name)} WHERE {condition}")
        return count

    def compact(self, name, target_mb, zorder_by=None):
        self._require(name)
        spark = self._spark()
        spark.conf.set("spark.databricks.delta.optimize.maxFileSize", str(target_mb * 1024 * 1024))
        spark.sql(f"OPTIMIZE {_quoted(name)}" + (f" ZORDER BY (`{zorder_by}`)" if zorder_by else ""))

    def vacuum(self, name, retain_hours, dry_run=False):
        self._require(name)
        spark = self._spark()
        # Delta refuses a retention under 7 days unless told that no reader needs older files.
        spark.conf.set(
            "spark.databricks.delta.retentionDurationCheck.enabled", str(retain_hours >= 168).lower()
        )
        if not dry_run:  # Databricks cleans the log up to this age at its checkpoints
            self._annotate(name, None, {LOG_RETENTION: f"interval {int(retain_hours)} hours"})
        rows = spark.sql(
            f"VACUUM {_quoted(name)} RETAIN {int(retain_hours)} HOURS" + (" DRY RUN" if dry_run else "")
        ).collect()
        return (
            len(rows)
            if dry_run
            else self.history(name, 1)[0].get("operationMetrics", {}).get("numDeletedFiles", 0)
        )

    def mlflow_dataset_source(self, name, version):
        from mlflow.data.delta_dataset_source import DeltaDatasetSource

        return DeltaDatasetSource(delta_table_name=name, delta_table_version=version)
