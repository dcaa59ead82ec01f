"""Point-in-time feature lookups: labels joined to the feature values known at each label's time.

A feature table with a timestamp key keeps history: a row stamped ``T`` holds the values known
from ``T`` on. For a label at time ``t`` the lookup takes, per key, the newest row with
``T <= t``: a value written after the label never leaks into its training row. A label older
than every row of its key gets nulls (and ``matched`` False), as Databricks' training sets do;
the caller decides what to do with those rows. No Dagster.

On Spark, for tables that grow with the data (locally all cores, on Databricks the cluster), as
Databricks Feature Engineering's ``create_training_set`` does. The matched flags are boolean
columns of the result (``matched_column``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import reduce
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

_FEATURE_TIME = "__feature_time"


@dataclass(frozen=True)
class FeatureLookup:
    """Which features of which table to join, by which label columns (like Databricks' ``FeatureLookup``)."""

    table: str
    lookup_key: list[str]  # label columns, matched to the table's keys in order
    feature_names: list[str]
    timestamp_lookup_key: str | None = None  # label event time; None: the latest value per key


def _require(has: list[str], columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in has]
    if missing:
        raise ValueError(
            f"{what} {'are' if what == 'the labels' else 'is'} missing column(s) {missing}; "
            f"it has {list(has)}"
        )


def _check_lookup(
    label_columns: list[str],
    feature_columns: list[str],
    lookup: FeatureLookup,
    keys: list[str],
    timestamp_key: str | None,
) -> str:
    """Schema checks of one lookup (no data read); returns the table's name for messages."""
    where = f"feature table {lookup.table}"
    if len(lookup.lookup_key) != len(keys):
        raise ValueError(
            f"lookup_key {lookup.lookup_key} must name one label column per key of {where} {keys}"
        )
    _require(
        label_columns,
        lookup.lookup_key + ([lookup.timestamp_lookup_key] if lookup.timestamp_lookup_key else []),
        "the labels",
    )
    _require(feature_columns, keys + lookup.feature_names + ([timestamp_key] if timestamp_key else []), where)
    clash = [f for f in lookup.feature_names if f in label_columns]
    if clash:
        raise ValueError(
            f"features {clash} of {where} are already columns of the labels: drop or rename them"
        )
    if lookup.timestamp_lookup_key and timestamp_key is None:
        raise ValueError(
            f"{where} has no timestamp key, so it cannot be looked up as of {lookup.timestamp_lookup_key!r}"
        )
    return where


def _check_one_table_per_feature(lookups: list[FeatureLookup]) -> None:
    names = [f for lookup in lookups for f in lookup.feature_names]
    twice = sorted({f for f in names if names.count(f) > 1})
    if twice:
        raise ValueError(
            f"features {twice} are looked up from more than one table: each feature must come from one"
        )


def _refuse_null_times(what: str, count: int) -> None:
    if count:
        raise ValueError(
            f"{what} has {count} null timestamp(s): a point-in-time lookup needs a time on every row"
        )


def _refuse_duplicates(where: str, identity: list[str], count: int) -> None:
    if count:
        raise ValueError(f"{where} has {count} duplicated {identity} row(s): a lookup would be ambiguous")


# Shape we design for: ~10M label rows and ~10M feature rows, a few feature versions per key, on 2
# cores locally or a cluster's executors. No data is collected to the driver; validation actions
# are single aggregations (their cost is stated where they run).

MATCHED_PREFIX = "__matched__"
_ROW = "__label_row"
_LABEL_TIME = "__label_time"
_RANK = "__rank"


def matched_column(table: str) -> str:
    """Name of the boolean column that says which labels found a row in ``table`` (Spark results).

    Characters other than letters, digits and ``_`` become ``_`` (``main.sales.sales_features`` →
    ``__matched__main_sales_sales_features``), so the column can be named without backticks.
    """
    return MATCHED_PREFIX + re.sub(r"\W", "_", table)


class Unmatched(NamedTuple):
    """Labels without a feature row: in at least one table (``rows``), and per table."""

    rows: int
    per_table: dict[str, int]


def all_matched(tables: list[str]) -> Column:
    """True for the labels that found a feature row in every one of ``tables``."""
    from pyspark.sql import functions as F

    return reduce(lambda a, b: a & b, [F.col(matched_column(t)) for t in tables])


def unmatched_counts(frame: DataFrame, tables: list[str]) -> Unmatched:
    """Labels without a feature row, in any and per table, in one aggregation over ``frame`` (a
    Spark result of ``build_training_set``)."""
    from pyspark.sql import functions as F

    row = frame.agg(
        F.count_if(~all_matched(tables)).alias("any"),
        *[F.count_if(~F.col(matched_column(t))).alias(str(i)) for i, t in enumerate(tables)],
    ).first()
    return Unmatched(int(row["any"]), {t: int(row[str(i)]) for i, t in enumerate(tables)})


def _spark_timestamp(frame: DataFrame, column: str) -> Column:
    """``column`` as a Spark timestamp (an instant; the session time zone, UTC in our config, reads
    zone-less values). Strings that do not parse become null (and are then refused as null times)
    instead of failing the query under ANSI mode."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, TimestampType

    data_type = frame.schema[column].dataType
    if isinstance(data_type, TimestampType):
        return F.col(column)
    if isinstance(data_type, StringType):
        return F.try_to_timestamp(F.col(column))
    return F.col(column).cast("timestamp")  # date, timestamp_ntz, or an all-null column


def _newest_first(partition: list[str], time: Column):
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    return F.row_number().over(Window.partitionBy(*partition).orderBy(time.desc_nulls_last()))


def latest_per_key(features: DataFrame, keys: list[str], timestamp_key: str | None) -> DataFrame:
    """The newest row per key (the values an online store serves now); ``features`` itself when
    the table has no timestamp key (its keys are unique).

    A window partitioned by the keys: each partition holds one key's few versions, so nothing is
    sorted in one piece. Rows tied on (keys, time) are not expected (the lookups refuse them); if
    present, which of them is kept is not specified.
    """
    from pyspark.sql import functions as F

    if timestamp_key is None:
        return features
    return (
        features.withColumn(_RANK, _newest_first(keys, _spark_timestamp(features, timestamp_key)))
        .where(F.col(_RANK) == 1)
        .drop(_RANK)
    )


def _check_feature_rows(features: DataFrame, where: str, keys: list[str], timestamp_key: str | None) -> None:
    """Refuse duplicated (keys, time) rows and null times of a feature table.

    Cost: one scan that counts the rows and the null times, then ``rows_sharing_keys`` on the
    identity (keys and time; one long per row shuffled), and only the rows that may share an
    identity grouped on it: no data reaches the driver but a few rows.
    """
    from pyspark.sql import functions as F

    from .repeated_keys import rows_sharing_keys

    identity = keys + ([timestamp_key] if timestamp_key else [])
    null_times = (
        F.sum(_spark_timestamp(features, timestamp_key).isNull().cast("long")) if timestamp_key else F.lit(0)
    )
    stats = features.agg(F.count(F.lit(1)).alias("rows"), null_times.alias("null_times")).first()
    sharing = rows_sharing_keys(features.select(*identity), identity, int(stats["rows"]))
    duplicated = 0
    if sharing is not None:
        groups = sharing.groupBy(*identity).agg(F.count(F.lit(1)).alias("_n")).where("_n > 1")
        duplicated = int(groups.agg(F.sum(F.col("_n") - 1)).first()[0] or 0)
    _refuse_duplicates(where, identity, duplicated)
    _refuse_null_times(where, int(stats["null_times"] or 0))


def _check_label_times(labels: DataFrame, columns: list[str]) -> None:
    """Refuse null label times. Cost: one scan of the labels' time columns, no shuffle."""
    from pyspark.sql import functions as F

    if not columns:
        return
    row = labels.agg(
        *[F.count_if(_spark_timestamp(labels, c).isNull()).alias(str(i)) for i, c in enumerate(columns)]
    ).first()
    _refuse_null_times("the labels", sum(int(row[str(i)]) for i in range(len(columns))))


def _join(
    labels: DataFrame, features: DataFrame, lookup: FeatureLookup, keys: list[str], timestamp_key: str | None
) -> DataFrame:
    """One lookup, inputs already validated: ``labels`` plus the features and the matched flag."""
    from pyspark.sql import functions as F

    table_keys = [
        f"__key{i}" for i in range(len(keys))
    ]  # internal names: nothing can clash with a label column
    feature_time = (
        [_spark_timestamp(features, timestamp_key).alias(_FEATURE_TIME)]
        if timestamp_key
        else [F.lit(True).alias(_FEATURE_TIME)]
    )  # no history: the marker only tells matched labels apart
    table = features.select(
        *[F.col(k).alias(t) for k, t in zip(keys, table_keys)],
        *[F.col(f) for f in lookup.feature_names],
        *feature_time,
    )
    on = [F.col(label_key) == F.col(t) for label_key, t in zip(lookup.lookup_key, table_keys)]
    if lookup.timestamp_lookup_key:
        # Equi-join on the keys, keep the feature rows not newer than the label, then the newest of
        # those per label row. Each label row meets only its own key's versions (few), so the join
        # emits at most labels x versions-per-key rows; the window is partitioned by (keys, label
        # row), which the join's partitioning on the keys already satisfies: no extra shuffle and
        # no sort of the whole table in one piece. No cross join, no nested-loop join.
        left = labels.withColumn(_ROW, F.monotonically_increasing_id()).withColumn(
            _LABEL_TIME, _spark_timestamp(labels, lookup.timestamp_lookup_key)
        )
        joined = left.join(table, on=[*on, F.col(_FEATURE_TIME) <= F.col(_LABEL_TIME)], how="left")
        joined = (
            joined.withColumn(_RANK, _newest_first([*lookup.lookup_key, _ROW], F.col(_FEATURE_TIME)))
            .where(F.col(_RANK) == 1)
            .drop(_RANK, _ROW, _LABEL_TIME)
        )
    else:
        # Latest value per key: at most one table row per key after latest_per_key, so the left
        # join keeps exactly the label rows.
        latest = latest_per_key(table, table_keys, _FEATURE_TIME if timestamp_key else None)
        joined = labels.join(latest, on=on, how="left")
    return joined.withColumn(matched_column(lookup.table), F.col(_FEATURE_TIME).isNotNull()).drop(
        _FEATURE_TIME, *table_keys
    )


def point_in_time_join(
    labels: DataFrame,
    features: DataFrame,
    lookup: FeatureLookup,
    keys: list[str],
    timestamp_key: str | None,
) -> DataFrame:
    """``labels`` with ``lookup.feature_names`` as of each label's time and the boolean column
    ``matched_column(lookup.table)`` (False: no feature row yet, the features are null).
    ``keys`` / ``timestamp_key`` are the feature table's. Row order is not kept (Spark has none).
    """
    return build_training_set(labels, [(lookup, features, keys, timestamp_key)])


def build_training_set(
    labels: DataFrame,
    lookups: list[tuple[FeatureLookup, DataFrame, list[str], str | None]],
) -> DataFrame:
    """Labels with every lookup's features joined point in time, and one boolean column per feature
    table, named ``matched_column(table)``, saying which labels found a feature row there.

    The matched flags are columns of the result, so the caller counts unmatched labels with one
    aggregation (``unmatched_counts``) and filters on the same columns (``all_matched``). Each lookup is an equi-join on its keys with
    ``feature_time <= label_time`` and a per-label-row window keeping the newest match: its cost is
    proportional to labels x feature versions per key (few), never labels x feature rows. (A key
    with very many labels and versions is one task's work: the join is partitioned by key.)

    Every input is checked before any join: schemas first (free), then one scan of the labels for
    null times and one aggregation per feature table for duplicated or timeless rows. The result is
    lazy and recomputes the joins on every action: persist or write it before counting, filtering
    and splitting it.
    """
    _check_one_table_per_feature([lookup for lookup, *_ in lookups])
    flags = [matched_column(lookup.table) for lookup, *_ in lookups]
    shared = sorted({f for f in flags if flags.count(f) > 1})
    if shared:
        raise ValueError(
            f"feature tables {[spec.table for spec, *_ in lookups]} would share the matched column(s) "
            f"{shared}: look each table up once"
        )
    columns, wheres = list(labels.columns), []
    for (lookup, features, keys, timestamp_key), flag in zip(lookups, flags):
        wheres.append(_check_lookup(columns, list(features.columns), lookup, keys, timestamp_key))
        columns += [*lookup.feature_names, flag]
    _check_label_times(
        labels,
        [
            t
            for t in dict.fromkeys(spec.timestamp_lookup_key for spec, *_ in lookups)
            if t and t in labels.columns
        ],
    )
    for (_, features, keys, timestamp_key), where in zip(lookups, wheres):
        _check_feature_rows(features, where, keys, timestamp_key)
    frame = labels
    for lookup, features, keys, timestamp_key in lookups:
        frame = _join(frame, features, lookup, keys, timestamp_key)
    return frame
