"""Point-in-time lookups on Spark, on a hand-made timeline: no value from after a label's time leaks in.

The Spark results come back through a small adapter (label order restored from an index added to
the labels, matched flags as a separate frame), so the assertions read as plain frames.
"""

from __future__ import annotations

import pandas as pd
import pytest

from mlops_dagster.ml.feature_lookup import (
    FeatureLookup,
    build_training_set,
    latest_per_key,
    matched_column,
    point_in_time_join,
    unmatched_counts,
)


def t(day: int) -> pd.Timestamp:
    return pd.Timestamp(f"2026-01-{day:02d}", tz="UTC")


# Customer A's tenure is 1 from day 1, 5 from day 10, 9 from day 20 (written after every label);
# B's features only exist from day 15.
FEATURES = pd.DataFrame(
    {
        "customerID": ["A", "A", "A", "B"],
        "_ingested_at": [t(1), t(10), t(20), t(15)],
        "tenure": [1.0, 5.0, 9.0, 30.0],
        "contract": ["Month-to-month", "One year", "Two year", "One year"],
    }
)
LOOKUP = FeatureLookup("churn_features", ["customerID"], ["tenure", "contract"], "event_time")


class SparkLookups:
    """The Spark functions behind the pandas signatures: pandas frames in, pandas frames out."""

    INDEX = "__test_index"

    def __init__(self, spark):
        self.spark = spark

    def _labels(self, labels: pd.DataFrame):
        return self.spark.createDataFrame(labels.assign(**{self.INDEX: range(len(labels))}))

    def _collect(self, joined, labels: pd.DataFrame, tables: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
        out = joined.toPandas().sort_values(self.INDEX).drop(columns=self.INDEX).reset_index(drop=True)
        for column, dtype in labels.dtypes.items():  # Spark hands instants back as UTC wall times
            if isinstance(dtype, pd.DatetimeTZDtype):
                out[column] = out[column].dt.tz_localize("UTC").dt.tz_convert(dtype.tz).astype(dtype)
        flags = [matched_column(table) for table in tables]
        return out.drop(columns=flags), out[flags].set_axis(tables, axis=1)

    def point_in_time_join(self, labels, features, lookup, keys, timestamp_key):
        joined = point_in_time_join(
            self._labels(labels), self.spark.createDataFrame(features), lookup, keys, timestamp_key
        )
        frame, matched = self._collect(joined, labels, [lookup.table])
        return frame, matched[lookup.table]

    def build_training_set(self, labels, lookups):
        joined = build_training_set(
            self._labels(labels),
            [
                (lookup, self.spark.createDataFrame(features), keys, timestamp_key)
                for lookup, features, keys, timestamp_key in lookups
            ],
        )
        return self._collect(joined, labels, [lookup.table for lookup, *_ in lookups])

    def latest_per_key(self, features, keys, timestamp_key):
        latest = latest_per_key(self.spark.createDataFrame(features), keys, timestamp_key).toPandas()
        return latest.sort_values(keys).reset_index(drop=True)


@pytest.fixture
def impl(spark):
    return SparkLookups(spark)


def test_each_label_gets_the_values_known_at_its_time_and_nothing_later(impl):
    labels = pd.DataFrame(
        {
            "customerID": ["A", "A", "A", "B", "B"],
            "event_time": [t(5), t(10), t(12), t(14), t(16)],
            "label": [0, 0, 1, 0, 1],
        }
    )
    joined, matched = impl.point_in_time_join(labels, FEATURES, LOOKUP, ["customerID"], "_ingested_at")
    assert joined[["customerID", "event_time", "label"]].equals(labels)  # label rows and order kept
    # day 5 sees day 1; day 10 sees the value written at exactly day 10; day 12 still day 10:
    # the day-20 update (tenure 9) never appears.
    assert joined["tenure"].tolist()[:3] == [1.0, 5.0, 5.0]
    assert joined["contract"].tolist()[:3] == ["Month-to-month", "One year", "One year"]
    assert 9.0 not in joined["tenure"].tolist()
    # B's label on day 14 predates its first feature row: nulls, and reported as unmatched.
    assert pd.isna(joined.loc[3, "tenure"]) and pd.isna(joined.loc[3, "contract"])
    assert joined.loc[4, "tenure"] == 30.0
    assert matched.tolist() == [True, True, True, False, True]


def test_without_a_label_time_the_latest_value_is_used(impl):
    labels = pd.DataFrame({"customerID": ["B", "A", "C"], "label": [1, 0, 1]})
    lookup = FeatureLookup("churn_features", ["customerID"], ["tenure"])
    joined, matched = impl.point_in_time_join(labels, FEATURES, lookup, ["customerID"], "_ingested_at")
    assert joined["tenure"].tolist()[:2] == [30.0, 9.0] and pd.isna(joined.loc[2, "tenure"])
    assert matched.tolist() == [True, True, False]
    latest = impl.latest_per_key(FEATURES, ["customerID"], "_ingested_at")
    assert latest[["customerID", "tenure"]].values.tolist() == [["A", 9.0], ["B", 30.0]]


def test_lookup_keys_may_be_named_differently_from_the_table_keys_and_tables_combine(impl):
    labels = pd.DataFrame({"cust": ["A"], "when": [t(11)], "label": [1]})
    plans = pd.DataFrame({"id": ["A", "A"], "plan": ["basic", "pro"]}).iloc[:1]  # no timestamp: unique keys
    joined, matched = impl.build_training_set(
        labels,
        [
            (
                FeatureLookup("churn_features", ["cust"], ["tenure"], "when"),
                FEATURES,
                ["customerID"],
                "_ingested_at",
            ),
            (FeatureLookup("plans", ["cust"], ["plan"]), plans, ["id"], None),
        ],
    )
    assert joined.loc[0, ["tenure", "plan"]].tolist() == [5.0, "basic"]
    assert matched.to_dict("records") == [{"churn_features": True, "plans": True}]


@pytest.mark.parametrize(
    "labels, features, message",
    [
        (
            pd.DataFrame({"customerID": ["A"], "label": [1]}),
            FEATURES,
            "the labels are missing column(s) ['event_time']",
        ),
        (
            pd.DataFrame({"customerID": ["A"], "event_time": [None], "label": [1]}),
            FEATURES,
            "1 null timestamp(s)",
        ),
        (
            pd.DataFrame({"customerID": ["A"], "event_time": [t(3)], "tenure": [2.0]}),
            FEATURES,
            "features ['tenure'] of feature table churn_features are already columns of the labels",
        ),
        (
            pd.DataFrame({"customerID": ["A"], "event_time": [t(3)]}),
            pd.concat([FEATURES, FEATURES.head(1)]),
            "1 duplicated ['customerID', '_ingested_at'] row(s)",
        ),
        (
            pd.DataFrame({"customerID": ["A"], "event_time": [t(3)]}),
            FEATURES.drop(columns="contract"),
            "feature table churn_features is missing column(s) ['contract']",
        ),
    ],
)
def test_bad_inputs_are_refused_naming_the_problem(impl, labels, features, message):
    with pytest.raises(ValueError) as refused:
        impl.point_in_time_join(labels, features, LOOKUP, ["customerID"], "_ingested_at")
    assert message in str(refused.value)


def test_a_feature_from_two_tables_is_refused(impl):
    labels = pd.DataFrame({"customerID": ["A"], "event_time": [t(3)]})
    with pytest.raises(ValueError, match=r"features \['tenure'\] are looked up from more than one table"):
        impl.build_training_set(
            labels,
            [
                (LOOKUP, FEATURES, ["customerID"], "_ingested_at"),
                (FeatureLookup("other", ["customerID"], ["tenure"]), FEATURES, ["customerID"], None),
            ],
        )


def test_a_feature_row_without_a_time_is_refused(impl):
    features = FEATURES.astype({"_ingested_at": object})
    features.loc[3, "_ingested_at"] = None
    labels = pd.DataFrame({"customerID": ["A"], "event_time": [t(3)]})
    with pytest.raises(ValueError, match=r"feature table churn_features has 1 null timestamp\(s\)"):
        impl.point_in_time_join(labels, features, LOOKUP, ["customerID"], "_ingested_at")


def test_times_are_compared_as_instants_whatever_the_label_time_zone(impl):
    # 00:30 in Paris on day 10 is 23:30 UTC on day 9: before the day-10 update.
    labels = pd.DataFrame(
        {
            "customerID": ["A", "A"],
            "label": [0, 1],
            "event_time": pd.to_datetime(["2026-01-10 00:30", "2026-01-10 01:30"]).tz_localize(
                "Europe/Paris"
            ),
        }
    )
    joined, matched = impl.point_in_time_join(labels, FEATURES, LOOKUP, ["customerID"], "_ingested_at")
    assert joined["tenure"].tolist() == [1.0, 5.0]
    assert joined["event_time"].equals(labels["event_time"])


# --- Spark only ----------------------------------------------------------------------------------


def test_spark_matched_flags_are_columns_counted_in_one_aggregation(spark):
    labels = spark.createDataFrame(
        pd.DataFrame(
            {
                "customerID": ["A", "B", "B", "C"],
                "event_time": [t(5), t(14), t(16), t(30)],
                "label": [0, 0, 1, 1],
            }
        )
    )
    table = "main.churn.churn_features"
    joined = point_in_time_join(
        labels,
        spark.createDataFrame(FEATURES),
        FeatureLookup(table, ["customerID"], ["tenure"], "event_time"),
        ["customerID"],
        "_ingested_at",
    )
    flag = matched_column(table)
    assert flag == "__matched__main_churn_churn_features"
    assert joined.schema[flag].dataType.typeName() == "boolean"
    assert unmatched_counts(joined, [table]) == (2, {table: 2})  # B on day 14 and C (no feature row at all)
    assert sorted(joined.where(flag).select("customerID").toPandas()["customerID"]) == ["A", "B"]


def test_spark_label_times_may_be_strings_and_the_plan_has_no_cross_or_nested_loop_join(spark):
    labels = spark.createDataFrame(
        pd.DataFrame({"customerID": ["A", "A"], "event_time": ["2026-01-09 23:59:59", "2026-01-10 00:00:00"]})
    )
    joined = point_in_time_join(
        labels, spark.createDataFrame(FEATURES), LOOKUP, ["customerID"], "_ingested_at"
    )
    plan = joined._jdf.queryExecution().executedPlan().toString()
    assert "NestedLoop" not in plan and "CartesianProduct" not in plan
    rows = joined.toPandas().sort_values("event_time")
    assert rows["tenure"].tolist() == [1.0, 5.0]
    assert list(joined.columns) == [
        "customerID",
        "event_time",
        "tenure",
        "contract",
        matched_column("churn_features"),
    ]
