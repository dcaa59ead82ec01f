"""Point-in-time lookups on a hand-made timeline: no value from after a label's time leaks in."""

from __future__ import annotations

import pandas as pd
import pytest

from mlops_dagster.ml.feature_lookup import FeatureLookup, build_training_set, latest_per_key, point_in_time_join


def t(day: int) -> pd.Timestamp:
    return pd.Timestamp(f"2026-01-{day:02d}", tz="UTC")


# Customer A's tenure is 1 from day 1, 5 from day 10, 9 from day 20 (written after every label);
# B's features only exist from day 15.
FEATURES = pd.DataFrame({
    "customerID": ["A", "A", "A", "B"],
    "_ingested_at": [t(1), t(10), t(20), t(15)],
    "tenure": [1.0, 5.0, 9.0, 30.0],
    "contract": ["Month-to-month", "One year", "Two year", "One year"],
})
LOOKUP = FeatureLookup("churn_features", ["customerID"], ["tenure", "contract"], "event_time")


def test_each_label_gets_the_values_known_at_its_time_and_nothing_later():
    labels = pd.DataFrame({
        "customerID": ["A", "A", "A", "B", "B"],
        "event_time": [t(5), t(10), t(12), t(14), t(16)],
        "label": [0, 0, 1, 0, 1],
    })
    joined, matched = point_in_time_join(labels, FEATURES, LOOKUP, ["customerID"], "_ingested_at")
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


def test_without_a_label_time_the_latest_value_is_used():
    labels = pd.DataFrame({"customerID": ["B", "A", "C"], "label": [1, 0, 1]})
    lookup = FeatureLookup("churn_features", ["customerID"], ["tenure"])
    joined, matched = point_in_time_join(labels, FEATURES, lookup, ["customerID"], "_ingested_at")
    assert joined["tenure"].tolist()[:2] == [30.0, 9.0] and pd.isna(joined.loc[2, "tenure"])
    assert matched.tolist() == [True, True, False]
    latest = latest_per_key(FEATURES, ["customerID"], "_ingested_at")
    assert latest[["customerID", "tenure"]].values.tolist() == [["A", 9.0], ["B", 30.0]]


def test_lookup_keys_may_be_named_differently_from_the_table_keys_and_tables_combine():
    labels = pd.DataFrame({"cust": ["A"], "when": [t(11)], "label": [1]})
    plans = pd.DataFrame({"id": ["A", "A"], "plan": ["basic", "pro"]}).iloc[:1]  # no timestamp: unique keys
    joined, matched = build_training_set(labels, [
        (FeatureLookup("churn_features", ["cust"], ["tenure"], "when"), FEATURES, ["customerID"], "_ingested_at"),
        (FeatureLookup("plans", ["cust"], ["plan"]), plans, ["id"], None),
    ])
    assert joined.loc[0, ["tenure", "plan"]].tolist() == [5.0, "basic"]
    assert matched.to_dict("records") == [{"churn_features": True, "plans": True}]


@pytest.mark.parametrize("labels, features, message", [
    (pd.DataFrame({"customerID": ["A"], "label": [1]}), FEATURES, "the labels are missing column(s) ['event_time']"),
    (pd.DataFrame({"customerID": ["A"], "event_time": [None], "label": [1]}), FEATURES, "1 null timestamp(s)"),
    (pd.DataFrame({"customerID": ["A"], "event_time": [t(3)], "tenure": [2.0]}), FEATURES,
     "features ['tenure'] of feature table churn_features are already columns of the labels"),
    (pd.DataFrame({"customerID": ["A"], "event_time": [t(3)]}), pd.concat([FEATURES, FEATURES.head(1)]),
     "1 duplicated ['customerID', '_ingested_at'] row(s)"),
    (pd.DataFrame({"customerID": ["A"], "event_time": [t(3)]}), FEATURES.drop(columns="contract"),
     "feature table churn_features is missing column(s) ['contract']"),
])
def test_bad_inputs_are_refused_naming_the_problem(labels, features, message):
    with pytest.raises(ValueError) as refused:
        point_in_time_join(labels, features, LOOKUP, ["customerID"], "_ingested_at")
    assert message in str(refused.value)


def test_a_feature_from_two_tables_is_refused():
    labels = pd.DataFrame({"customerID": ["A"], "event_time": [t(3)]})
    with pytest.raises(ValueError, match=r"features \['tenure'\] are looked up from more than one table"):
        build_training_set(labels, [(LOOKUP, FEATURES, ["customerID"], "_ingested_at"),
                                    (FeatureLookup("other", ["customerID"], ["tenure"]), FEATURES, ["customerID"], None)])
