"""Stage `ingestion`: landing files -> the raw table, bad rows -> quarantine, checked on Spark."""

from datetime import datetime, timezone
from pathlib import Path

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, multi_asset

from ..governance.audit import AUDIT_TABLE, record, table_written
from ..runtime.progress import Progress
from ..resources.lakehouse import Lakehouse
from ..resources.landing import landing_file, landing_files
from ..resources.spark import SparkResource
from ..resources.step_launcher import StepLauncherParam
from ..settings import INGESTED_AT, SOURCE_FILE, Settings
from .metadata import commit_info, markdown_table, table_metadata
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
        ds.name, settings.landing_path, ds, dict(ds.columns), ds.key, names.raw, names.quarantine,
        names.group("ingestion"),
        f"`{ds.name}` rows as they arrive: every landing file in the landing volume is checked "
        f"against the dataset contract on Spark and its valid rows are upserted on `{ds.key}` "
        f"into Delta table `{raw_table}` (a later file wins), with `{SOURCE_FILE}` and "
        f"`{INGESTED_AT}` for lineage. Each file is ingested once; a changed file again.",
        required=True)
    outcomes = Source(
        "ground truth", settings.ground_truth_path, truth, settings.ground_truth_rules(), ds.key,
        names.ground_truth, names.ground_truth_quarantine, names.group("ingestion"),
        f"Outcomes that arrived after the predictions: files in `{settings.ground_truth_path}` with "
        f"`{ds.key}`, `{ds.label}` and `{truth.time_column}` (when the outcome was observed, ISO 8601), "
        f"checked like any landing file and upserted on `{ds.key}` into Delta table "
        f"`{settings.table(names.ground_truth)}` (a later file wins). They judge the predictions made "
        f"before them (`{names.model_performance}`)"
        + (" and retraining learns from them." if truth.learn else "."),
        required=False)
    if ds.source is not None:  # a Delta table or a database instead of landing files
        return [source_table_assets(settings, dataset), _landing_assets(settings, outcomes)]
    return [_landing_assets(settings, dataset), _landing_assets(settings, outcomes)]


def _landing_assets(settings: Settings, source: Source):
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
            wanted = {landing_file(landing, f) for f in config.files}
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

    @multi_asset(name=names.ingest(source.raw), specs=specs(settings, source))
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
                raw_info, quarantine_info = load_checked(lakehouse, settings, source, batch,
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
