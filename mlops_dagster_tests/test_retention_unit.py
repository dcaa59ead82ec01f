"""Retention policy on hand-made cases, and the local lakehouse's delete, compaction and vacuum on
real Delta tables: rows past their age go, every other row stays, a dry run writes nothing."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from mlops_dagster.governance.recovery import restore_refusal
from mlops_dagster.governance.retention import (
    VersionFacts,
    files_to_delete,
    landing_files_to_tidy,
    oldest_restorable,
    runs_to_delete,
    version_verdicts,
)
from mlops_dagster.resources.local_lakehouse import LocalLakehouse

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)


def days_ago(n: float) -> datetime:
    return NOW - timedelta(days=n)


@pytest.mark.parametrize(
    ("facts", "action", "reason"),
    [
        (VersionFacts("1", days_ago(10)), "keep", "within retention"),
        (VersionFacts("1", days_ago(31)), "archive", "older than 30 days"),
        (VersionFacts("1", days_ago(400), aliases=("champion",)), "keep", "holds alias champion"),
        (VersionFacts("1", days_ago(400), aliases=("challenger",)), "keep", "holds alias challenger"),
        (VersionFacts("1", days_ago(400), serving=True), "keep", "serves traffic"),
        (
            VersionFacts("1", days_ago(900), serving=True, archived_at=days_ago(800)),
            "keep",
            "serves traffic",
        ),
        (VersionFacts("1", days_ago(400), archived_at=days_ago(300)), "keep", "within retention"),
        (
            VersionFacts("1", days_ago(900), archived_at=days_ago(731)),
            "delete",
            "archived more than 730 days ago",
        ),
        (VersionFacts("1", days_ago(900), approved=True), "keep", "newest approved version"),
    ],
)
def test_a_model_version_is_archived_then_deleted_unless_something_needs_it(facts, action, reason):
    [verdict] = version_verdicts([facts], NOW, keep_days=30, archived_days=730)
    assert (verdict.version, verdict.action, verdict.reason) == ("1", action, reason)


def test_only_the_newest_approved_version_is_kept_for_being_approved():
    versions = [VersionFacts(str(v), days_ago(100), approved=True) for v in (2, 10, 9)]
    verdicts = {v.version: v.action for v in version_verdicts(versions, NOW, 30, 730)}
    assert verdicts == {"2": "archive", "10": "keep", "9": "archive"}  # 10 > 9 as numbers


def test_runs_past_their_age_that_registered_nothing_are_deleted():
    runs = [("young", days_ago(29)), ("old", days_ago(31)), ("registered", days_ago(400))]
    assert runs_to_delete(runs, {"registered"}, NOW, 30) == ["old"]
    assert runs_to_delete(runs, set(), NOW, None) == []


def test_landing_files_are_tidied_only_when_their_present_content_was_ingested_past_the_age():
    def listed(name, size=10):
        return {"file_path": f"/landing/{name}", "size_bytes": size, "modified_at": days_ago(50)}

    ingested = {
        ("/landing/old.csv", 10, pd.Timestamp(days_ago(50))): pd.Timestamp(days_ago(40)),
        ("/landing/young.csv", 10, pd.Timestamp(days_ago(50))): pd.Timestamp(days_ago(29)),
        ("/landing/changed.csv", 10, pd.Timestamp(days_ago(50))): pd.Timestamp(days_ago(40)),
    }
    files = [listed("old.csv"), listed("young.csv"), listed("changed.csv", size=11), listed("never.csv")]
    tidy = landing_files_to_tidy(files, ingested, NOW, 30)
    assert [(f["file_path"], at) for f, at in tidy] == [("/landing/old.csv", days_ago(40))]
    assert landing_files_to_tidy(files, ingested, NOW, None) == []  # kept forever


def test_files_past_their_age_are_deleted():
    files = [("a.html", days_ago(91)), ("b.html", days_ago(89))]
    assert files_to_delete(files, NOW, 90) == ["a.html"]
    assert files_to_delete(files, NOW, None) == []


def commits(*ages_in_days: float) -> list[dict]:
    """A table's history, version 0 first, each commit ``age`` days old (delta-rs' milliseconds)."""
    return [
        {"version": v, "timestamp": int(days_ago(age).timestamp() * 1000)}
        for v, age in enumerate(ages_in_days)
    ]


@pytest.mark.parametrize(
    ("ages", "keep_days", "oldest"),
    [
        ((30, 20, 10, 5, 1), 7, 2),  # v2 was replaced 5 days ago (by v3): its files are still kept
        ((30, 20, 10, 5, 1), 0, 4),  # nothing kept but the current version
        ((30, 20, 10, 5, 1), 60, 0),
        ((30,), 7, 0),  # the only version is the current one
        ((30, 20), 7, 1),
    ],
)
def test_the_oldest_restorable_version_is_the_one_replaced_within_the_retention(ages, keep_days, oldest):
    assert oldest_restorable(commits(*ages), NOW, keep_days) == oldest


def test_a_spark_history_with_datetimes_gives_the_same_answer():
    history = [
        {"version": v, "timestamp": days_ago(a).replace(tzinfo=None)} for v, a in enumerate((30, 5, 1))
    ]
    assert oldest_restorable(history, NOW, 7) == 0


def test_restoring_past_the_retention_is_refused_naming_the_oldest_restorable_version():
    assert restore_refusal("c.s.t", 2, 4, oldest=2) is None
    assert restore_refusal("c.s.t", 1, 4, oldest=2) == (
        "c.s.t version 1 is past its retention (retention.table_versions_days): "
        "the oldest version still restorable is 2"
    )


# The local lakehouse on real Delta tables.

NAME = "cat.sch.capture"


@pytest.fixture
def lakehouse(tmp_path: Path) -> LocalLakehouse:
    return LocalLakehouse(root=str(tmp_path / "lakehouse"))


def appended(lakehouse: LocalLakehouse, days: int, per_day: int = 3) -> None:
    """One small append per day, ``days`` days up to NOW, ``per_day`` rows each."""
    for d in range(days):
        at = days_ago(days - 1 - d)
        lakehouse.write(
            NAME,
            pd.DataFrame(
                {"request_id": [f"{d}-{i}" for i in range(per_day)], "request_time": [at] * per_day}
            ),
            "append",
        )


def checksum(lakehouse: LocalLakehouse) -> tuple[int, str]:
    rows = lakehouse.read(NAME).sort_values("request_id")
    return len(rows), hashlib.sha256(rows.to_csv(index=False).encode()).hexdigest()


def test_delete_older_than_deletes_exactly_the_rows_past_the_cutoff(lakehouse):
    appended(lakehouse, 10)
    edge = days_ago(4.5)
    expected = lakehouse.read(NAME).query("request_time >= @edge")
    version = lakehouse.version(NAME)

    assert lakehouse.delete_older_than(NAME, "request_time", edge, dry_run=True) == 15
    assert lakehouse.version(NAME) == version  # a dry run writes nothing
    assert lakehouse.delete_older_than(NAME, "request_time", edge) == 15
    assert sorted(lakehouse.read(NAME)["request_id"]) == sorted(expected["request_id"])
    assert lakehouse.delete_older_than(NAME, "request_time", edge) == 0


def test_compaction_keeps_every_row_and_bounds_the_file_count(lakehouse):
    appended(lakehouse, 12)
    before = checksum(lakehouse)
    assert lakehouse.size(NAME).files == 12

    lakehouse.compact(NAME, target_mb=128)

    assert checksum(lakehouse) == before
    size = lakehouse.size(NAME)
    assert size.files == 1
    assert size.disk_bytes > size.bytes  # the small files stay until vacuumed

    assert lakehouse.vacuum(NAME, retain_hours=0, dry_run=True) == 12
    assert lakehouse.size(NAME).disk_bytes == size.disk_bytes  # a dry run deletes nothing
    assert lakehouse.vacuum(NAME, retain_hours=0) == 12
    assert lakehouse.size(NAME).disk_bytes < size.disk_bytes
    assert checksum(lakehouse) == before


def test_compaction_with_zorder_keeps_every_row(lakehouse):
    appended(lakehouse, 5)
    before = checksum(lakehouse)
    lakehouse.compact(NAME, target_mb=128, zorder_by="request_time")
    assert checksum(lakehouse) == before and lakehouse.size(NAME).files == 1
