"""Housekeeping: retention, compaction and vacuum, so a product left running keeps bounded disk.

Wiring only: which rows, versions, runs and files are past their age is decided in
``governance/retention.py``; this asset gathers the facts, applies the verdicts (or, in a dry run,
only reports them) and records what it did: asset metadata and one audit row per thing it touched.
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, Config, MaterializeResult, asset

from ..governance.retention import (
    ARCHIVED_TAG,
    VersionFacts,
    cutoff,
    files_to_delete,
    housekept_tables,
    landing_files_to_tidy,
    measured_tables,
    runs_to_delete,
    version_verdicts,
)
from ..monitoring.evidently_workspace import prune_snapshots
from ..resources.lakehouse import Lakehouse
from ..resources.landing import landing_files, put_aside
from ..resources.registry import ModelRegistry
from ..resources.serving import ServingBackend
from ..resources.step_launcher import StepLauncherParam
from ..settings import Settings
from ..settings.constants import LANDING_LOG
from .metadata import audit_log, markdown_table

APPROVED_TAG = "approved_by"


class HousekeepingConfig(Config):
    dry_run: bool = False
    """Report what would be removed and compacted; change nothing."""


def housekeeping_assets(settings: Settings) -> list:
    names = settings.names

    @asset(
        name=names.housekeeping,
        key_prefix=names.prefix,
        group_name=names.group("housekeeping"),
        description="Deletes rows past their retention from the tables written in small appends (inference "
        "table, prediction log, history tables, quarantines), compacts and vacuums them; deletes old reports, "
        "Evidently snapshots and MLflow runs that registered nothing; archives (or deletes) landing files "
        "ingested long ago; archives, then deletes, old model versions (never one with an "
        "alias, serving traffic or the newest approved). Metadata: what it removed, files and bytes before and "
        "after, and the disk use of each table and of the MLflow store (retention in the config).",
    )
    def housekeeping(
        context: AssetExecutionContext,
        config: HousekeepingConfig,
        lakehouse: Lakehouse,
        registry: ModelRegistry,
        serving: ServingBackend,
        step_launcher: StepLauncherParam,
    ) -> MaterializeResult:
        return tidy(context, settings, config.dry_run, lakehouse, registry.for_use_case(settings), serving)

    return [housekeeping]


def tidy(context, settings: Settings, dry_run: bool, lakehouse, registry, serving) -> MaterializeResult:
    """Every step of housekeeping in turn; its metadata and audit rows."""
    now = datetime.now(UTC)
    tables = [
        tidy_table(lakehouse, policy, settings, now, dry_run)
        for policy in housekept_tables(settings)
        if lakehouse.exists(policy.table)
    ]
    versions = tidy_versions(registry, served_versions(serving, settings), settings, now, dry_run)
    runs = tidy_runs(registry, settings, now, dry_run, {v["version_run_id"] for v in versions})
    reports = tidy_reports(settings, now, dry_run)
    edge = cutoff(now, settings.retention.reports_days)
    snapshots = 0 if edge is None else prune_snapshots(settings.evidently_path, settings.name, edge, dry_run)
    landing = tidy_landing(lakehouse, settings, now, dry_run)
    disk = disk_use(lakehouse, settings)
    verb = "would remove" if dry_run else "removed"
    context.log.info(
        f"housekeeping{' (dry run)' if dry_run else ''}: {verb} {sum(t['rows_deleted'] for t in tables)} rows, "
        f"{len(runs)} runs, {len(reports)} reports, {snapshots} Evidently snapshots; {len(landing)} landing files to "
        f"{settings.retention.landing_action}; "
        f"{sum(v['action'] != 'keep' for v in versions)} model versions to archive or delete"
    )
    if not dry_run:
        _audit(context, settings, tables, versions, runs, reports, snapshots, landing)
    return MaterializeResult(
        metadata={
            "dry_run": dry_run,
            "rows_deleted": sum(t["rows_deleted"] for t in tables),
            "files_before": sum(t["files_before"] for t in tables),
            "files_after": sum(t["files_after"] for t in tables),
            "bytes_freed": sum(t["bytes_freed"] for t in tables),
            "tables": markdown_table(tables),
            "model_versions": markdown_table(
                [{k: v for k, v in r.items() if k != "version_run_id"} for r in versions]
            ),
            "runs_deleted": len(runs),
            "reports_deleted": len(reports),
            "evidently_snapshots_deleted": snapshots,
            "landing_files_removed": len(landing),
            "landing_files": markdown_table(landing),
            "disk_use": markdown_table(disk),
            "disk_bytes_total": sum(d["bytes"] for d in disk),
        }
    )


def tidy_table(lakehouse, policy, settings: Settings, now: datetime, dry_run: bool) -> dict[str, Any]:
    """Delete the rows past the table's age, compact it and vacuum what no retained version reads."""
    keep = settings.retention
    before = lakehouse.size(policy.table)
    edge = cutoff(now, policy.keep_days)
    rows = 0 if edge is None else lakehouse.delete_older_than(policy.table, policy.time_column, edge, dry_run)
    hours = keep.table_versions_days * 24
    if dry_run:
        vacuumable = lakehouse.vacuum(policy.table, hours, dry_run=True)
        after = before
    else:
        lakehouse.compact(policy.table, keep.compact_target_mb, policy.time_column if keep.zorder else None)
        vacuumable = lakehouse.vacuum(policy.table, hours)
        after = lakehouse.size(policy.table)
    return {
        "table": policy.table,
        "rows_deleted": rows,
        "files_before": before.files,
        "files_after": after.files,
        "files_vacuumed": vacuumable,
        "bytes_before": _on_disk(before),
        "bytes_after": _on_disk(after),
        "bytes_freed": _on_disk(before) - _on_disk(after),
    }


def _on_disk(size) -> int:
    """Bytes on disk where the storage can be listed, else the current version's."""
    return size.bytes if size.disk_bytes is None else size.disk_bytes


def served_versions(serving: ServingBackend, settings: Settings) -> set[str]:
    """The model versions the use case's endpoint serves or is rolling out (none when it is down)."""
    state = serving.describe(settings.serving.endpoint) or {}
    configs = [state.get("config") or {}, state.get("pending_config") or {}]
    return {
        str(e["entity_version"])
        for c in configs
        for e in c.get("served_entities", [])
        if e.get("entity_name") in (None, settings.mlflow.model_name)
    }


def tidy_versions(registry, served: set[str], settings: Settings, now, dry_run) -> list[dict[str, Any]]:
    """Archive model versions past the environment's age, delete archived ones past theirs."""
    by_version: dict[str, list[str]] = {}
    for alias, version in registry.aliases().items():
        by_version.setdefault(str(version), []).append(alias)
    versions = {str(v.version): v for v in registry.versions()}  # an int from some stores
    facts = [
        VersionFacts(
            version=number,
            created=datetime.fromtimestamp(v.creation_timestamp / 1000, UTC),
            aliases=tuple(sorted(by_version.get(number, []))),
            serving=number in served,
            approved=APPROVED_TAG in v.tags or ModelRegistry.is_validated(v),
            archived_at=datetime.fromisoformat(v.tags[ARCHIVED_TAG]) if ARCHIVED_TAG in v.tags else None,
        )
        for number, v in versions.items()
    ]
    keep = settings.retention.model_versions
    verdicts = version_verdicts(facts, now, keep.days(settings.target), keep.archived)
    for verdict in verdicts:
        if dry_run or verdict.action == "keep":
            continue
        if verdict.action == "archive":
            registry.set_tags(verdict.version, {ARCHIVED_TAG: now.isoformat()})
        else:
            registry.delete_version(verdict.version)
    return [
        {
            "version": v.version,
            "action": v.action,
            "reason": v.reason,
            "version_run_id": versions[v.version].run_id,
        }
        for v in sorted(verdicts, key=lambda v: int(v.version))
    ]


def tidy_runs(registry, settings: Settings, now, dry_run, registered: set[str]) -> list[str]:
    """Delete the experiment's runs past their age that registered no version (still registered
    ones are told by the versions listed just before)."""
    keep_days = settings.retention.unregistered_runs_days
    edge = cutoff(now, keep_days)
    if edge is None:
        return []
    runs = registry.runs_started_before(settings.mlflow.experiment, edge)
    doomed = runs_to_delete(runs, registered, now, keep_days)
    if doomed and not dry_run:
        registry.delete_runs(doomed)
    return doomed


def tidy_reports(settings: Settings, now, dry_run) -> list[str]:
    """Delete the use case's drift and performance reports past their age."""
    folders = [Path(settings.reports_path, kind, settings.name) for kind in ("drift", "performance")]
    files = [
        (str(p), datetime.fromtimestamp(p.stat().st_mtime, UTC))
        for folder in folders
        if folder.is_dir()
        for p in folder.iterdir()
        if p.is_file()
    ]
    doomed = files_to_delete(files, now, settings.retention.reports_days)
    if not dry_run:
        for path in doomed:
            Path(path).unlink(missing_ok=True)
    return doomed


def tidy_landing(lakehouse, settings: Settings, now, dry_run) -> list[dict[str, Any]]:
    """Archive (or delete) the landing files whose present content was ingested past its age: the
    dataset's and the outcomes'. What the landing file log does not show ingested is left alone."""
    keep, log = settings.retention, settings.table(LANDING_LOG)
    if keep.landing_days is None or not lakehouse.exists(log):
        return []
    rows = lakehouse.read(log, columns=["file_path", "size_bytes", "modified_at", "ingested_at"])
    ingested = rows.groupby(["file_path", "size_bytes", "modified_at"])["ingested_at"].max().to_dict()
    folders = [(settings.monitoring.ground_truth.file_pattern, settings.ground_truth_path)]
    if settings.dataset.source is None:
        folders.append((settings.dataset.file_pattern, settings.landing_path))
    done = []
    for pattern, folder in folders:
        for f, at in landing_files_to_tidy(landing_files(folder, pattern), ingested, now, keep.landing_days):
            day = at.date().isoformat() if keep.landing_action == "archive" else None
            moved = f["file_path"] if dry_run else put_aside(folder, f["file_path"], day)
            done.append({"file": f["file_path"], "ingested_at": at.isoformat(), "now_at": moved or "deleted"})
    return done


def disk_use(lakehouse, settings: Settings) -> list[dict[str, Any]]:
    """Files and bytes of each table of the use case, and of the local MLflow store."""
    rows = []
    for table in measured_tables(settings):
        if lakehouse.exists(table):
            size = lakehouse.size(table)
            rows.append({"what": table, "files": size.files, "bytes": _on_disk(size)})
    if settings.root is not None:
        store = [p for p in Path(settings.root, "mlflow").rglob("*") if p.is_file()]
        rows.append(
            {"what": "MLflow store", "files": len(store), "bytes": sum(p.stat().st_size for p in store)}
        )
    return rows


def _audit(context, settings: Settings, tables, versions, runs, reports, snapshots, landing) -> None:
    audit = audit_log(context, settings)
    model = settings.mlflow.model_name
    events = [
        audit.event("housekept", t["table"], **{k: v for k, v in t.items() if k != "table"}) for t in tables
    ]
    events += [
        audit.event(
            "archived" if v["action"] == "archive" else "deleted",
            f"{model} v{v['version']}",
            reason=v["reason"],
        )
        for v in versions
        if v["action"] != "keep"
    ]
    if runs:
        events.append(audit.event("housekept", f"experiment {settings.mlflow.experiment}", runs_deleted=runs))
    if reports:
        events.append(audit.event("housekept", settings.reports_path, reports_deleted=len(reports)))
    if snapshots:
        events.append(audit.event("housekept", settings.evidently_path, snapshots_deleted=snapshots))
    events += [
        audit.event(
            "archived" if f["now_at"] != "deleted" else "deleted",
            f["file"],
            reason=f"landing file ingested {f['ingested_at']}",
            now_at=f["now_at"],
        )
        for f in landing
    ]
    audit.record_events(events)
