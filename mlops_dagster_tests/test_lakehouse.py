"""LocalLakehouse: Delta tables by catalog.schema.table name, versions, time travel and Spark I/O."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from mlops_dagster.resources.lakehouse import TableInfo, TableNotFoundError
from mlops_dagster.resources.local_lakehouse import LocalLakehouse

NAME = "ml_dev_catalog.churn.customers"


@pytest.fixture
def lakehouse(tmp_path: Path) -> LocalLakehouse:
    return LocalLakehouse(root=str(tmp_path / "lakehouse"))


def frame(ids, values) -> pd.DataFrame:
    return pd.DataFrame({"id": pd.Series(ids, dtype="int64"), "value": pd.Series(values, dtype="object")})


def rows(df: pd.DataFrame) -> list[tuple]:
    """Order-independent comparison of a table's rows."""
    return sorted(df.itertuples(index=False, name=None))


@pytest.mark.parametrize("name", ["customers", "churn.customers", "a.b.c.d", "a..c", ".b.c", "a.b."])
def test_names_must_have_three_parts(lakehouse, name):
    with pytest.raises(ValueError, match="catalog.schema.table"):
        lakehouse.location(name)
    with pytest.raises(ValueError, match="catalog.schema.table"):
        lakehouse.write(name, frame([1], ["a"]))


def test_location_maps_to_root_catalog_schema_table(lakehouse, tmp_path):
    assert lakehouse.location(NAME) == str(tmp_path / "lakehouse" / "ml_dev_catalog" / "churn" / "customers")
    assert not lakehouse.exists(NAME)
    info = lakehouse.write(NAME, frame([1], ["a"]))
    assert info.location == lakehouse.location(NAME)
    assert (Path(info.location) / "_delta_log").is_dir()
    assert lakehouse.exists(NAME)
    assert not lakehouse.exists("ml_dev_catalog.churn.other")


def test_overwrite_append_merge_versions_and_rows(lakehouse):
    info = lakehouse.write(NAME, frame([1, 2, 3], ["a", "b", "c"]))
    assert isinstance(info, TableInfo)
    assert (info.name, info.version, info.num_rows, info.operation) == (NAME, 0, 3, "OVERWRITE")
    assert info.columns == [("id", "int64"), ("value", "string")]

    info = lakehouse.write(NAME, frame([4], ["d"]), "append")
    assert (info.version, info.num_rows, info.operation) == (1, 4, "APPEND")

    info = lakehouse.merge(NAME, frame([2, 5], ["B", "e"]), keys=["id"])
    assert (info.version, info.num_rows, info.operation) == (2, 5, "MERGE")
    assert lakehouse.version(NAME) == 2
    # Matching rows updated, new rows inserted, the others untouched.
    assert rows(lakehouse.read(NAME)) == [(1, "a"), (2, "B"), (3, "c"), (4, "d"), (5, "e")]

    info = lakehouse.write(NAME, frame([9], ["z"]))
    assert (info.version, info.num_rows) == (3, 1)
    assert rows(lakehouse.read(NAME)) == [(9, "z")]


def test_merge_on_composite_keys(lakehouse):
    df = pd.DataFrame({"a": [1, 1, 2], "b": ["x", "y", "x"], "v": [1.0, 2.0, 3.0]})
    lakehouse.write(NAME, df)
    lakehouse.merge(NAME, pd.DataFrame({"a": [1, 2], "b": ["y", "y"], "v": [20.0, 40.0]}), keys=["a", "b"])
    assert rows(lakehouse.read(NAME)) == [(1, "x", 1.0), (1, "y", 20.0), (2, "x", 3.0), (2, "y", 40.0)]


def test_merge_creates_a_missing_table(lakehouse):
    info = lakehouse.merge(NAME, frame([1, 2], ["a", "b"]), keys=["id"])
    assert (info.version, info.num_rows, info.operation) == (0, 2, "OVERWRITE")
    assert rows(lakehouse.read(NAME)) == [(1, "a"), (2, "b")]


def test_merge_needs_keys(lakehouse):
    lakehouse.write(NAME, frame([1], ["a"]))
    with pytest.raises(ValueError, match="at least one key"):
        lakehouse.merge(NAME, frame([1], ["b"]), keys=[])
    assert lakehouse.version(NAME) == 0


def test_read_latest_and_time_travel(lakehouse):
    lakehouse.write(NAME, frame([1, 2], ["a", "b"]))
    lakehouse.write(NAME, frame([3], ["c"]), "append")
    lakehouse.merge(NAME, frame([1], ["A"]), keys=["id"])
    assert rows(lakehouse.read(NAME)) == [(1, "A"), (2, "b"), (3, "c")]
    assert rows(lakehouse.read(NAME, version=0)) == [(1, "a"), (2, "b")]
    assert rows(lakehouse.read(NAME, version=1)) == [(1, "a"), (2, "b"), (3, "c")]
    assert lakehouse.read(NAME, columns=["value"]).columns.tolist() == ["value"]
    assert isinstance(lakehouse.read_arrow(NAME, version=0), pa.Table)


def test_history_is_newest_first(lakehouse):
    lakehouse.write(NAME, frame([1], ["a"]), commit_info={"written_by": "test_history"})
    lakehouse.write(NAME, frame([2], ["b"]), "append")
    lakehouse.merge(NAME, frame([1], ["A"]), keys=["id"])
    history = lakehouse.history(NAME)
    assert [h["version"] for h in history] == [2, 1, 0]
    assert [h["operation"] for h in history] == ["MERGE", "WRITE", "WRITE"]
    assert history[-1]["operationParameters"]["mode"] == "Overwrite"
    assert history[1]["operationParameters"]["mode"] == "Append"
    assert history[-1]["written_by"] == "test_history"  # commit_info stamped on the commit
    assert [h["version"] for h in lakehouse.history(NAME, limit=1)] == [2]


def test_restore_brings_back_the_exact_rows(lakehouse):
    original = frame([1, 2, 3], ["a", "b", "c"])
    lakehouse.write(NAME, original)
    lakehouse.write(NAME, frame([4], ["d"]), "append")
    lakehouse.merge(NAME, frame([1, 9], ["X", "Y"]), keys=["id"])
    info = lakehouse.restore(NAME, 0)
    assert (info.version, info.num_rows, info.operation) == (3, 3, "RESTORE")
    assert rows(lakehouse.read(NAME)) == rows(original)
    assert lakehouse.history(NAME)[0]["operation"] == "RESTORE"
    # Restoring is itself a version: the merged state is still reachable.
    assert rows(lakehouse.read(NAME, version=2)) == [(1, "X"), (2, "b"), (3, "c"), (4, "d"), (9, "Y")]


def test_description_and_properties_are_stored_once(lakehouse):
    props = {"quality": "silver", "owner": "ml-team"}
    lakehouse.write(NAME, frame([1], ["a"]), description="Customers", properties=props)
    version = lakehouse.version(NAME)
    assert lakehouse.description(NAME) == "Customers"
    assert {k: lakehouse.properties(NAME)[k] for k in props} == props

    # The same description and properties again: only the data write is a new version.
    info = lakehouse.write(NAME, frame([2], ["b"]), "append", description="Customers", properties=props)
    assert info.version == version + 1
    info = lakehouse.merge(NAME, frame([2], ["B"]), ["id"], description="Customers", properties=props)
    assert info.version == version + 2
    assert lakehouse.version(NAME) == version + 2

    # A changed description or property is committed.
    info = lakehouse.write(
        NAME, frame([3], ["c"]), "append", description="Churn customers", properties={"quality": "gold"}
    )
    assert info.version > version + 3
    assert lakehouse.description(NAME) == "Churn customers"
    assert lakehouse.properties(NAME)["quality"] == "gold"
    assert lakehouse.properties(NAME)["owner"] == "ml-team"


def test_set_properties(lakehouse):
    lakehouse.write(NAME, frame([1], ["a"]))
    assert lakehouse.description(NAME) is None
    lakehouse.set_properties(NAME, {"champion_version": "3"})
    assert lakehouse.properties(NAME)["champion_version"] == "3"
    assert lakehouse.version(NAME) == 1


def test_missing_table_raises_table_not_found(lakehouse):
    missing = "ml_dev_catalog.churn.nothing_here"
    for call in (
        lambda: lakehouse.read(missing),
        lambda: lakehouse.version(missing),
        lambda: lakehouse.history(missing),
        lambda: lakehouse.restore(missing, 0),
    ):
        with pytest.raises(TableNotFoundError, match=missing):
            call()
    assert issubclass(TableNotFoundError, LookupError)


def test_tz_aware_pandas_timestamps_are_stored_as_microseconds_utc(lakehouse):
    when = pd.to_datetime(["2024-03-31 01:30:00.123456", "2024-07-01 12:00:00.000000"]).tz_localize(
        "Europe/Berlin"
    )
    df = pd.DataFrame({"id": [1, 2], "at": when, "naive": when.tz_localize(None)})
    assert str(df["at"].dtype) == "datetime64[ns, Europe/Berlin]"
    lakehouse.write(NAME, df)
    schema = lakehouse.read_arrow(NAME).schema
    assert schema.field("at").type == pa.timestamp("us", tz="UTC")
    back = lakehouse.read(NAME).sort_values("id")
    assert back["at"].tolist() == when.tz_convert("UTC").tolist()


def test_nanosecond_timestamps_are_written_at_microsecond_precision(lakehouse):
    """A pandas ns timestamp with sub-microsecond digits (e.g. from time.time_ns()) must still be writable."""
    when = pd.Series(pd.to_datetime(["2024-01-01 10:00:00.123456789"]).tz_localize("UTC"))
    lakehouse.write(NAME, pd.DataFrame({"id": [1], "at": when}))
    back = lakehouse.read(NAME)
    assert back["at"].iloc[0] == pd.Timestamp("2024-01-01 10:00:00.123456", tz="UTC")


def test_all_null_column_is_written_as_string(lakehouse):
    lakehouse.write(NAME, pd.DataFrame({"id": [1, 2], "note": [None, None]}))
    assert lakehouse.read_arrow(NAME).schema.field("note").type == pa.string()
    assert lakehouse.read(NAME)["note"].isna().all()


def test_write_arrow_table(lakehouse):
    table = pa.table({"id": pa.array([1, 2], pa.int32()), "value": ["a", "b"]})
    info = lakehouse.write(NAME, table)
    assert info.num_rows == 2
    assert lakehouse.read_arrow(NAME).schema.field("id").type == pa.int32()


# --- Spark ---------------------------------------------------------------------------------------


@pytest.mark.integration
def test_spark_round_trip_with_time_travel(spark, lakehouse):
    from datetime import datetime

    schema = "id long, value string, at timestamp"
    noon = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    first = spark.createDataFrame([(1, "a", noon), (2, "b", noon), (3, "c", noon)], schema)
    info = lakehouse.write_spark(NAME, first, description="from spark", commit_info={"by": "spark"})
    assert info.num_rows == 3
    v0 = lakehouse.version(NAME)
    assert lakehouse.description(NAME) == "from spark"
    assert lakehouse.history(NAME)[-1]["by"] == "spark"
    assert lakehouse.read_arrow(NAME).schema.field("at").type == pa.timestamp("us", tz="UTC")
    assert lakehouse.read(NAME)["at"].tolist() == [pd.Timestamp("2024-01-01 12:00", tz="UTC")] * 3

    info = lakehouse.write_spark(NAME, spark.createDataFrame([(4, "d", noon)], schema), "append")
    assert (info.version, info.num_rows, info.operation) == (v0 + 1, 4, "APPEND")
    # The staging Parquet written by Spark is cleaned up.
    staging = Path(lakehouse.root, "_staging")
    assert not staging.exists() or not any(staging.iterdir())

    latest = lakehouse.read_spark(spark, NAME).collect()
    assert sorted((r["id"], r["value"]) for r in latest) == [(1, "a"), (2, "b"), (3, "c"), (4, "d")]
    older = lakehouse.read_spark(spark, NAME, version=v0).collect()
    assert sorted(r["id"] for r in older) == [1, 2, 3]
    # Pandas and Spark agree on the same version.
    assert sorted(lakehouse.read(NAME, version=v0)["id"]) == [1, 2, 3]


@pytest.mark.integration
def test_spark_reads_an_empty_table(spark, lakehouse):
    empty = pd.DataFrame(
        {
            "id": pd.Series([], dtype="int64"),
            "value": pd.Series([], dtype="object"),
            "score": pd.Series([], dtype="float64"),
        }
    )
    info = lakehouse.write(NAME, empty)
    assert info.num_rows == 0
    df = lakehouse.read_spark(spark, NAME)
    assert [(f.name, f.dataType.simpleString()) for f in df.schema.fields] == [
        ("id", "bigint"),
        ("value", "string"),
        ("score", "double"),
    ]
    assert df.collect() == []


@pytest.mark.integration
def test_spark_merge_keeps_history_and_column_comments_cost_no_extra_versions(spark, lakehouse):
    from datetime import datetime

    schema = "id long, at timestamp, value string"
    day1, day2 = (datetime(2026, 1, d, tzinfo=UTC) for d in (1, 2))
    comments = {"value": "what the entity looked like"}
    info = lakehouse.merge_spark(
        NAME,
        spark.createDataFrame([(1, day1, "a"), (2, day1, "b")], schema),
        ["id", "at"],
        column_comments=comments,
    )
    assert (info.version, info.num_rows) == (0, 2)  # comments travel in the first commit
    assert lakehouse.column_comments(NAME) == comments
    # Entity 1 again at a later time: a new row; entity 2 re-sent unchanged: the same row.
    info = lakehouse.merge_spark(
        NAME,
        spark.createDataFrame([(1, day2, "a2"), (2, day1, "b")], schema),
        ["id", "at"],
        column_comments=comments,
    )
    assert (info.version, info.num_rows, info.operation) == (1, 3, "MERGE")
    assert rows(lakehouse.read(NAME)[["id", "value"]]) == [(1, "a"), (1, "a2"), (2, "b")]
    lakehouse.set_column_comments(NAME, {"value": "changed"})
    assert lakehouse.version(NAME) == 2 and lakehouse.column_comments(NAME) == {"value": "changed"}
    with pytest.raises(ValueError, match=r"cannot comment on \['nope'\]: .* has no such column"):
        lakehouse.set_column_comments(NAME, {"nope": "x"})


@pytest.mark.integration
def test_spark_output_is_committed_as_written_not_rewritten(spark, lakehouse, tmp_path):
    df = spark.range(0, 1000, numPartitions=3).selectExpr("id", "cast(id % 7 as string) as value")
    info = lakehouse.write_spark(NAME, df)
    assert (info.version, info.num_rows, lakehouse.row_count(NAME)) == (0, 1000, 1000)
    files = sorted(Path(info.location).glob("*.parquet"))
    # Spark's own part files (moved in), one per partition: delta-rs did not write the data again.
    assert len(files) == 3 and all("part-" in f.name and f.name.endswith(".snappy.parquet") for f in files)
    assert not list(Path(lakehouse.root, "_staging").iterdir())  # the staging folder is gone
    assert sorted(r.id for r in lakehouse.read_spark(spark, NAME).collect()) == list(range(1000))


def test_staged_files_are_merged_and_appended(lakehouse):
    import pyarrow.parquet as pq

    with lakehouse.staging_dir() as staging:
        first, second = Path(staging, "a.parquet"), Path(staging, "b.parquet")
        pq.write_table(pa.Table.from_pandas(frame([1, 2], ["a", "b"]), preserve_index=False), first)
        pq.write_table(pa.Table.from_pandas(frame([2, 3], ["B", "c"]), preserve_index=False), second)
        created = lakehouse.merge_files(NAME, [str(first)], ["id"], description="staged")
        assert (created.version, created.num_rows, created.operation) == (0, 2, "OVERWRITE")
        merged = lakehouse.merge_files(NAME, [str(second)], ["id"])
        assert merged.operation == "MERGE"
    assert not Path(staging).exists()
    assert rows(lakehouse.read(NAME)) == [(1, "a"), (2, "B"), (3, "c")]
    assert lakehouse.description(NAME) == "staged"


def test_appending_staged_files_with_a_new_column_evolves_the_schema(lakehouse):
    import pyarrow.parquet as pq

    lakehouse.write(NAME, frame([1], ["a"]))
    with lakehouse.staging_dir() as staging:
        path = Path(staging, "wider.parquet")
        pq.write_table(pa.table({"id": pa.array([2], pa.int64()), "value": ["b"], "extra": [2.5]}), path)
        lakehouse.write_files(NAME, [str(path)], "append")
    back = lakehouse.read(NAME).sort_values("id")
    assert back["extra"].tolist()[1] == 2.5 and pd.isna(back["extra"].tolist()[0])


def test_writing_no_files_is_refused(lakehouse):
    with pytest.raises(ValueError, match="no Parquet files"):
        lakehouse.write_files(NAME, [], "append")


@pytest.mark.integration
def test_changes_since_a_version_come_from_the_files_added_since_unless_rows_may_be_gone(spark, lakehouse):
    lakehouse.write(NAME, frame([1, 2, 3], ["a", "b", "c"]))
    lakehouse.merge(NAME, frame([3, 4], ["C", "d"]), ["id"])  # v1: a merge rewrites what it touches
    changed = lakehouse.read_spark_changes(spark, NAME, 0)
    assert {(r.id, r.value) for r in changed.collect()} >= {(3, "C"), (4, "d")}
    lakehouse.set_properties(NAME, {"owner": "me"})  # v2: metadata only
    assert lakehouse.read_spark_changes(spark, NAME, 1).count() == 0
    lakehouse.write(NAME, frame([5], ["e"]), "append")  # v3
    assert [r.id for r in lakehouse.read_spark_changes(spark, NAME, 2).collect()] == [5]
    lakehouse.restore(NAME, 1)  # rows may be gone: read it all
    assert lakehouse.read_spark_changes(spark, NAME, 3) is None
    lakehouse.write(NAME, frame([9], ["z"]))  # an overwrite, too
    assert lakehouse.read_spark_changes(spark, NAME, 4) is None


def test_an_append_written_once_is_not_written_again(spark, lakehouse):
    """A run replaying its appends after a crash (``once``: Delta's transaction identifier) adds
    nothing; another identifier appends; a table's first write carries it too."""
    import pyarrow.parquet as pq

    first = lakehouse.write(NAME, frame([1], ["a"]), "append", once="batch-1")
    again = lakehouse.write(NAME, frame([1], ["a"]), "append", once="batch-1")
    assert (first.version, again.version, again.operation) == (0, 0, "NONE (written before)")
    lakehouse.write(NAME, frame([2], ["b"]), "append", once="batch-2")
    with lakehouse.staging_dir() as staging:
        path = Path(staging, "c.parquet")
        pq.write_table(pa.Table.from_pandas(frame([3], ["c"]), preserve_index=False), path)
        lakehouse.write_files(NAME, [str(path)], "append", once="batch-3")
        assert lakehouse.write_files(NAME, [str(path)], "append", once="batch-3").version == 2
    df = spark.createDataFrame(frame([4], ["d"]))
    lakehouse.write_spark(NAME, df, "append", once="batch-4")
    lakehouse.write_spark(NAME, df, "append", once="batch-4")
    lakehouse.write_spark(NAME, df, "append", once="batch-2")
    assert rows(lakehouse.read(NAME)) == [(1, "a"), (2, "b"), (3, "c"), (4, "d")]
    assert lakehouse.version(NAME) == 3
