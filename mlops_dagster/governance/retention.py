"""Retention policy: which rows, table versions, files, runs and model versions are past their age.

Pure decisions on plain values (the housekeeping asset gathers the facts and applies the verdicts).
A model version that holds an alias, serves traffic or is the newest approved one is kept whatever
its age; an archived version is deleted only after its own, longer, retention.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

ARCHIVED_TAG = "archived_at"


@dataclass(frozen=True)
class TablePolicy:
    """A table written in small appends: its rows are kept ``keep_days`` by ``time_column``
    (None: forever), and it is compacted and vacuumed."""

    table: str
    time_column: str
    keep_days: int | None


def housekept_tables(settings) -> list[TablePolicy]:
    """The use case's tables that grow by appends, with the column their age is told by. The
    audit log, approvals and the tables models are trained from are not among them."""
    names, keep = settings.names, settings.retention
    return [
        TablePolicy(settings.inference_table(), "request_time", keep.inference_days),
        TablePolicy(settings.table(names.prediction_log), "scored_at", keep.prediction_log_days),
        TablePolicy(settings.table(names.drift_metrics), "report_time", keep.history_days),
        TablePolicy(settings.table(names.model_performance), "evaluated_at", keep.history_days),
        TablePolicy(settings.table(names.quarantine), "quarantined_at", keep.quarantine_days),
        TablePolicy(settings.table(names.ground_truth_quarantine), "quarantined_at", keep.quarantine_days),
    ]


def measured_tables(settings) -> list[str]:
    """Every table of the use case whose disk use housekeeping reports."""
    names = settings.names
    own = [
        names.raw,
        names.features,
        names.labels,
        names.training_set,
        names.predictions,
        names.ground_truth,
    ]
    return [settings.table(n) for n in own] + [p.table for p in housekept_tables(settings)]


def cutoff(now: datetime, keep_days: int | None) -> datetime | None:
    """Rows (or files) older than this are past ``keep_days``; None keeps everything."""
    return None if keep_days is None else now - timedelta(days=keep_days)


def _as_datetime(value) -> datetime:
    """A Delta commit's timestamp: milliseconds since the epoch (delta-rs) or a datetime (Spark)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(int(value) / 1000, UTC)


def oldest_restorable(history: list[dict], now: datetime, keep_days: int) -> int:
    """The oldest version of a table a restore may bring back when versions are kept ``keep_days``.

    A version's files are removed by the commits after it, and vacuum deletes files removed before
    the cutoff: version v stays whole while the commit that replaced it (v + 1) is younger than the
    cutoff. The current version is always restorable."""
    edge = now - timedelta(days=keep_days)
    commits = {int(c["version"]): _as_datetime(c["timestamp"]) for c in history}
    current = max(commits)
    return min(v for v in commits if v == current or (v + 1 in commits and commits[v + 1] >= edge))


def restorable_from(settings, table: str, history: list[dict], now: datetime) -> int:
    """The oldest version of ``table`` a restore may bring back: 0 for a table housekeeping never
    vacuums, else as ``oldest_restorable`` under ``retention.table_versions_days``."""
    if table not in {p.table for p in housekept_tables(settings)}:
        return 0
    return oldest_restorable(history, now, settings.retention.table_versions_days)


@dataclass(frozen=True)
class VersionFacts:
    """What retention needs to know about a registered model version."""

    version: str
    created: datetime
    aliases: tuple[str, ...] = ()
    serving: bool = False
    approved: bool = False
    archived_at: datetime | None = None


@dataclass(frozen=True)
class VersionVerdict:
    version: str
    action: str  # "keep", "archive" or "delete"
    reason: str


def version_verdicts(
    versions: list[VersionFacts], now: datetime, keep_days: int, archived_days: int
) -> list[VersionVerdict]:
    """Each version's fate: archived past ``keep_days``, deleted ``archived_days`` after it was
    archived, kept while it holds an alias, serves traffic or is the newest approved version."""
    approved = [v for v in versions if v.approved]
    last_approved = max(approved, key=lambda v: int(v.version)).version if approved else None
    verdicts = []
    for v in versions:
        if v.aliases:
            verdict = ("keep", f"holds alias {', '.join(v.aliases)}")
        elif v.serving:
            verdict = ("keep", "serves traffic")
        elif v.version == last_approved:
            verdict = ("keep", "newest approved version")
        elif v.archived_at is not None and now - v.archived_at > timedelta(days=archived_days):
            verdict = ("delete", f"archived more than {archived_days} days ago")
        elif v.archived_at is None and now - v.created > timedelta(days=keep_days):
            verdict = ("archive", f"older than {keep_days} days")
        else:
            verdict = ("keep", "within retention")
        verdicts.append(VersionVerdict(v.version, *verdict))
    return verdicts


def runs_to_delete(
    runs: list[tuple[str, datetime]], registered: set[str], now: datetime, keep_days: int | None
) -> list[str]:
    """Runs (id, start time) older than ``keep_days`` that produced no registered version."""
    edge = cutoff(now, keep_days)
    if edge is None:
        return []
    return [run_id for run_id, started in runs if run_id not in registered and started < edge]


def files_to_delete(files: list[tuple[str, datetime]], now: datetime, keep_days: int | None) -> list[str]:
    """Files (path, modified) older than ``keep_days``."""
    edge = cutoff(now, keep_days)
    return [] if edge is None else [path for path, modified in files if modified < edge]


def landing_files_to_tidy(
    files: list[dict], ingested: dict[tuple, datetime], now: datetime, keep_days: int | None
) -> list[tuple[dict, datetime]]:
    """The landing files (``file_path``, ``size_bytes``, ``modified_at``) whose present content was
    ingested more than ``keep_days`` ago, each with when: ``ingested`` maps (path, size, mtime) to
    the newest ingestion of that content. A file never ingested, or changed since, is not among them."""
    import pandas as pd

    edge = cutoff(now, keep_days)
    if edge is None:
        return []
    tidy = []
    for f in files:
        at = ingested.get((f["file_path"], f["size_bytes"], pd.Timestamp(f["modified_at"])))
        if at is not None and _as_datetime(at) < edge:
            tidy.append((f, _as_datetime(at)))
    return tidy
