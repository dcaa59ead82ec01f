"""Which landing files a run ingests and what it reports of each (pure, no Spark)."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from mlops_dagster.ml.arrivals import (
    asked_for,
    file_message,
    file_outcomes,
    last_source_read,
    missing_files,
    unseen_files,
)
from mlops_dagster.ml.landing_tasks import LandingFile

T1 = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
T2 = datetime(2026, 1, 2, 8, 0, tzinfo=UTC)
LISTING = [
    {"file_path": "/l/a.csv", "size_bytes": 10, "modified_at": T1},
    {"file_path": "/l/b.csv", "size_bytes": 20, "modified_at": T1},
    {"file_path": "/l/c.csv", "size_bytes": 30, "modified_at": T2},
]


def test_files_asked_for_keep_the_listing_order_and_the_missing_are_named():
    assert asked_for(LISTING, {"/l/c.csv", "/l/a.csv"}) == [LISTING[0], LISTING[2]]
    assert missing_files(LISTING, {"/l/z.csv", "/l/a.csv", "/l/y.csv"}) == ["/l/y.csv", "/l/z.csv"]
    assert missing_files(LISTING, {"/l/b.csv"}) == []


def test_a_file_is_new_until_ingested_and_new_again_when_changed():
    seen = {
        ("/l/a.csv", 10, pd.Timestamp(T1)),  # unchanged: skipped
        ("/l/b.csv", 19, pd.Timestamp(T1)),  # grew since: new again
        ("/l/c.csv", 30, pd.Timestamp(T1)),
    }  # touched since: new again
    assert unseen_files(LISTING, seen) == [LISTING[1], LISTING[2]]
    assert unseen_files(LISTING, set()) == LISTING


def test_outcomes_of_the_ingested_files():
    clean = LandingFile(0, "/l/a.csv", data_rows=5, rows_loaded=5)
    dirty = LandingFile(
        1, "/l/b.csv", data_rows=4, rows_loaded=2, rows_quarantined=2, duplicated_rows=2, extra_columns=["x"]
    )
    logged, report = file_outcomes(LISTING[:2], [clean, dirty], "id")
    problems = (
        "ignored column(s) not in the dataset contract: x; 2 rows share a id with another row of the file; "
        "2 of 4 rows quarantined"
    )
    assert logged == [
        {**LISTING[0], "rows_read": 5, "rows_loaded": 5, "rows_quarantined": 0, "problems": ""},
        {**LISTING[1], "rows_read": 4, "rows_loaded": 2, "rows_quarantined": 2, "problems": problems},
    ]
    assert report == [
        {"file": "a.csv", "rows_read": 5, "rows_loaded": 5, "rows_quarantined": 0, "problems": ""},
        {"file": "b.csv", "rows_read": 4, "rows_loaded": 2, "rows_quarantined": 2, "problems": problems},
    ]
    assert LISTING[0] == {
        "file_path": "/l/a.csv",
        "size_bytes": 10,
        "modified_at": T1,
    }  # not changed in place
    assert file_message(clean, "id") == (False, "/l/a.csv: 5 rows loaded, 0 quarantined")
    assert file_message(LandingFile(2, "/l/e.csv", refusal="empty file"), "id") == (
        True,
        "/l/e.csv: 0 rows loaded, 0 quarantined (empty file)",
    )


def test_the_last_read_of_a_source_is_its_newest_row():
    log = pd.DataFrame(
        {
            "source": ["delta:t", "pg:q", "delta:t"],
            "source_version": pd.array([4, None, 2], dtype="Int64"),
            "watermark": pd.array([None, "2026-01-02", None], dtype="string"),
            "ingested_at": [pd.Timestamp(T2), pd.Timestamp(T2), pd.Timestamp(T1)],  # not in time order
        }
    )
    assert last_source_read(log, "delta:t") == {"source_version": 4, "watermark": None}
    assert last_source_read(log, "pg:q") == {"source_version": None, "watermark": "2026-01-02"}
    assert last_source_read(log, "other") is None


def test_a_table_read_is_named_by_its_label():
    f = LandingFile(0, "delta:t@v3", "table", data_rows=2, rows_loaded=2)
    assert file_message(f, "id", "delta:t@v3") == (False, "delta:t@v3: 2 rows loaded, 0 quarantined")
