"""The landing volume as the file-arrival sensor sees it, from wherever the daemon runs.

Locally it is a folder. On Databricks targets it is a Unity Catalog volume (``/Volumes/...``),
which the daemon lists through the Files API (databricks-sdk); the ingestion step itself runs on
a cluster, where the volume is mounted and read as a folder.
"""

from __future__ import annotations

import fnmatch
from abc import ABC, abstractmethod
from datetime import datetime, timezone

from dagster import ConfigurableResource


class LandingVolume(ConfigurableResource, ABC):
    path: str

    @abstractmethod
    def files(self, pattern: str) -> list[dict]:
        """Files matching ``pattern`` (``file_path``, ``size_bytes``, ``modified_at``), oldest first."""


class LocalLandingVolume(LandingVolume):
    def files(self, pattern):
        from ..assets.ingestion import landing_files

        return landing_files(self.path, pattern)


class DatabricksLandingVolume(LandingVolume):
    settings_json: str  # the target's settings: which variables hold the credentials

    def files(self, pattern):
        from databricks.sdk.errors import NotFound

        from ..settings import Settings
        from .databricks import workspace_client

        workspace = workspace_client(Settings.model_validate_json(self.settings_json).databricks)
        try:
            entries = list(workspace.files.list_directory_contents(self.path))
        except NotFound:
            return []
        found = [
            {"file_path": e.path, "size_bytes": int(e.file_size or 0),
             "modified_at": datetime.fromtimestamp((e.last_modified or 0) / 1000, tz=timezone.utc)}
            for e in entries if not e.is_directory and fnmatch.fnmatch(e.name or "", pattern)
        ]
        return sorted(found, key=lambda f: (f["modified_at"], f["file_path"]))
