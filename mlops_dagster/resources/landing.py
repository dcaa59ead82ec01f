"""The landing volume as the file-arrival sensor sees it, from wherever the daemon runs.

Locally it is a folder. On Databricks targets it is a Unity Catalog volume (``/Volumes/...``),
which the daemon lists through the Files API (databricks-sdk); the ingestion step itself runs on
a cluster, where the volume is mounted and read as a folder.
"""

from __future__ import annotations

import fnmatch
import os
from abc import ABC, abstractmethod
from datetime import datetime, timezone
from pathlib import Path

from dagster import ConfigurableResource


def landing_files(folder: str, pattern: str) -> list[dict]:
    """Files in a landing folder matching ``pattern``, oldest first, with size and mtime (how the
    ingestion step sees the volume: a local folder, or the volume mounted on the cluster)."""
    root = Path(folder)
    if not root.is_dir():
        return []
    found = []
    for entry in os.scandir(root):
        if entry.is_file() and fnmatch.fnmatch(entry.name, pattern):
            stat = entry.stat()
            found.append({"file_path": str(Path(entry.path).resolve()), "size_bytes": stat.st_size,
                          "modified_at": datetime.fromtimestamp(stat.st_mtime, tz=timezone.utc)})
    return sorted(found, key=lambda f: (f["modified_at"], f["file_path"]))


class LandingVolume(ConfigurableResource, ABC):
    """Where landing folders are listed from (each use case has its own folder)."""

    @abstractmethod
    def files(self, folder: str, pattern: str) -> list[dict]:
        """Files in ``folder`` matching ``pattern`` (``file_path``, ``size_bytes``, ``modified_at``), oldest first."""


class LocalLandingVolume(LandingVolume):
    def files(self, folder, pattern):
        return landing_files(folder, pattern)


class DatabricksLandingVolume(LandingVolume):
    databricks_json: str  # the target's Databricks settings: which variables hold the credentials

    def files(self, folder, pattern):
        from databricks.sdk.errors import NotFound

        from ..settings import DatabricksSettings
        from .databricks import workspace_client

        workspace = workspace_client(DatabricksSettings.model_validate_json(self.databricks_json))
        try:
            entries = list(workspace.files.list_directory_contents(folder))
        except NotFound:
            return []
        found = [
            {"file_path": e.path, "size_bytes": int(e.file_size or 0),
             "modified_at": datetime.fromtimestamp((e.last_modified or 0) / 1000, tz=timezone.utc)}
            for e in entries if not e.is_directory and fnmatch.fnmatch(e.name or "", pattern)
        ]
        return sorted(found, key=lambda f: (f["modified_at"], f["file_path"]))
