"""Retention: how long what the product writes is kept, and how its small files are compacted."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import SettingsModel


class ModelVersionRetention(SettingsModel):
    """How long registered model versions are kept, by environment (the design's policy). A version
    past its environment's age is archived (tagged ``archived_at``); an archived version past
    `archived` days is deleted (its registration stays in the audit log, so it can be restored).
    A version that holds an alias, serves traffic or is the newest approved or validated one is
    never archived or deleted, whatever its age."""

    local: int = Field(30, ge=1)
    """Days a version is kept before it is archived, on the `local` target."""
    dev: int = Field(30, ge=1)
    """Days a version is kept before it is archived, on `dev`."""
    staging: int = Field(90, ge=1)
    """Days a version is kept before it is archived, on `staging`."""
    prod: int = Field(365, ge=1)
    """Days a version is kept before it is archived, on `prod`."""
    archived: int = Field(730, ge=1)
    """Days an archived version is kept before it is deleted."""

    def days(self, target: str) -> int:
        """Days a version is kept on ``target`` before it is archived."""
        return getattr(self, target)


class RetentionSettings(SettingsModel):
    """What the housekeeping job removes and compacts (`mlops housekeeping`, and its schedule).
    Ages are in days; `null` keeps rows forever. The audit log, the approvals and the tables a model
    was trained from are never pruned."""

    inference_days: int | None = Field(30, ge=1)
    """Rows of the endpoint's inference (capture) table, by `request_time`."""
    prediction_log_days: int | None = Field(90, ge=1)
    """Rows of the prediction log, by `scored_at` (outcomes arriving later than this are not judged)."""
    history_days: int | None = Field(365, ge=1)
    """Rows of the drift and performance history tables, by their report time."""
    quarantine_days: int | None = Field(90, ge=1)
    """Rows of the quarantine tables (raw rows and outcomes that broke their contract)."""
    table_versions_days: int = Field(7, ge=0)
    """Old Delta versions of those tables (time travel): files no version of the last this many days
    reads are vacuumed, and a restore to an older version is refused."""
    reports_days: int | None = Field(90, ge=1)
    """HTML drift and performance reports of the use case, and their snapshots in the Evidently
    workspace (its monitoring UI)."""
    landing_days: int | None = Field(30, ge=1)
    """Landing files (the dataset's and the outcomes') ingested this many days ago and unchanged
    since: archived (or deleted, `landing_action`). A file still to ingest is never touched."""
    landing_action: Literal["archive", "delete"] = "archive"
    """`archive`: move the file to `archive/<day ingested>/` in its landing folder (out of the
    folder ingestion lists; move it back to ingest it again). `delete`: remove it."""
    unregistered_runs_days: int | None = Field(30, ge=1)
    """MLflow runs of the use case's experiment that produced no registered version (deleted)."""
    model_versions: ModelVersionRetention = ModelVersionRetention()
    """Registered model versions, by environment."""
    compact_target_mb: int = Field(128, ge=1)
    """Compaction rewrites small files of those tables into files of about this size."""
    zorder: bool = False
    """Compaction also Z-orders the files by the table's time column (rewrites every file: worth it
    only where monitoring reads a time range of a table whose appends arrive out of order)."""
