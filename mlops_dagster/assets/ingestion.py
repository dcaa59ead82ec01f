"""Stage `ingestion`: landing files -> the raw table, bad rows -> quarantine, checked on Spark."""

from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from dagster import AssetExecutionContext, AssetSpec, Config, MaterializeResult, MetadataValue, multi_asset

from ..governance.audit import AUDIT_TABLE, record, table_written
from ..progress import Progress
from ..resources.lakehouse import Lakehouse
from ..resources.landing import landing_files
from ..resources.spark import SparkResource
from ..resources.step_launcher import StepLauncherParam
from ..settings import INGESTED_AT, SOURCE_FILE, LandingFormat, Settings
from ..metadata import commit_info, markdown_table, table_metadata


SOURCE_LOG = "source_table_log"  # every read of a source table: its version, full or changes, rows


class IngestConfig(Config):
    files: list[str] = []
    """Landing files to ingest (paths or names in the landing volume). Empty: every new or changed
    file matching the dataset's file pattern."""


@dataclass(frozen=True)
class _Source:
    """One kind of landing file: where it lands, its contract and the tables it is loaded into."""

    what: str                    # for messages: "customers", "ground truth"
    folder: str
    files: LandingFormat         # which files (pattern), their formats and CSV dialect
    rules: dict
    key: str
    raw: str                     # asset (and table) name of the loaded rows
    quarantine: str              # asset (and table) name of the refused rows
    group: str
    raw_description: str
    required: bool               # no files and no table yet is an error (else: nothing has arrived yet)


def ingestion_assets(settings: Settings):
    """The dataset's landing files -> raw table, and the outcome files -> the ground-truth table."""
    ds, names = settings.dataset, settings.names
    raw_table, truth = settings.table(names.raw), settings.monitoring.ground_truth
    dataset = _Source(
        ds.name, settings.landing_path, ds, dict(ds.columns), ds.key, names.raw, names.quarantine,
        names.group("ingestion"),
        f"`{ds.name}` rows as they arrive: every landing file in the landing volume is checked "
        f"against the dataset contract on Spark and its valid rows are upserted on `{ds.key}` "
        f"into Delta table `{raw_table}` (a later file wins), with `{SOURCE_FILE}` and "
        f"`{INGESTED_AT}` for lineage. Each file is ingested once; a changed file again.",
        required=True)
    outcomes = _Source(
        "ground truth", settings.ground_truth_path, truth, settings.ground_truth_rules(), ds.key,
        names.ground_truth, names.ground_truth_quarantine, names.group("monitoring"),
        f"Outcomes that arrived after the predictions: files in `{settings.ground_truth_path}` with "
        f"`{ds.key}`, `{ds.label}` and `{truth.time_column}` (when the outcome was observed, ISO 8601), "
        f"checked like any landing file and upserted on `{ds.key}` into Delta table "
        f"`{settings.table(names.ground_truth)}` (a later file wins). They judge the predictions made "
        f"before them (`{names.model_performance}`)"
        + (" and retraining learns from them." if truth.learn else "."),
        required=False)
    if ds.source is not None:
        table = ds.source.table
        dataset = replace(dataset, folder=table, raw_description=(
            f"`{ds.name}` rows from Delta table `{table}` (`dataset.source`): each run reads what changed "
            f"since the version it read last (recorded in `{settings.table(SOURCE_LOG)}`; the whole table "
            "when that cannot be told), checks it against the dataset contract on Spark and upserts its "
            f"valid rows on `{ds.key}` into Delta table `{raw_table}`, with `{SOURCE_FILE}` "
            f"(`delta:<table>@v<version>`) and `{INGESTED_AT}` for lineage."))
        return [_table_assets(settings, dataset, table), _landing_assets(settings, outcomes)]
    return [_landing_assets(settings, dataset), _landing_assets(settings, outcomes)]


def _specs(settings: Settings, source: _Source) -> list[AssetSpec]:
    """The loaded rows and the refused ones, whatever the source."""
    names = settings.names
    quarantine_table = settings.table(source.quarantine)
    return [
        AssetSpec(
            names.key(source.raw), group_name=source.group, kinds={"spark", "delta"},
            description=source.raw_description, metadata={"dagster/table_name": settings.table(source.raw)},
        ),
        AssetSpec(
            names.key(source.quarantine), group_name=source.group, kinds={"spark", "delta"},
            description=(
                f"Rows that broke the {source.what} contract (missing or unknown columns, unparsable "
                f"values, values out of range, duplicated `{source.key}`, empty files), appended to "
                f"`{quarantine_table}` with file (or source table and version), line, the original "
                "record and every reason. Nothing is dropped silently."
            ),
            metadata={"dagster/table_name": quarantine_table},
        ),
    ]


def _load(lakehouse: Lakehouse, settings: Settings, source: _Source, batch, commit: dict, origin: str):
    """Valid rows merged into the raw table on the key (created empty when every row was refused),
    refused rows appended to the quarantine table. Returns both tables' infos (None: not written)."""
    from ..ml.landing import QUARANTINE_SCHEMA, valid_schema

    raw_table, quarantine_table = settings.table(source.raw), settings.table(source.quarantine)
    raw_info = quarantine_info = None
    if batch.valid_files:
        raw_info = lakehouse.merge_files(
            raw_table, batch.valid_files, [source.key], commit_info=commit, properties={"primary_key": source.key},
            description=f"{source.what.capitalize()} from {origin}; key {source.key}.",
        )
    elif not lakehouse.exists(raw_table):  # every row refused: an empty table for the next stages
        raw_info = lakehouse.write(raw_table, valid_schema(source.rules).empty_table(), "append",
                                   commit_info=commit, properties={"primary_key": source.key})
    description = f"Rows refused by the {source.what} contract, with reasons."
    if batch.quarantine_files:
        quarantine_info = lakehouse.write_files(quarantine_table, batch.quarantine_files, "append",
                                                commit_info=commit, description=description)
    elif not lakehouse.exists(quarantine_table):  # an empty table, so its checks can read it
        quarantine_info = lakehouse.write(quarantine_table, QUARANTINE_SCHEMA.empty_table(), "append",
                                          commit_info=commit, description=description)
    return raw_info, quarantine_info


def _landing_assets(settings: Settings, source: _Source):
    names = settings.names
    raw_table = settings.table(source.raw)
    quarantine_table = settings.table(source.quarantine)
    log_table = settings.table("landing_file_log")

    def new_files(lakehouse: Lakehouse, config: IngestConfig) -> list[dict]:
        """The landing files this run ingests: those asked for, or every new or changed one."""
        import pandas as pd

        landing = source.folder
        candidates = landing_files(landing, source.files.file_pattern)
        if config.files:
            wanted = {str(Path(landing, f).resolve()) for f in config.files}
            missing = wanted - {c["file_path"] for c in candidates}
            if missing:
                raise FileNotFoundError(
                    f"landing file(s) not found in {landing} (pattern {source.files.file_pattern!r}): {sorted(missing)}"
                )
            return [c for c in candidates if c["file_path"] in wanted]
        if not candidates and source.required and not lakehouse.exists(raw_table):
            raise FileNotFoundError(
                f"no landing files matching {source.files.file_pattern!r} in {landing}: put your files there, "
                "or generate the demo data with `mlops generate`"
            )
        seen = set()
        if lakehouse.exists(log_table):
            log = lakehouse.read(log_table, columns=["file_path", "size_bytes", "modified_at"])
            seen = {(r.file_path, r.size_bytes, r.modified_at) for r in log.itertuples()}
        return [c for c in candidates if (c["file_path"], c["size_bytes"], pd.Timestamp(c["modified_at"])) not in seen]

    @multi_asset(name=names.ingest(source.raw), specs=_specs(settings, source))
    def ingest_landing_files(context: AssetExecutionContext, config: IngestConfig, lakehouse: Lakehouse,
                             spark: SparkResource, step_launcher: StepLauncherParam):
        import pandas as pd

        from ..ml.landing import read_landing_files

        landing = source.folder
        candidates = new_files(lakehouse, config)
        raw_info = quarantine_info = None
        report = []
        if not candidates:
            context.log.info(f"no new landing files in {landing}; {raw_table} is unchanged")
        else:
            now = datetime.now(timezone.utc)
            commit = commit_info(context)
            session = spark.session()
            with lakehouse.staging_dir() as staging, Progress(context.log.info, "ingestion", spark=session) as progress:
                batch = read_landing_files(session, [c["file_path"] for c in candidates], source.rules, source.key,
                                           staging, now, context.run.run_id, source.files, progress=progress.say)
                for candidate, f in zip(candidates, batch.files):
                    problems = f.problems(source.key)
                    candidate.update(rows_read=f.rows_read, rows_loaded=f.rows_loaded,
                                     rows_quarantined=f.rows_quarantined, problems="; ".join(problems))
                    report.append({"file": Path(f.path).name, **{k: candidate[k] for k in
                                   ("rows_read", "rows_loaded", "rows_quarantined", "problems")}})
                    (context.log.warning if problems else context.log.info)(
                        f"{f.path}: {f.rows_loaded} rows loaded, {f.rows_quarantined} quarantined"
                        + (f" ({'; '.join(problems)})" if problems else ""))
                progress.say(f"writing {batch.rows_loaded:,} rows to {raw_table}")
                files = ";".join(Path(c["file_path"]).name for c in candidates)
                raw_info, quarantine_info = _load(lakehouse, settings, source, batch,
                                                  {**commit, "landing_files": files}, f"landing files ({landing})")
            lakehouse.write(log_table, pd.DataFrame(candidates).assign(ingested_at=pd.Timestamp(now),
                            dagster_run_id=context.run.run_id), "append", commit_info=commit,
                            description="Every landing file ingested: size, mtime, rows loaded and quarantined.")

        record(lakehouse, settings.table(AUDIT_TABLE),
               table_written([raw_info, quarantine_info], settings.target, context.run.run_id))
        files = markdown_table(report)
        loaded = sum(r["rows_loaded"] for r in report)
        quarantined = sum(r["rows_quarantined"] for r in report)
        yield MaterializeResult(
            asset_key=names.key(source.raw),
            metadata={
                **(table_metadata(raw_info) if raw_info else {"dagster/table_name": raw_table}),
                "files_ingested": len(candidates), "rows_loaded": loaded, "files": files,
                "landing_volume": MetadataValue.path(landing),
            },
        )
        yield MaterializeResult(
            asset_key=names.key(source.quarantine),
            metadata={
                **(table_metadata(quarantine_info) if quarantine_info else {"dagster/table_name": quarantine_table}),
                "rows_quarantined_this_run": quarantined, "files": files,
            },
        )

    return ingest_landing_files


def _table_assets(settings: Settings, source: _Source, table: str):
    """A Delta source table -> the raw table, reading only what changed since the version read last."""
    names = settings.names
    raw_table, log_table = settings.table(source.raw), settings.table(SOURCE_LOG)

    def last_read(lakehouse: Lakehouse) -> int | None:
        if not lakehouse.exists(log_table):
            return None
        log = lakehouse.read(log_table, columns=["source", "source_version", "ingested_at"])
        reads = log[log["source"] == table].sort_values("ingested_at")  # a table has no row order
        return int(reads["source_version"].iloc[-1]) if len(reads) else None

    @multi_asset(name=names.ingest(source.raw), specs=_specs(settings, source))
    def ingest_source_table(context: AssetExecutionContext, lakehouse: Lakehouse, spark: SparkResource,
                            step_launcher: StepLauncherParam):
        import pandas as pd

        from ..ml.landing import read_table_rows
        from ..resources.lakehouse import TableNotFoundError

        if not lakehouse.exists(table):
            raise TableNotFoundError(
                f"source table {table} (dataset.source.table) does not exist, or this identity cannot read it: "
                "check the name (catalog.schema.table, or the path of a Delta table) and the grants")
        version, last = lakehouse.version(table), last_read(lakehouse)
        read = {"source_table": table, "source_version": version, "previous_version": last}
        raw_info = quarantine_info = None
        loaded = quarantined = 0
        if last == version:
            context.log.info(f"{table} is still at version {version}, read already; {raw_table} is unchanged")
            read.update(read="nothing new", why="")
        else:
            session = spark.session()
            changes = None
            if last is None:
                why = "first read"
            elif version < last:
                why = f"its version went back from {last} to {version}: the table was created again"
            else:
                changes = lakehouse.read_spark_changes(session, table, last)
                why = ("" if changes is not None else f"rows were replaced or deleted since version {last} "
                       "(an overwrite, a restore or a delete), or that version's history is gone")
            read.update(read=f"changes since version {last}" if changes is not None else "whole table", why=why)
            context.log.info(f"reading {table} version {version}: {read['read']}" + (f" ({why})" if why else ""))
            df = changes if changes is not None else lakehouse.read_spark(session, table, version)
            now = datetime.now(timezone.utc)
            commit = {**commit_info(context), "source_reads": f"delta:{table}@v{version}"}
            with lakehouse.staging_dir() as staging, Progress(context.log.info, "ingestion", spark=session) as progress:
                batch = read_table_rows(session, df, f"delta:{table}@v{version}", source.rules, source.key, staging,
                                        now, context.run.run_id, progress=progress.say)
                [f] = batch.files
                loaded, quarantined = f.rows_loaded, f.rows_quarantined
                problems = f.problems(source.key)
                (context.log.warning if problems else context.log.info)(
                    f"{table}@v{version}: {loaded} rows loaded, {quarantined} quarantined"
                    + (f" ({'; '.join(problems)})" if problems else ""))
                raw_info, quarantine_info = _load(lakehouse, settings, source, batch, commit, f"Delta table {table}")
            lakehouse.write(log_table, pd.DataFrame([{
                "source": table, "source_version": version, "previous_version": last, "read": read["read"],
                "why": why, "rows_read": f.rows_read, "rows_loaded": loaded, "rows_quarantined": quarantined,
                "ingested_at": pd.Timestamp(now), "dagster_run_id": context.run.run_id,
            }]).astype({"previous_version": "Int64"}), "append", commit_info=commit,
                description="Every read of a source table: its version, whole or changes, rows loaded and quarantined.")

        record(lakehouse, settings.table(AUDIT_TABLE),
               table_written([raw_info, quarantine_info], settings.target, context.run.run_id))
        about = {k: v for k, v in read.items() if v is not None and v != ""}
        yield MaterializeResult(asset_key=names.key(source.raw), metadata={
            **(table_metadata(raw_info) if raw_info else {"dagster/table_name": raw_table}),
            **about, "rows_loaded": loaded})
        yield MaterializeResult(asset_key=names.key(source.quarantine), metadata={
            **(table_metadata(quarantine_info) if quarantine_info else
               {"dagster/table_name": settings.table(source.quarantine)}),
            **about, "rows_quarantined_this_run": quarantined})

    return ingest_source_table
