"""The online store on a real SQLite file and a real PostgreSQL server: publish, look up by key,
replace atomically, and say clearly what is wrong."""

from __future__ import annotations

import pandas as pd
import pytest

from mlops_dagster.resources.online_store import OnlineTableNotFoundError
from mlops_dagster.resources.postgres_online_store import PostgresOnlineStore
from mlops_dagster.resources.sqlite_online_store import SqliteOnlineStore

TABLE = "ml.fs.customer_features"
FRAME = pd.DataFrame(
    {
        "customerID": ["A", "B", "C"],
        "_ingested_at": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03"], utc=True),
        "tenure": [1.0, float("nan"), 30.0],
        "contract": ["Month-to-month", "One year", None],
    }
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def store(request, tmp_path, monkeypatch):
    if request.param == "sqlite":
        store = SqliteOnlineStore(path=str(tmp_path / "online" / "features.db"))
    else:
        monkeypatch.setenv("TEST_ONLINE_DSN", request.getfixturevalue("postgres_dsn"))
        store = PostgresOnlineStore(dsn_env="TEST_ONLINE_DSN")
        with store._transaction(store._connection()) as cur:  # a clean slate in the shared server
            cur.execute(
                'DROP TABLE IF EXISTS "ml__fs__customer_features", "ml__fs__pairs", mlops_online_tables'
            )
    yield store
    store.close()


def test_publish_then_look_up_single_keys_and_batches(store):
    info = store.publish(TABLE, FRAME, ["customerID"], delta_version=4)
    assert (info.rows, info.delta_version, info.online_table) == (3, 4, "ml__fs__customer_features")
    assert store.published_version(TABLE) == 4
    assert store.lookup(TABLE, ["customerID"], [("A",)], ["tenure", "contract"]) == {
        ("A",): {"tenure": 1.0, "contract": "Month-to-month"}
    }
    found = store.lookup(TABLE, ["customerID"], [("C",), ("B",), ("nobody",)], ["contract", "tenure"])
    assert found == {
        ("B",): {"contract": "One year", "tenure": None},
        ("C",): {"contract": None, "tenure": 30.0},
    }
    assert store.lookup(TABLE, ["customerID"], [], ["tenure"]) == {}


def test_a_new_publish_replaces_rows_and_columns(store):
    store.publish(TABLE, FRAME, ["customerID"], delta_version=4)
    newer = pd.DataFrame({"customerID": ["A", "D"], "tenure": [2.0, 7.0], "plan": ["pro", "basic"]})
    store.publish(TABLE, newer, ["customerID"], delta_version=5)
    assert store.published_version(TABLE) == 5
    found = store.lookup(TABLE, ["customerID"], [("A",), ("B",), ("D",)], ["tenure", "plan"])
    assert found == {("A",): {"tenure": 2.0, "plan": "pro"}, ("D",): {"tenure": 7.0, "plan": "basic"}}


def test_composite_keys(store):
    pairs = pd.DataFrame({"store": ["s1", "s1", "s2"], "item": [1, 2, 1], "price": [9.5, 3.0, 9.0]})
    store.publish("ml.fs.pairs", pairs, ["store", "item"], delta_version=0)
    found = store.lookup("ml.fs.pairs", ["store", "item"], [("s1", 2), ("s2", 1), ("s2", 2)], ["price"])
    assert found == {("s1", 2): {"price": 3.0}, ("s2", 1): {"price": 9.0}}


def test_unpublished_tables_and_duplicate_keys_are_refused_clearly(store):
    assert store.published_version("ml.fs.never") is None  # nothing published at all yet
    store.publish(TABLE, FRAME, ["customerID"], delta_version=1)
    assert store.published_version("ml.fs.never") is None
    with pytest.raises(
        OnlineTableNotFoundError, match="feature table ml.fs.never is not in the online store"
    ):
        store.lookup("ml.fs.never", ["customerID"], [("A",)], ["tenure"])
    with pytest.raises(ValueError, match=r"1 duplicated \['customerID'\] row\(s\)"):
        store.publish(TABLE, pd.concat([FRAME, FRAME.head(1)]), ["customerID"], delta_version=2)
    assert store.published_version(TABLE) == 1  # the failed publish changed nothing
    with pytest.raises(ValueError, match="must be letters, digits and underscores"):
        store.publish("ml.fs.bad-name", FRAME, ["customerID"], delta_version=0)


@pytest.mark.integration
def test_postgres_dsn_comes_from_the_environment_and_its_password_is_never_shown(postgres_dsn, monkeypatch):
    password = postgres_dsn.split(":")[2].split("@")[0]
    monkeypatch.setenv("TEST_ONLINE_DSN", postgres_dsn)
    store = PostgresOnlineStore(dsn_env="TEST_ONLINE_DSN")
    described = store.describe()
    assert described.startswith("postgresql://127.0.0.1:") and "$TEST_ONLINE_DSN" in described
    assert password not in described and password not in store.model_dump_json()
    info = store.publish(TABLE, FRAME, ["customerID"], delta_version=3)
    assert password not in repr(info)
    store.close()

    monkeypatch.delenv("TEST_ONLINE_DSN")
    with pytest.raises(RuntimeError, match=r"needs its DSN in \$TEST_ONLINE_DSN"):
        PostgresOnlineStore(dsn_env="TEST_ONLINE_DSN").published_version(TABLE)
    monkeypatch.setenv("TEST_ONLINE_DSN", postgres_dsn.replace(password, "wrong-password"))
    with pytest.raises(RuntimeError, match="cannot connect to the PostgreSQL online store") as refused:
        PostgresOnlineStore(dsn_env="TEST_ONLINE_DSN").published_version(TABLE)
    assert "wrong-password" not in str(refused.value)


def test_an_incremental_publish_upserts_changed_keys_and_never_goes_back_in_time(store):
    store.publish(TABLE, FRAME, ["customerID"], delta_version=4)
    changed = pd.DataFrame(
        {
            "customerID": ["A", "B", "E"],
            # B's row is older than the one already online (a late backfill): it must not replace it.
            "_ingested_at": pd.to_datetime(["2026-02-01", "2026-01-01", "2026-02-01"], utc=True),
            "tenure": [7.0, 99.0, 3.0],
            "contract": ["Two year", "Month-to-month", "One year"],
        }
    )
    info = store.publish(
        TABLE, changed, ["customerID"], delta_version=6, incremental=True, newest="_ingested_at"
    )
    assert (info.incremental, info.rows, store.published_version(TABLE)) == (True, 3, 6)
    found = store.lookup(TABLE, ["customerID"], [("A",), ("B",), ("C",), ("E",)], ["tenure", "contract"])
    assert found == {
        ("A",): {"tenure": 7.0, "contract": "Two year"},  # updated
        ("B",): {"tenure": None, "contract": "One year"},  # kept: the newer row stays
        ("C",): {"tenure": 30.0, "contract": None},  # not in the change: untouched
        ("E",): {"tenure": 3.0, "contract": "One year"},
    }  # new key
    assert store.published_columns(TABLE) == ["customerID", "_ingested_at", "tenure", "contract"]


def test_a_publish_loads_a_stream_of_batches_and_reports_each(store):
    import pyarrow as pa

    table = pa.Table.from_pandas(
        pd.DataFrame({"customerID": [f"c{i}" for i in range(250)], "tenure": [float(i) for i in range(250)]}),
        preserve_index=False,
    )
    batches = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=100))
    seen = []
    info = store.publish(TABLE, batches, ["customerID"], delta_version=9, progress=seen.append)
    assert (info.rows, seen) == (250, [100, 100, 50])
    assert store.lookup(TABLE, ["customerID"], [("c249",)], ["tenure"]) == {("c249",): {"tenure": 249.0}}


@pytest.mark.parametrize("incremental", [False, True])
def test_a_publish_that_fails_midway_leaves_the_previous_version_and_no_staging_table(store, incremental):
    import pyarrow as pa

    store.publish(TABLE, FRAME, ["customerID"], delta_version=4)
    first = pa.RecordBatch.from_pandas(FRAME.assign(tenure=[5.0, 6.0, 7.0]), preserve_index=False)

    def broken():  # the source dies after its first batch (e.g. the Spark job behind it failed)
        yield first
        raise OSError("the source went away")

    with pytest.raises(OSError, match="the source went away"):
        store.publish(
            TABLE,
            pa.RecordBatchReader.from_batches(first.schema, broken()),
            ["customerID"],
            5,
            incremental=incremental,
            newest="_ingested_at",
        )
    assert store.published_version(TABLE) == 4
    assert store.lookup(TABLE, ["customerID"], [("A",)], ["tenure"]) == {("A",): {"tenure": 1.0}}
    names = [
        r[0]
        for r in store._query(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
            if isinstance(store, SqliteOnlineStore)
            else "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()",
            [],
        )
    ]
    assert "ml__fs__customer_features" in names and not [n for n in names if n.endswith("__staging")]


def test_times_are_stored_as_fixed_width_utc_text_row_by_row(store):
    """Each row's time as ISO-8601 text in UTC (fixed width, so text order is time order), repeated
    times and missing ones included (times are formatted once per distinct value)."""
    times = pd.DataFrame(
        {
            "customerID": ["A", "B", "C", "D"],
            "_ingested_at": pd.to_datetime(
                ["2026-01-01 00:00:00", "2026-01-01 00:00:00", None, "2026-03-04 13:05:09.750"],
                format="ISO8601",
            ).tz_localize("Europe/Paris"),
            "tenure": [1.0, 2.0, 3.0, 4.0],
        }
    )
    store.publish(TABLE, times, ["customerID"], delta_version=1)
    with store._transaction(store._connection()) as cur:
        cur.execute(
            'SELECT "customerID", "_ingested_at" FROM "ml__fs__customer_features" ORDER BY "customerID"'
        )
        stored = cur.fetchall()
    assert [tuple(row) for row in stored] == [
        ("A", "2025-12-31T23:00:00.000000Z"),
        ("B", "2025-12-31T23:00:00.000000Z"),
        ("C", None),
        ("D", "2026-03-04T12:05:09.750000Z"),
    ]
