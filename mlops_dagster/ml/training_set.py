"""The training set's assembly decisions: which columns each feature lookup reads, which labels
take a later outcome, which columns the table keeps, what it records of its inputs and what its
split holds. No Dagster: the asset reads the tables and writes the result."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..settings import INGESTED_AT
from .feature_lookup import FeatureLookup, latest_per_key
from .features import build_labels
from .problem import problem_type
from .sampling import stratified_split
from .training import LABEL

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from ..settings import Settings
    from .sampling import Split


@dataclass(frozen=True)
class PlannedLookup:
    """One configured feature lookup: the join, and what to read of its feature table."""

    lookup: FeatureLookup
    columns: list[str]  # the table's keys, its timestamp key if any, then the looked-up features
    keys: list[str]
    timestamp_key: str | None

    def recorded(self, version: int) -> dict[str, Any]:
        """What the training set records of this lookup, at the feature table's ``version``."""
        return {
            "table": self.lookup.table,
            "version": version,
            "lookup_key": self.lookup.lookup_key,
            "timestamp_lookup_key": self.lookup.timestamp_lookup_key,
            "features": self.lookup.feature_names,
        }


def planned_lookups(settings: Settings) -> list[PlannedLookup]:
    """The training lookups of ``settings`` (feature_store.training_lookups), in their order."""
    planned = []
    for lookup in settings.feature_store.training_lookups:
        spec = settings.feature_store.tables[lookup.table]
        looked_up = lookup.feature_names or settings.feature_names(lookup.table)
        planned.append(
            PlannedLookup(
                FeatureLookup(
                    settings.feature_table(lookup.table),
                    lookup.lookup_key,
                    looked_up,
                    lookup.timestamp_lookup_key,
                ),
                [*spec.keys, *([spec.timestamp_key] if spec.timestamp_key else []), *looked_up],
                spec.keys,
                spec.timestamp_key,
            )
        )
    return planned


def labels_with_outcomes(labels: DataFrame, outcomes: DataFrame, settings: Settings) -> DataFrame:
    """The labels with the outcomes that arrived later (the ground-truth table's rows): per key, the
    newest of the two. An outcome's time is its label time, so its features are looked up as of
    when it was observed."""
    ds, time_column = settings.dataset, settings.monitoring.ground_truth.time_column
    observed = build_labels(
        outcomes,
        ds.key,
        ds.label,
        problem_type(settings.problem_type),
        ds.positive_label,
        carry=(time_column,),
    )
    both = labels.select(ds.key, LABEL, INGESTED_AT).unionByName(
        observed.withColumnRenamed(time_column, INGESTED_AT)
    )
    return latest_per_key(both, [ds.key], INGESTED_AT)


def require_model_features(features: list[str], columns: list[str]) -> None:
    """Refuse a joined training set that lacks some of the model's ``features``."""
    missing = [c for c in features if c not in columns]
    if missing:
        raise ValueError(
            f"the model features {missing} come from no feature lookup: add them to "
            "feature_store.training_lookups (feature_names) or to the looked-up tables"
        )


def kept_columns(key: str, lookups: list[FeatureLookup], features: list[str]) -> list[str]:
    """The training set's columns before the split: the key, each label time a lookup used (once),
    the model's features and the label."""
    times = [t for t in dict.fromkeys(spec.timestamp_lookup_key for spec in lookups) if t]
    return [key, *times, *features, LABEL]


def split(frame: DataFrame, settings: Settings) -> Split:
    """``frame`` split into train and test by key and seed; a classifier's split is stratified on the
    label and needs both outcomes."""
    problem = problem_type(settings.problem_type)
    stratified, stratum = problem.strata(frame, LABEL)
    return stratified_split(
        stratified,
        settings.dataset.key,
        stratum,
        settings.training.test_size,
        settings.training.seed,
        min_classes=2 if problem.classifies else 1,
    )


def lineage(
    recorded: list[dict[str, Any]], labels_table: str, labels_version: int, outcomes: dict[str, str]
) -> dict[str, str]:
    """The Delta commit metadata of a training set: the first lookup's table as the features, the
    labels, the outcomes if any, and every lookup as JSON."""
    return {
        "features_table": recorded[0]["table"],
        "features_version": str(recorded[0]["version"]),
        "labels_table": labels_table,
        "labels_version": str(labels_version),
        **outcomes,
        "feature_lookups": json.dumps(recorded),
    }


def split_summary(rows: dict[tuple[str, Any], int], classifies: bool) -> dict[str, float | int]:
    """Rows per side of a split counted per (side, label); a classifier's also its positive rate."""
    total = sum(rows.values())
    summary: dict[str, float | int] = {
        "train_rows": sum(n for (side, _), n in rows.items() if side == "train"),
        "test_rows": sum(n for (side, _), n in rows.items() if side == "test"),
    }
    if classifies:
        summary["positive_rate"] = (
            sum(n for (_, label), n in rows.items() if label == 1) / total if total else 0.0
        )
    return summary


def lookup_rows(recorded: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per recorded lookup, for a table of what the training set looked up."""
    return [
        {
            "table": r["table"],
            "delta_version": r["version"],
            "lookup_key": "+".join(r["lookup_key"]),
            "as_of": r["timestamp_lookup_key"] or "latest",
            "features": len(r["features"]),
        }
        for r in recorded
    ]
