"""Stage `ingestion` from a table instead of landing files: another team's Delta table, read from
the version read last, or a PostgreSQL table or query, read past a watermark. Either way the rows
are checked by the dataset contract on Spark like a landing file's, and every read is recorded in
the project's `source_table_log` (what was read, why whole, how many rows)."""

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from dagster import AssetExecutionContext, MaterializeResult, multi_asset

from ..resources.lakehouse import Lakehouse
from ..resources.spark import SparkResource
from ..resources.step_launcher import StepLauncherParam
from ..runtime.progress import Progress
from ..settings import INGESTED_AT, SOURCE_FILE, DeltaSourceSettings, PostgresSourceSettings, Settings
from .metadata import audit_log, commit_info, table_metadata
from .sources import Source, load_checked, specs

SOURCE_LOG = "source_table_log"  # every read of a source: version or watermark, whole or changes, rows


@dataclass
class _Read:
    """What one run reads of a source: the rows (None: nothing new), how they are named in lineage,
    and what the log and the metadata say about it."""

    rows: object  # a Spark DataFrame, or None
    label: str  # SOURCE_FILE of the rows: delta:<table>@v3, postgres:<table>@<watermark>
    about: dict  # read, why, version / watermark: logged and shown as metadata


class _DeltaOrigin:
    """A Delta table: the files added since the version read last (its change data feed on
    Databricks), the whole table when the history cannot tell."""

    def __init__(self, source: DeltaSourceSettings):
        self.table, self.name = source.table, source.table

    def describe(self) -> str:
        return (
            f"Delta table `{self.table}` (`dataset.source`): each run reads what changed since the version it "
            "read last (the whole table when that cannot be told)"
        )

    def read(self, context, lakehouse: Lakehouse, spark, last: dict | None, staging: str, say) -> _Read:
        from ..resources.lakehouse import TableNotFoundError

        table = self.table
        if not lakehouse.exists(table):
            raise TableNotFoundError(
                f"source table {table} (dataset.source.table) does not exist, or this identity cannot read it: "
                "check the name (catalog.schema.table, or the path of a Delta table) and the grants"
            )
        version = lakehouse.version(table)
        previous = None if last is None or last["source_version"] is None else int(last["source_version"])
        about = {"source_table": table, "source_version": version, "previous_version": previous}
        if previous == version:
            return _Read(None, "", {**about, "read": "nothing new", "why": f"still at version {version}"})
        changes = None
        if previous is None:
            why = "first read"
        elif version < previous:
            why = f"its version went back from {previous} to {version}: the table was created again"
        else:
            changes = lakehouse.read_spark_changes(spark, table, previous)
            why = (
                ""
                if changes is not None
                else f"rows were replaced or deleted since version {previous} "
                "(an overwrite, a restore or a delete), or that version's history is gone"
            )
        rows = changes if changes is not None else lakehouse.read_spark(spark, table, version)
        read = f"changes since version {previous}" if changes is not None else "whole table"
        return _Read(rows, f"delta:{table}@v{version}", {**about, "read": read, "why": why})


class _PostgresOrigin:
    """A PostgreSQL table or query: the rows whose watermark is past the greatest one read last,
    streamed in batches through the staging folder."""

    def __init__(self, source: PostgresSourceSettings):
        from ..resources.postgres_source import describe

        self.source, self.name = source, describe(source)

    def describe(self) -> str:
        s = self.source
        what = f"PostgreSQL table `{s.table}`" if s.table else "a PostgreSQL query"
        return (
            f"{what} (`dataset.source`, DSN from `${s.dsn_env}`): each run reads the rows whose `{s.watermark}` "
            f"is greater than the greatest one read last, {s.batch_rows:,} rows at a time"
        )

    def read(self, context, lakehouse: Lakehouse, spark, last: dict | None, staging: str, say) -> _Read:
        from ..resources.postgres_source import read_new_rows

        s = self.source
        after = None if last is None else last["watermark"]
        got = read_new_rows(
            s, after, staging, progress=lambda rows: say(f"{rows:,} rows read from {self.name}")
        )
        about = {"source": self.name, "watermark_column": s.watermark, "previous_watermark": after}
        if not got.rows:
            return _Read(
                None,
                "",
                {
                    **about,
                    "watermark": after,
                    "read": "nothing new",
                    "why": f"no row with {s.watermark} > {after}" if after else "the source is empty",
                },
            )
        read = f"rows with {s.watermark} > {after}" if after is not None else "every row"
        return _Read(
            spark.read.parquet(*got.files),
            f"{self.name}@{s.watermark}={got.watermark}",
            {**about, "watermark": got.watermark, "read": read, "why": "" if after else "first read"},
        )


def source_table_assets(settings: Settings, dataset: Source):
    """The raw table (and its quarantine) from the use case's ``dataset.source``."""
    source = settings.dataset.source
    origin = _DeltaOrigin(source) if isinstance(source, DeltaSourceSettings) else _PostgresOrigin(source)
    key, raw_table, log_table = settings.dataset.key, settings.table(dataset.raw), settings.table(SOURCE_LOG)
    dataset = replace(
        dataset,
        folder=origin.name,
        raw_description=(
            f"`{dataset.what}` rows from {origin.describe()}, recorded in `{log_table}`; checked against the "
            f"dataset contract on Spark and upserted on `{key}` into Delta table `{raw_table}`, with "
            f"`{SOURCE_FILE}` (the source and its version or watermark) and `{INGESTED_AT}` for lineage."
        ),
    )

    @multi_asset(name=settings.names.ingest(dataset.raw), specs=specs(settings, dataset))
    def ingest_source_table(
        context: AssetExecutionContext,
        lakehouse: Lakehouse,
        spark: SparkResource,
        step_launcher: StepLauncherParam,
    ):
        yield from ingest_source(context, lakehouse, spark, settings, dataset, origin)

    return ingest_source_table


def last_read(lakehouse: Lakehouse, settings: Settings, origin) -> dict | None:
    """What the previous run read of ``origin`` (version, watermark), from the source table log."""
    from ..ml.arrivals import last_source_read

    log_table = settings.table(SOURCE_LOG)
    if not lakehouse.exists(log_table):
        return None
    return last_source_read(
        lakehouse.read(log_table, columns=["source", "source_version", "watermark", "ingested_at"]),
        origin.name,
    )


def ingest_source(
    context, lakehouse: Lakehouse, spark: SparkResource, settings: Settings, dataset: Source, origin
):
    """What is new in the source, checked and loaded; the audit rows; both assets' results."""
    names, raw_table = settings.names, settings.table(dataset.raw)
    raw_info = quarantine_info = None
    loaded = quarantined = 0
    session = spark.session()
    with (
        lakehouse.staging_dir() as staging,
        Progress(context.log.info, "ingestion", spark=session) as progress,
    ):
        read = origin.read(
            context, lakehouse, session, last_read(lakehouse, settings, origin), staging, progress.say
        )
        about = read.about
        if read.rows is None:
            context.log.info(f"{origin.name}: nothing new ({about['why']}); {raw_table} is unchanged")
        else:
            raw_info, quarantine_info, loaded, quarantined = _load_read(
                context, lakehouse, session, settings, dataset, origin, read, staging, progress.say
            )
    audit_log(context, settings).tables_written([raw_info, quarantine_info])
    shown = {k: v for k, v in about.items() if v is not None and v != ""}
    yield MaterializeResult(
        asset_key=names.key(dataset.raw),
        metadata={
            **(table_metadata(raw_info) if raw_info else {"dagster/table_name": raw_table}),
            **shown,
            "rows_loaded": loaded,
        },
    )
    yield MaterializeResult(
        asset_key=names.key(dataset.quarantine),
        metadata={
            **(
                table_metadata(quarantine_info)
                if quarantine_info
                else {"dagster/table_name": settings.table(dataset.quarantine)}
            ),
            **shown,
            "rows_quarantined_this_run": quarantined,
        },
    )


def _load_read(
    context,
    lakehouse: Lakehouse,
    session,
    settings: Settings,
    dataset: Source,
    origin,
    read: _Read,
    staging: str,
    say,
):
    """The rows read checked by the contract and loaded, the read logged: (raw info, quarantine
    info, rows loaded, rows quarantined)."""
    import pandas as pd

    from ..ml.arrivals import file_message
    from ..ml.landing import read_table_rows

    about, key = read.about, settings.dataset.key
    context.log.info(
        f"reading {read.label}: {about['read']}" + (f" ({about['why']})" if about["why"] else "")
    )
    now = datetime.now(UTC)
    commit = {**commit_info(context), "source_reads": read.label}
    batch = read_table_rows(
        session, read.rows, read.label, dataset.rules, key, staging, now, context.run.run_id, progress=say
    )
    [f] = batch.files
    warn, message = file_message(f, key, read.label)
    (context.log.warning if warn else context.log.info)(message)
    raw_info, quarantine_info = load_checked(
        lakehouse, settings, dataset, batch, commit, origin.name, json.dumps([read.label, about], default=str)
    )
    lakehouse.write(
        settings.table(SOURCE_LOG),
        pd.DataFrame(
            [
                {
                    "source": origin.name,
                    "source_version": about.get("source_version"),
                    "watermark": about.get("watermark"),
                    "read": about["read"],
                    "why": about["why"],
                    "rows_read": f.rows_read,
                    "rows_loaded": f.rows_loaded,
                    "rows_quarantined": f.rows_quarantined,
                    "ingested_at": pd.Timestamp(now),
                    "dagster_run_id": context.run.run_id,
                }
            ]
        ).astype({"source_version": "Int64", "watermark": "string"}),
        "append",
        commit_info=commit,
        description="Every read of a source table: version or watermark, whole or changes, rows.",
    )
    return raw_info, quarantine_info, f.rows_loaded, f.rows_quarantined
