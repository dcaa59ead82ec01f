"""Stage `ingestion`: landing files -> the raw customers table, bad rows -> quarantine."""

import fnmatch
import os
from datetime import datetime, timezone
from pathlib import Path

from dagster import AssetExecutionContext, AssetSpec, Config, MaterializeResult, MetadataValue, multi_asset

from ..governance.audit import AUDIT_TABLE, record, table_written
from ..resources.lakehouse import Lakehouse
from ..resources.step_launcher import StepLauncherParam
from ..settings import INGESTED_AT, Settings
from .metadata import commit_info, markdown_table, table_metadata

SOURCE_FILE = "_source_file"


class IngestConfig(Config):
    files: list[str] = []
    """Landing files to ingest (paths or names in the landing volume). Empty: every new or changed
    file matching the dataset's file pattern."""


def landing_files(landing: str, pattern: str) -> list[dict]:
    """Files in the landing volume matching ``pattern``, oldest first, with size and mtime."""
    root = Path(landing)
    if not root.is_dir():
        return []
    found = []
    for entry in os.scandir(root):
        if entry.is_file() and fnmatch.fnmatch(entry.name, pattern):
            stat = entry.stat()
            found.append({"file_path": str(Path(entry.path).resolve()), "size_bytes": stat.st_size,
                          "modified_at": datetime.fromtimestamp(stat.st_mtime, tz=timezone.utc)})
    return sorted(found, key=lambda f: (f["modified_at"], f["file_path"]))


def ingestion_assets(settings: Settings):
    ds = settings.dataset
    raw_table = settings.table(f"raw_{ds.name}")
    quarantine_table = settings.table(f"raw_{ds.name}_quarantine")
    log_table = settings.table("landing_file_log")

    @multi_asset(
        specs=[
            AssetSpec(
                "raw_customers", group_name="ingestion", kinds={"delta"},
                description=(
                    f"Customers as they arrive: every landing file in the landing volume is checked "
                    f"against the dataset contract and its valid rows are upserted on `{ds.key}` into "
                    f"Delta table `{raw_table}` (a later file wins), with `{SOURCE_FILE}` and "
                    f"`{INGESTED_AT}` for lineage. Each file is ingested once; a changed file again."
                ),
                metadata={"dagster/table_name": raw_table},
            ),
            AssetSpec(
                "raw_customers_quarantine", group_name="ingestion", kinds={"delta"},
                description=(
                    f"Rows that broke the dataset contract (missing or unknown columns, unparsable "
                    f"numbers, values out of range, duplicated `{ds.key}`, empty files), appended to "
                    f"`{quarantine_table}` with file, line, the original record and every reason. "
                    "Nothing is dropped silently."
                ),
                metadata={"dagster/table_name": quarantine_table},
            ),
        ],
    )
    def ingest_landing_files(context: AssetExecutionContext, config: IngestConfig, lakehouse: Lakehouse,
                            step_launcher: StepLauncherParam):
        import pandas as pd

        from ..ml.landing import parse_landing_file

        landing = settings.landing_path
        candidates = landing_files(landing, ds.file_pattern)
        if config.files:
            wanted = {str(Path(landing, f).resolve()) for f in config.files}
            missing = wanted - {c["file_path"] for c in candidates}
            if missing:
                raise FileNotFoundError(
                    f"landing file(s) not found in {landing} (pattern {ds.file_pattern!r}): {sorted(missing)}"
                )
            candidates = [c for c in candidates if c["file_path"] in wanted]
        else:
            if not candidates and not lakehouse.exists(raw_table):
                raise FileNotFoundError(
                    f"no landing files matching {ds.file_pattern!r} in {landing}: put your files there, "
                    "or generate the demo data with `mlops generate`"
                )
            seen = set()
            if lakehouse.exists(log_table):
                log = lakehouse.read(log_table, columns=["file_path", "size_bytes", "modified_at"])
                seen = {(r.file_path, r.size_bytes, r.modified_at) for r in log.itertuples()}
            candidates = [
                c for c in candidates
                if (c["file_path"], c["size_bytes"], pd.Timestamp(c["modified_at"])) not in seen
            ]

        now = pd.Timestamp.now(tz="UTC")
        commit = commit_info(context)
        valid_frames, quarantine_frames, report = [], [], []
        for candidate in candidates:
            parsed = parse_landing_file(candidate["file_path"], ds.columns, ds.key)
            valid_frames.append(parsed.valid.assign(**{SOURCE_FILE: parsed.path, INGESTED_AT: now}))
            quarantine_frames.append(parsed.quarantine)
            candidate.update(rows_read=parsed.rows_read, rows_loaded=len(parsed.valid),
                             rows_quarantined=len(parsed.quarantine), problems="; ".join(parsed.problems))
            report.append({"file": Path(parsed.path).name, **{k: candidate[k] for k in
                           ("rows_read", "rows_loaded", "rows_quarantined", "problems")}})
            log = context.log.warning if parsed.problems else context.log.info
            log(f"{parsed.path}: {len(parsed.valid)} rows loaded, {len(parsed.quarantine)} quarantined"
                + (f" ({'; '.join(parsed.problems)})" if parsed.problems else ""))

        if not candidates:
            context.log.info(f"no new landing files in {landing}; {raw_table} is unchanged")
            raw_info = quarantine_info = None
        else:
            valid = pd.concat(valid_frames, ignore_index=True).drop_duplicates(ds.key, keep="last")
            files = ";".join(Path(c["file_path"]).name for c in candidates)
            raw_info = lakehouse.merge(
                raw_table, valid, [ds.key], commit_info={**commit, "landing_files": files},
                properties={"primary_key": ds.key},
                description=f"Raw {ds.name} from landing files ({landing}); key {ds.key}.",
            )
            quarantine = pd.concat(quarantine_frames, ignore_index=True).assign(
                quarantined_at=now, dagster_run_id=context.run.run_id
            )
            quarantine_info = lakehouse.write(
                quarantine_table, quarantine, "append", commit_info=commit,
                description=f"Rows of landing files refused by the {ds.name} contract, with reasons.",
            )
            lakehouse.write(log_table, pd.DataFrame(candidates).assign(ingested_at=now,
                            dagster_run_id=context.run.run_id), "append", commit_info=commit,
                            description="Every landing file ingested: size, mtime, rows loaded and quarantined.")

        record(lakehouse, settings.table(AUDIT_TABLE),
               table_written([raw_info, quarantine_info], settings.target, context.run.run_id))
        files = markdown_table(report)
        loaded = sum(r["rows_loaded"] for r in report)
        quarantined = sum(r["rows_quarantined"] for r in report)
        yield MaterializeResult(
            asset_key="raw_customers",
            metadata={
                **(table_metadata(raw_info) if raw_info else {"dagster/table_name": raw_table}),
                "files_ingested": len(candidates), "rows_loaded": loaded, "files": files,
                "landing_volume": MetadataValue.path(landing),
            },
        )
        yield MaterializeResult(
            asset_key="raw_customers_quarantine",
            metadata={
                **(table_metadata(quarantine_info) if quarantine_info else {"dagster/table_name": quarantine_table}),
                "rows_quarantined_this_run": quarantined, "files": files,
            },
        )

    return [ingest_landing_files]
