"""The feature definition hash decides whether a build may be incremental: it must not move when
nothing that computes the features changed (a moved hash recomputes every row)."""

from __future__ import annotations

from mlops_dagster.ml.features import feature_definition

BASE = dict(
    key="id",
    label="churn",
    positive_label="Yes",
    problem_type="classification",
    categorical=["plan"],
    numerical=["tenure"],
    derived={"tenure": "coalesce(tenure, 0)"},
)


def test_the_definition_is_pinned():
    # sha256 of the JSON list [key, label, str(positive label), problem type, categorical, numerical,
    # derived] with sorted keys, first 16 hex digits: the value feature tables already carry.
    assert feature_definition(**BASE) == "6804117279a5c107"


def test_every_input_moves_the_definition():
    changed = dict(
        key="other",
        label="left",
        positive_label="No",
        problem_type="regression",
        categorical=["plan", "region"],
        numerical=[],
        derived={"tenure": "tenure"},
    )
    seen = {feature_definition(**BASE)}
    for name, value in changed.items():
        seen.add(feature_definition(**{**BASE, name: value}))
    assert len(seen) == 1 + len(changed)


def test_a_positive_label_is_compared_as_text():
    assert feature_definition(**{**BASE, "positive_label": 1}) == feature_definition(
        **{**BASE, "positive_label": "1"}
    )
