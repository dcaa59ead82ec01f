"""Rows sharing their key, found by sorting hashes in Arrow tasks: every repeated key is found,
whatever partition its rows land in, with and without sending the repeated hashes to every task."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pytest

from mlops_dagster.ml import repeated_keys
from mlops_dagster.ml.repeated_keys import HASH, repeated_hashes, rows_sharing_keys


def test_a_tasks_repeated_hashes_are_those_in_more_than_one_row_across_its_batches():
    batches = [
        pa.RecordBatch.from_arrays([pa.array(v, pa.int64())], names=[HASH])
        for v in ([5, -3, 9], [9, 7], [-3, -3, 11])
    ]
    (out,) = list(repeated_hashes(iter(batches)))
    assert sorted(out.column(0).to_pylist()) == [-3, 9]
    (empty,) = list(repeated_hashes(iter([])))
    assert empty.num_rows == 0


@pytest.mark.parametrize(
    "grouped_up_to, sent",
    [(10**9, 0), (0, 1_000_000), (0, 1)],
    ids=["keys grouped", "hashes sent to every task", "hashes shuffled"],
)
def test_every_row_sharing_its_key_is_found_and_no_other(spark, monkeypatch, grouped_up_to, sent):
    monkeypatch.setattr(repeated_keys, "GROUPED_UP_TO", grouped_up_to)
    monkeypatch.setattr(repeated_keys, "_SENT", sent)
    rows = [(f"k{i}", i % 3, i) for i in range(5_000)]
    rows += [
        ("k17", 17 % 3, 90_001),
        ("k17", 17 % 3, 90_002),
        ("k4000", 4000 % 3, 90_003),
        ("k5", 0, 90_004),  # k5 with another part: not the same key
        (None, 1, 90_005),
        (None, 1, 90_006),
    ]  # null keys are equal to each other, as grouping says
    df = spark.createDataFrame(rows, "key string, part long, line long").repartition(7)
    monkeypatch.setattr(repeated_keys, "ROWS_PER_TASK", 500)  # many tasks: a key's rows meet by hash

    sharing = rows_sharing_keys(df, ["key", "part"], len(rows))

    got = [(r["key"], r["part"], r["line"]) for r in sharing.collect()]
    shared = Counter((key, part) for key, part, _ in got)
    found = sorted(line for key, part, line in got if shared[(key, part)] > 1)
    assert found == [17, 4000, 90_001, 90_002, 90_003, 90_005, 90_006]
    assert set(sharing.columns) == {"key", "part", "line"}


@pytest.mark.parametrize("grouped_up_to", [10**9, 0], ids=["keys grouped", "hashes"])
def test_no_repeated_key_gives_none(spark, monkeypatch, grouped_up_to):
    monkeypatch.setattr(repeated_keys, "GROUPED_UP_TO", grouped_up_to)
    df = spark.createDataFrame([(i, f"k{i}") for i in range(2_000)] + [(None, "k1")], "a long, b string")
    assert rows_sharing_keys(df, ["a", "b"], 2_001) is None
