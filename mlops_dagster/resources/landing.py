"""The landing volume as the file-arrival sensor sees it, from wherever the daemon runs.

Locally it is a folder. On Databricks targets it is a Unity Catalog volume (``/Volumes/...``),
which the daemon lists through the Files API (databricks-sdk); the ingestion step itself runs on
a cluster, where the volume is mounted and read as a folder. On any target it may instead be an
object store URI (``s3://bucket/prefix``, and the other stores Arrow's file systems speak: ``gs://``,
``abfs://``), listed through Arrow with the credentials of the environment (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, ``AWS_ENDPOINT_URL`` for an S3-compatible server, or
the machine's role).
"""

from __future__ import annotations

import fnmatch
import os
from abc import ABC, abstractmethod
from datetime import UTC, datetime
from pathlib import Path

from dagster import ConfigurableResource

from .databricks import DatabricksConfig


def is_uri(folder: str) -> bool:
    """Whether a landing folder is an object store URI (``s3://bucket/prefix``), not a path."""
    return "://" in folder


def landing_file(folder: str, name: str) -> str:
    """The full path (or URI) of landing file ``name`` (a name in ``folder``, or already full)."""
    if is_uri(name):
        return name
    return f"{folder.rstrip('/')}/{name}" if is_uri(folder) else str(Path(folder, name).resolve())


def landing_files(folder: str, pattern: str) -> list[dict]:
    """Files in a landing folder matching ``pattern``, oldest first, with size and mtime (how the
    ingestion step sees the volume: a local folder, the volume mounted on the cluster, or an
    object store prefix)."""
    if is_uri(folder):
        return _object_store_files(folder, pattern)
    root = Path(folder)
    if not root.is_dir():
        return []
    found = []
    for entry in os.scandir(root):
        if entry.is_file() and fnmatch.fnmatch(entry.name, pattern):
            stat = entry.stat()
            found.append(
                {
                    "file_path": str(Path(entry.path).resolve()),
                    "size_bytes": stat.st_size,
                    "modified_at": datetime.fromtimestamp(stat.st_mtime, tz=UTC),
                }
            )
    return sorted(found, key=lambda f: (f["modified_at"], f["file_path"]))


def _object_store_files(folder: str, pattern: str) -> list[dict]:
    import pyarrow.fs as pafs

    scheme = folder.split("://", 1)[0]
    try:
        fs, prefix = pafs.FileSystem.from_uri(folder)
        entries = fs.get_file_info(pafs.FileSelector(prefix, allow_not_found=True))
    except (OSError, ValueError) as error:
        raise OSError(
            f"cannot list the landing folder {folder}: {error}. Credentials come from the environment "
            "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION; AWS_ENDPOINT_URL for an S3-compatible "
            "server) or the machine's role"
        ) from None
    found = [
        {"file_path": f"{scheme}://{e.path}", "size_bytes": e.size, "modified_at": e.mtime.astimezone(UTC)}
        for e in entries
        if e.type == pafs.FileType.File and fnmatch.fnmatch(e.base_name, pattern)
    ]
    return sorted(found, key=lambda f: (f["modified_at"], f["file_path"]))


ARCHIVE = "archive"


def put_aside(folder: str, file_path: str, day: str | None) -> str | None:
    """Move landing file ``file_path`` out of ``folder``'s listing, to ``archive/<day>/`` in it
    (a name already there gets a numbered suffix); delete it when ``day`` is None. Returns where it
    went. Works on a local folder, a volume mounted on the cluster and an object store URI."""
    name = file_path.rstrip("/").rsplit("/", 1)[-1]
    if is_uri(folder):
        import pyarrow.fs as pafs

        fs, source = pafs.FileSystem.from_uri(file_path)
        if day is None:
            fs.delete_file(source)
            return None
        _, target_dir = pafs.FileSystem.from_uri(f"{folder.rstrip('/')}/{ARCHIVE}/{day}")
        fs.create_dir(target_dir, recursive=True)
        target = _free_name(target_dir, name, lambda p: fs.get_file_info(p).type != pafs.FileType.NotFound)
        fs.move(source, target)
        return f"{folder.split('://', 1)[0]}://{target}"
    if day is None:
        Path(file_path).unlink(missing_ok=True)
        return None
    target_dir = Path(folder, ARCHIVE, day)
    target_dir.mkdir(parents=True, exist_ok=True)
    target = _free_name(str(target_dir), name, os.path.exists)
    os.replace(file_path, target)
    return target


def _free_name(directory: str, name: str, exists) -> str:
    stem, dot, suffix = name.partition(".")
    candidate, n = f"{directory}/{name}", 1
    while exists(candidate):
        candidate, n = f"{directory}/{stem}-{n}{dot}{suffix}", n + 1
    return candidate


class LandingVolume(ConfigurableResource, ABC):
    """Where landing folders are listed from (each use case has its own folder)."""

    @abstractmethod
    def files(self, folder: str, pattern: str) -> list[dict]:
        """Files in ``folder`` matching ``pattern`` (``file_path``, ``size_bytes``, ``modified_at``), oldest first."""


class LocalLandingVolume(LandingVolume):
    def files(self, folder, pattern):
        return landing_files(folder, pattern)


class DatabricksLandingVolume(LandingVolume):
    databricks: DatabricksConfig
    """The target's Databricks settings: which variables hold the credentials."""

    def files(self, folder, pattern):
        from databricks.sdk.errors import NotFound

        if is_uri(folder):  # an object store, not a volume: listed the same way everywhere
            return landing_files(folder, pattern)

        from .databricks import workspace_client

        workspace = workspace_client(self.databricks)
        try:
            entries = list(workspace.files.list_directory_contents(folder))
        except NotFound:
            return []
        found = [
            {
                "file_path": e.path,
                "size_bytes": int(e.file_size or 0),
                "modified_at": datetime.fromtimestamp((e.last_modified or 0) / 1000, tz=UTC),
            }
            for e in entries
            if not e.is_directory and fnmatch.fnmatch(e.name or "", pattern)
        ]
        return sorted(found, key=lambda f: (f["modified_at"], f["file_path"]))
