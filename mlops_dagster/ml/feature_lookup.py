"""Point-in-time feature lookups: labels joined to the feature values known at each label's time.

A feature table with a timestamp key keeps history: a row stamped ``T`` holds the values known
from ``T`` on. For a label at time ``t`` the lookup takes, per key, the newest row with
``T <= t``: a value written after the label never leaks into its training row. A label older
than every row of its key gets nulls (and ``matched`` False), as Databricks' training sets do;
the caller decides what to do with those rows. Pure pandas, no Dagster.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

_POSITION = "__label_position"
_FEATURE_TIME = "__feature_time"


@dataclass(frozen=True)
class FeatureLookup:
    """Which features of which table to join, by which label columns (like Databricks' ``FeatureLookup``)."""

    table: str
    lookup_key: list[str]            # label columns, matched to the table's keys in order
    feature_names: list[str]
    timestamp_lookup_key: str | None = None  # label event time; None: the latest value per key


def _require(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} {'are' if what == 'the labels' else 'is'} missing column(s) {missing}; "
                         f"it has {list(frame.columns)}")


def _utc(values: pd.Series, what: str) -> pd.Series:
    times = pd.to_datetime(values, utc=True)
    if times.isna().any():
        raise ValueError(f"{what} has {int(times.isna().sum())} null timestamp(s): a point-in-time lookup "
                         "needs a time on every row")
    return times.astype("datetime64[ns, UTC]")


def latest_per_key(features: pd.DataFrame, keys: list[str], timestamp_key: str | None) -> pd.DataFrame:
    """The newest row per key (the values an online store serves now)."""
    if timestamp_key is None:
        return features.reset_index(drop=True)
    return (features.sort_values(timestamp_key, kind="stable")
            .drop_duplicates(keys, keep="last").sort_values(keys).reset_index(drop=True))


def point_in_time_join(
    labels: pd.DataFrame, features: pd.DataFrame, lookup: FeatureLookup, keys: list[str],
    timestamp_key: str | None,
) -> tuple[pd.DataFrame, pd.Series]:
    """``labels`` (order kept) with ``lookup.feature_names`` as of each label's time, and a boolean
    Series saying which labels found a feature row. ``keys`` / ``timestamp_key`` are the feature
    table's."""
    where = f"feature table {lookup.table}"
    if len(lookup.lookup_key) != len(keys):
        raise ValueError(f"lookup_key {lookup.lookup_key} must name one label column per key of {where} {keys}")
    _require(labels, lookup.lookup_key + ([lookup.timestamp_lookup_key] if lookup.timestamp_lookup_key else []),
             "the labels")
    _require(features, keys + lookup.feature_names + ([timestamp_key] if timestamp_key else []), where)
    clash = [f for f in lookup.feature_names if f in labels.columns]
    if clash:
        raise ValueError(f"features {clash} of {where} are already columns of the labels: drop or rename them")
    if lookup.timestamp_lookup_key and timestamp_key is None:
        raise ValueError(f"{where} has no timestamp key, so it cannot be looked up as of "
                         f"{lookup.timestamp_lookup_key!r}")
    identity = keys + ([timestamp_key] if timestamp_key else [])
    duplicated = int(features.duplicated(identity).sum())
    if duplicated:
        raise ValueError(f"{where} has {duplicated} duplicated {identity} row(s): a lookup would be ambiguous")

    table = features[keys + lookup.feature_names + ([timestamp_key] if timestamp_key else [])]
    table = table.rename(columns=dict(zip(keys, lookup.lookup_key)))
    if timestamp_key:
        table = table.rename(columns={timestamp_key: _FEATURE_TIME})
    left = labels.assign(**{_POSITION: range(len(labels))})
    if lookup.timestamp_lookup_key:
        left = left.assign(**{"__label_time": _utc(left[lookup.timestamp_lookup_key], "the labels")})
        table = table.assign(**{_FEATURE_TIME: _utc(table[_FEATURE_TIME], where)})
        joined = pd.merge_asof(
            left.sort_values("__label_time", kind="stable"), table.sort_values(_FEATURE_TIME, kind="stable"),
            left_on="__label_time", right_on=_FEATURE_TIME, by=lookup.lookup_key,
            direction="backward", allow_exact_matches=True,
        ).drop(columns="__label_time")
    else:
        if not timestamp_key:  # keys are unique; the marker only tells matched rows apart
            table = table.assign(**{_FEATURE_TIME: True})
        latest = latest_per_key(table, lookup.lookup_key, _FEATURE_TIME if timestamp_key else None)
        joined = left.merge(latest, on=lookup.lookup_key, how="left", validate="many_to_one")
    joined = joined.sort_values(_POSITION).reset_index(drop=True)
    matched = joined[_FEATURE_TIME].notna().rename(lookup.table)
    return joined.drop(columns=[_POSITION, _FEATURE_TIME]), matched


def build_training_set(
    labels: pd.DataFrame, lookups: list[tuple[FeatureLookup, pd.DataFrame, list[str], str | None]],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Labels with every lookup's features joined point in time, and one boolean column per feature
    table saying which labels found a feature row there (where not, its features are null)."""
    names = [f for lookup, *_ in lookups for f in lookup.feature_names]
    twice = sorted({f for f in names if names.count(f) > 1})
    if twice:
        raise ValueError(f"features {twice} are looked up from more than one table: each feature must come from one")
    frame, matched = labels.reset_index(drop=True), {}
    for lookup, features, keys, timestamp_key in lookups:
        frame, matched[lookup.table] = point_in_time_join(frame, features, lookup, keys, timestamp_key)
    return frame, pd.DataFrame(matched, index=frame.index)
