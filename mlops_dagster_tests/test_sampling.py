"""Spark split and samples: seeded, exactly stratified, independent of row order and partitioning."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mlops_dagster.ml import sampling
from mlops_dagster.ml.sampling import SPLIT, stratified_fraction, stratified_sample, stratified_split

KEY, LABEL = "customerID", "label"


def labelled(rows: int, seed: int = 0, positive_rate: float = 0.27) -> pd.DataFrame:
    """Key first (as the training set is), a feature, and an imbalanced label."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            KEY: [f"{i:05d}-C" for i in range(rows)],
            "x": rng.normal(size=rows),
            LABEL: (rng.random(rows) < positive_rate).astype(int),
        }
    )


FRAME = labelled(2000, seed=4, positive_rate=0.2)
LARGE = labelled(20_000, seed=5)


@pytest.fixture(scope="module")
def frame(spark):
    return spark.createDataFrame(FRAME)


@pytest.fixture(scope="module")
def large(spark):
    return spark.createDataFrame(LARGE)


def split_of(df, *, key=KEY, label=LABEL, test_size=0.2, seed=7, **kwargs) -> pd.DataFrame:
    return stratified_split(df, key, label, test_size, seed, **kwargs).frame.toPandas()


def keys_in_test(split: pd.DataFrame, key=KEY) -> set:
    return set(
        split.loc[split[SPLIT] == "test", key].itertuples(index=False, name=None)
        if isinstance(key, list)
        else split.loc[split[SPLIT] == "test", key]
    )


def within_one_row_of_the_share(counts: pd.Series, sizes: pd.Series, share: float) -> bool:
    return all(
        math.floor(share * sizes[c]) <= counts.get(c, 0) <= math.ceil(share * sizes[c]) for c in sizes.index
    )


# --- stratified_split ----------------------------------------------------------------------------


def test_split_is_deterministic_for_a_seed_and_seeds_differ(frame):
    a, b, c = split_of(frame, seed=7), split_of(frame, seed=7), split_of(frame, seed=8)
    assert dict(zip(a[KEY], a[SPLIT])) == dict(zip(b[KEY], b[SPLIT]))
    assert keys_in_test(a) != keys_in_test(c)
    assert len(keys_in_test(a)) == len(keys_in_test(c))


def test_split_is_independent_of_input_row_order_and_partitioning(spark):
    rows = labelled(3000, seed=1)
    ordered = spark.createDataFrame(rows).coalesce(1)
    shuffled = spark.createDataFrame(rows.sample(frac=1.0, random_state=123)).repartition(7)
    a, b = split_of(ordered, test_size=0.25, seed=3), split_of(shuffled, test_size=0.25, seed=3)
    assert dict(zip(a[KEY], a[SPLIT])) == dict(zip(b[KEY], b[SPLIT]))


def test_split_keeps_every_row_and_column(frame):
    split = split_of(frame, seed=1)
    assert list(split.columns) == [*frame.columns, SPLIT]
    assert set(split[SPLIT]) == {"train", "test"}
    assert sorted(split[KEY]) == sorted(FRAME[KEY])
    assert SPLIT not in frame.columns  # the input is not modified


@pytest.mark.parametrize("test_size", [0.2, 0.3])
def test_split_is_exactly_stratified_and_respects_test_size(frame, test_size):
    split = split_of(frame, test_size=test_size, seed=42)
    test, train = split[split[SPLIT] == "test"], split[split[SPLIT] == "train"]
    assert len(test) == math.ceil(test_size * len(split))
    # Every class within one row of its share (largest remainder), so the class rates hardly move.
    assert within_one_row_of_the_share(test[LABEL].value_counts(), split[LABEL].value_counts(), test_size)
    overall = split[LABEL].mean()
    assert abs(test[LABEL].mean() - overall) <= 0.002 and abs(train[LABEL].mean() - overall) <= 0.002


def test_split_with_another_label_column_and_split_column(spark):
    df = spark.createDataFrame(labelled(300).rename(columns={LABEL: "churned"}))
    split = split_of(df, label="churned", seed=0, split_column="fold")
    assert (split["fold"] == "test").sum() == 60
    with pytest.raises(ValueError, match="already has a 'fold' column"):
        stratified_split(df.withColumn("fold", df["x"]), KEY, "churned", 0.2, 0, split_column="fold")


def test_single_class_label_raises_a_clear_error(spark):
    df = spark.createDataFrame(labelled(100).assign(**{LABEL: 0}))
    with pytest.raises(ValueError, match=r"single class in 'label' \(100 rows\)"):
        stratified_split(df, KEY, LABEL, 0.2, 1)


def test_split_refuses_a_duplicated_or_null_key(spark):
    twice = spark.createDataFrame(pd.concat([labelled(50), labelled(50)], ignore_index=True))
    with pytest.raises(ValueError, match="duplicated 'customerID' values: the key must be unique"):
        stratified_split(twice, KEY, LABEL, 0.2, 1)
    rows = labelled(50).astype({KEY: object})
    rows.loc[3, KEY] = None
    with pytest.raises(ValueError, match="1 row\\(s\\) with a null 'customerID'"):
        stratified_split(spark.createDataFrame(rows), KEY, LABEL, 0.2, 1)


def test_split_on_a_composite_key(spark):
    # The same customer number in two regions is two customers.
    rows = labelled(1500, seed=2)
    rows = rows.assign(region=np.where(np.arange(1500) % 2 == 0, "eu", "us"), number=np.arange(1500) // 2)
    df = spark.createDataFrame(rows.drop(columns=KEY))
    key = ["region", "number"]
    a, b = split_of(df, key=key, seed=5), split_of(df.repartition(5), key=key, seed=5)
    assert keys_in_test(a, key) == keys_in_test(b, key)
    assert len(keys_in_test(a, key)) == 300
    assert within_one_row_of_the_share(
        a.loc[a[SPLIT] == "test", LABEL].value_counts(), a[LABEL].value_counts(), 0.2
    )
    with pytest.raises(ValueError, match=r"duplicated \['region', 'number'\] values"):
        stratified_split(df.union(df.limit(1)), key, LABEL, 0.2, 5)


def test_the_cut_is_exact_whatever_the_bucket_size_and_only_boundary_rows_are_collected(large, monkeypatch):
    collected = []
    boundary_rows = sampling._Selection._boundary_rows

    def counting(self, bucket_of):
        found = boundary_rows(self, bucket_of)
        collected.append(sum(len(rows) for rows in found.values()))
        return found

    monkeypatch.setattr(sampling._Selection, "_boundary_rows", counting)
    fine = split_of(large, test_size=0.3, seed=11)
    monkeypatch.setattr(sampling, "_BUCKET_BITS", 1)  # two buckets: the cut falls among thousands of rows
    coarse = split_of(large, test_size=0.3, seed=11)
    assert dict(zip(fine[KEY], fine[SPLIT])) == dict(zip(coarse[KEY], coarse[SPLIT]))
    assert (coarse[SPLIT] == "test").sum() == 6000
    fine_rows, coarse_rows = collected
    assert fine_rows < 50 and coarse_rows > 5000  # 4096 buckets: a handful of rows reach the driver


# --- stratified_sample / stratified_fraction -----------------------------------------------------


def test_a_sample_is_bounded_stratified_and_deterministic(large):
    sample = stratified_sample(large, LABEL, 3000, seed=1, key=KEY)
    rows = sample.frame.toPandas()
    assert (sample.available_rows, sample.used_rows, len(rows)) == (20_000, 3000, 3000)
    assert within_one_row_of_the_share(rows[LABEL].value_counts(), LARGE[LABEL].value_counts(), 3000 / 20_000)
    again = stratified_sample(large.repartition(3), LABEL, 3000, seed=1, key=KEY).frame.toPandas()
    assert set(again[KEY]) == set(rows[KEY])
    other = stratified_sample(large, LABEL, 3000, seed=2, key=KEY).frame.toPandas()
    assert set(other[KEY]) != set(rows[KEY])


def test_the_split_counts_what_it_sent_to_each_side(frame):
    split = stratified_split(frame, KEY, LABEL, 0.2, seed=4)
    counted = split.frame.groupBy(SPLIT, LABEL).count().toPandas()
    assert split.rows == {(r[SPLIT], r[LABEL]): r["count"] for r in counted.to_dict("records")}


def test_a_frame_within_the_bound_is_returned_unchanged(frame):
    sample = stratified_sample(frame, LABEL, 5000, seed=1, key=KEY)
    assert sample.frame is frame and sample.available_rows == sample.used_rows == 2000
    assert stratified_fraction(frame, LABEL, 1.0, seed=1, key=KEY).frame is frame


def test_the_sample_is_independent_of_the_split(large):
    split = stratified_split(large, KEY, LABEL, 0.5, seed=1).frame
    sampled = set(stratified_sample(large, LABEL, 10_000, seed=1, key=KEY).frame.toPandas()[KEY])
    test = keys_in_test(split.toPandas())
    # Half the rows in each: independent selections overlap on about a quarter of the rows.
    assert abs(len(sampled & test) / 20_000 - 0.25) < 0.02


def test_the_same_fraction_bounds_the_test_split_the_same_way(large):
    split = stratified_split(large, KEY, LABEL, 0.2, seed=3).frame
    train = stratified_sample(split.where(f"{SPLIT} = 'train'"), LABEL, 4000, seed=3, key=KEY)
    fraction = train.used_rows / train.available_rows  # 4000 of 16000
    test_frame = split.where(f"{SPLIT} = 'test'")
    test = stratified_fraction(test_frame, LABEL, fraction, seed=3, key=KEY)
    rows = test.frame.toPandas()
    assert (test.available_rows, test.used_rows, len(rows)) == (4000, 1000, 1000)
    assert set(rows[SPLIT]) == {"test"}
    sizes = test_frame.toPandas()[LABEL].value_counts()
    assert within_one_row_of_the_share(rows[LABEL].value_counts(), sizes, fraction)
    again = stratified_fraction(test_frame.repartition(3), LABEL, fraction, seed=3, key=KEY).frame.toPandas()
    assert set(again[KEY]) == set(rows[KEY])  # the same holdout rows every time it is read


def test_duplicated_keys_never_push_a_sample_over_its_bound(spark, monkeypatch):
    # Ten copies of one key in class 0: at the cut they are kept or dropped together, never split.
    rows = pd.DataFrame({KEY: ["A"] * 10 + [f"B{i}" for i in range(10)], LABEL: [0] * 10 + [1] * 10})
    monkeypatch.setattr(sampling, "_BUCKET_BITS", 1)
    sample = stratified_sample(spark.createDataFrame(rows), LABEL, 10, seed=0, key=KEY)
    kept = sample.frame.toPandas()
    assert sample.used_rows == len(kept) == 5
    assert set(kept[LABEL]) == {1}
