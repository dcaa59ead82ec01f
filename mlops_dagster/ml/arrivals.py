"""Which landing files a run ingests, and what it says of each: pure functions over a folder's
listing (``file_path``, ``size_bytes``, ``modified_at`` per file) and the files' check results
(``landing.LandingFile``). No Dagster, no Spark."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # its module loads Arrow and NumPy: not at code-location load
    from .landing_tasks import LandingFile


def missing_files(candidates: list[dict], wanted: set[str]) -> list[str]:
    """The files asked for that the listing does not hold, sorted."""
    return sorted(wanted - {c["file_path"] for c in candidates})


def asked_for(candidates: list[dict], wanted: set[str]) -> list[dict]:
    """The listed files asked for, in listing order (oldest first)."""
    return [c for c in candidates if c["file_path"] in wanted]


def unseen_files(candidates: list[dict], seen: set[tuple]) -> list[dict]:
    """The listed files not yet ingested: a file is seen as (path, size, modification time), so a
    changed file is new again. ``seen`` holds pandas Timestamps (as the landing file log reads)."""
    import pandas as pd

    return [
        c for c in candidates if (c["file_path"], c["size_bytes"], pd.Timestamp(c["modified_at"])) not in seen
    ]


def file_outcomes(
    candidates: list[dict], files: list[LandingFile], key: str
) -> tuple[list[dict], list[dict]]:
    """(the landing file log's rows, the per-file report) of the ingested ``candidates``, whose
    check results are ``files`` in the same order: rows read, loaded and quarantined, and the
    file's problems joined by '; '."""
    logged, report = [], []
    for candidate, f in zip(candidates, files):
        counts = {
            "rows_read": f.rows_read,
            "rows_loaded": f.rows_loaded,
            "rows_quarantined": f.rows_quarantined,
            "problems": "; ".join(f.problems(key)),
        }
        logged.append({**candidate, **counts})
        report.append({"file": Path(f.path).name, **counts})
    return logged + candidates[len(logged) :], report


def file_message(f: LandingFile, key: str, name: str | None = None) -> tuple[bool, str]:
    """(whether to warn, the log line) of one ingested file (named by its path, or ``name``)."""
    problems = f.problems(key)
    return bool(problems), (
        f"{name or f.path}: {f.rows_loaded} rows loaded, {f.rows_quarantined} quarantined"
        + (f" ({'; '.join(problems)})" if problems else "")
    )


def last_source_read(log, source: str) -> dict | None:
    """The newest read of ``source`` in the source table log (a pandas frame with ``source``,
    ``source_version``, ``watermark``, ``ingested_at``): its version and watermark (None when not
    recorded), or None when the source was never read."""
    reads = log[log["source"] == source].sort_values("ingested_at")  # a table has no row order
    if not len(reads):
        return None
    newest = reads.iloc[-1]
    return {
        "source_version": None if newest.isna()["source_version"] else newest["source_version"],
        "watermark": None if newest.isna()["watermark"] else newest["watermark"],
    }
