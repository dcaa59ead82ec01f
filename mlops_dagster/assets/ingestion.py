"""Stage `ingestion`: landing files (the dataset's, and the outcomes that later judge and teach the
model) -> their raw tables, bad rows -> quarantine, checked on Spark."""

import json
from datetime import UTC, datetime
from pathlib import Path

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, multi_asset

from ..ml.arrivals import asked_for, file_message, file_outcomes, missing_files, unseen_files
from ..resources.lakehouse import Lakehouse
from ..resources.landing import landing_file, landing_files
from ..resources.spark import SparkResource
from ..resources.step_launcher import StepLauncherParam
from ..runtime.progress import Progress
from ..settings import INGESTED_AT, SOURCE_FILE, Settings
from ..settings.constants import LANDING_LOG
from .metadata import audit_log, commit_info, markdown_table, table_metadata
from .source_tables import source_table_assets
from .sources import Source, load_checked, specs


class IngestConfig(Config):
    files: list[str] = []
    """Landing files to ingest (paths or names in the landing volume). Empty: every new or changed
    file matching the dataset's file pattern."""


def ingestion_assets(settings: Settings):
    """The dataset's landing files (or source table) -> raw table, and the outcome files -> the ground-truth table."""
    ds, names = settings.dataset, settings.names
    raw_table, truth = settings.table(names.raw), settings.monitoring.ground_truth
    dataset = Source(
        ds.name,
        settings.landing_path,
        ds,
        dict(ds.columns),
        ds.key,
        names.raw,
        names.quarantine,
        names.group("ingestion"),
        f"`{ds.name}` rows as they arrive: every landing file in the landing volume is checked "
        f"against the dataset contract on Spark and its valid rows are upserted on `{ds.key}` "
        f"into Delta table `{raw_table}` (a later file wins), with `{SOURCE_FILE}` and "
        f"`{INGESTED_AT}` for lineage. Each file is ingested once; a changed file again.",
        required=True,
    )
    outcomes = Source(
        "ground truth",
        settings.ground_truth_path,
        truth,
        settings.ground_truth_rules(),
        ds.key,
        names.ground_truth,
        names.ground_truth_quarantine,
        names.group("ingestion"),
        f"Outcomes that arrived after the predictions: files in `{settings.ground_truth_path}` with "
        f"`{ds.key}`, `{ds.label}` and `{truth.time_column}` (when the outcome was observed, ISO 8601), "
        f"checked like any landing file and upserted on `{ds.key}` into Delta table "
        f"`{settings.table(names.ground_truth)}` (a later file wins). They judge the predictions made "
        f"before them (`{names.model_performance}`)"
        + (" and retraining learns from them." if truth.learn else "."),
        required=False,
    )
    if ds.source is not None:  # a Delta table or a database instead of landing files
        return [source_table_assets(settings, dataset), _landing_assets(settings, outcomes)]
    return [_landing_assets(settings, dataset), _landing_assets(settings, outcomes)]


def _landing_assets(settings: Settings, source: Source):
    @multi_asset(name=settings.names.ingest(source.raw), specs=specs(settings, source))
    def ingest_landing_files(
        context: AssetExecutionContext,
        config: IngestConfig,
        lakehouse: Lakehouse,
        spark: SparkResource,
        step_launcher: StepLauncherParam,
    ):
        yield from ingest_landing(context, config, lakehouse, spark, settings, source)

    return ingest_landing_files


def ingest_landing(
    context,
    config: IngestConfig,
    lakehouse: Lakehouse,
    spark: SparkResource,
    settings: Settings,
    source: Source,
):
    """The new (or asked for) landing files of ``source`` checked and loaded; the audit rows; both
    assets' results."""
    names = settings.names
    candidates = files_to_ingest(lakehouse, settings, source, config.files)
    raw_info = quarantine_info = None
    report = []
    if not candidates:
        context.log.info(
            f"no new landing files in {source.folder}; {settings.table(source.raw)} is unchanged"
        )
    else:
        raw_info, quarantine_info, report = load_landing_files(
            context, lakehouse, spark, settings, source, candidates
        )
    audit_log(context, settings).tables_written([raw_info, quarantine_info])
    files = markdown_table(report)
    yield MaterializeResult(
        asset_key=names.key(source.raw),
        metadata={
            **(table_metadata(raw_info) if raw_info else {"dagster/table_name": settings.table(source.raw)}),
            "files_ingested": len(candidates),
            "rows_loaded": sum(r["rows_loaded"] for r in report),
            "files": files,
            "landing_volume": MetadataValue.path(source.folder),
        },
    )
    yield MaterializeResult(
        asset_key=names.key(source.quarantine),
        metadata={
            **(
                table_metadata(quarantine_info)
                if quarantine_info
                else {"dagster/table_name": settings.table(source.quarantine)}
            ),
            "rows_quarantined_this_run": sum(r["rows_quarantined"] for r in report),
            "files": files,
        },
    )


def files_to_ingest(lakehouse: Lakehouse, settings: Settings, source: Source, asked: list[str]) -> list[dict]:
    """The landing files this run ingests: those asked for, or every new or changed one."""
    landing, pattern = source.folder, source.files.file_pattern
    candidates = landing_files(landing, pattern)
    if asked:
        wanted = {landing_file(landing, f) for f in asked}
        missing = missing_files(candidates, wanted)
        if missing:
            raise FileNotFoundError(
                f"landing file(s) not found in {landing} (pattern {pattern!r}): {missing}"
            )
        return asked_for(candidates, wanted)
    if not candidates and source.required and not lakehouse.exists(settings.table(source.raw)):
        raise FileNotFoundError(
            f"no landing files matching {pattern!r} in {landing}: put your files there, "
            "or generate the demo data with `mlops generate`"
        )
    seen, log_table = set(), settings.table(LANDING_LOG)
    if lakehouse.exists(log_table):
        log = lakehouse.read(log_table, columns=["file_path", "size_bytes", "modified_at"])
        seen = {(r.file_path, r.size_bytes, r.modified_at) for r in log.itertuples()}
    return unseen_files(candidates, seen)


def load_landing_files(
    context,
    lakehouse: Lakehouse,
    spark: SparkResource,
    settings: Settings,
    source: Source,
    candidates: list[dict],
):
    """Check ``candidates`` on Spark, load their rows, log the files: (raw info, quarantine info, report)."""
    import pandas as pd

    from ..ml.landing import read_landing_files

    now, commit, session = datetime.now(UTC), commit_info(context), spark.session()
    raw_table = settings.table(source.raw)
    with (
        lakehouse.staging_dir() as staging,
        Progress(context.log.info, "ingestion", spark=session) as progress,
    ):
        batch = read_landing_files(
            session,
            [c["file_path"] for c in candidates],
            source.rules,
            source.key,
            staging,
            now,
            context.run.run_id,
            source.files,
            progress=progress.say,
        )
        logged, report = file_outcomes(candidates, batch.files, source.key)
        for f in batch.files[: len(candidates)]:
            warn, message = file_message(f, source.key)
            (context.log.warning if warn else context.log.info)(message)
        progress.say(f"writing {batch.rows_loaded:,} rows to {raw_table}")
        files = ";".join(Path(c["file_path"]).name for c in candidates)
        raw_info, quarantine_info = load_checked(
            lakehouse,
            settings,
            source,
            batch,
            {**commit, "landing_files": files},
            f"landing files ({source.folder})",
            json.dumps([[c["file_path"], c["size_bytes"], str(c["modified_at"])] for c in candidates]),
        )
    lakehouse.write(
        settings.table(LANDING_LOG),
        pd.DataFrame(logged).assign(ingested_at=pd.Timestamp(now), dagster_run_id=context.run.run_id),
        "append",
        commit_info=commit,
        description="Every landing file ingested: size, mtime, rows loaded and quarantined.",
    )
    return raw_info, quarantine_info, report
