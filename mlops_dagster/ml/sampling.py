"""Seeded, stratified, exact row selection in Spark: the train/test split and bounded samples.

Every row gets ``h = xxhash64(salt, seed, key...)``; within each class the rows with the smallest
``(h, key)`` are selected, as many as the class's share of the requested total. A row's fate
therefore depends only on its key, its class, the seed and the salt (and on which other rows
exist), never on row order or partitioning. The split and the samples use different salts, so a
sample is independent of the split.

Exact counts without a global sort (``_Selection``): one aggregation counts the rows per class and
per hash bucket (the top 12 bits of ``h``: at most classes x 4096 small rows reach the driver),
which locates the bucket holding each class's boundary; then only the rows of those buckets are
collected (about rows-of-the-class / 4096 each: ~1,200 at 10M rows with two balanced classes) and
sorted on the driver to find the exact cutoff. The selection itself is a plain column expression:
no join, no window, no sort of the data.

Every function is lazy in its result but runs small jobs on ``df`` (each listed in its docstring),
and each job recomputes ``df``: pass a frame read from storage or persisted, not a long plan.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

SPLIT = "split"
_SPLIT_SALT = "split"
_SAMPLE_SALT = "sample"
_BUCKET_BITS = 12  # 4096 hash buckets per class; read at call time (tests shrink it)


class Split(NamedTuple):
    """The frame with its split column, and how many rows of each class went to each side."""

    frame: DataFrame
    rows: dict[tuple[str, Any], int]  # ("train" | "test", class) -> rows


class Sample(NamedTuple):
    """A bounded, stratified selection of a frame's rows (``frame`` itself when nothing was dropped)."""

    frame: DataFrame
    available_rows: int
    used_rows: int


def stratified_split(
    df: DataFrame,
    key: str | list[str],
    label: str,
    test_size: float,
    seed: int,
    split_column: str = SPLIT,
    min_classes: int = 2,
) -> Split:
    """``df`` with a ``split_column`` of ``"train"`` / ``"test"``, stratified on ``label``, seeded.

    ``ceil(test_size x rows)`` rows go to test (as scikit-learn's ``train_test_split``), shared
    over the classes by largest remainder: each class gets ``floor`` of its exact share, and the
    rows left over go one each to the classes with the largest fractional parts (ties: the larger
    class, then the smaller class value). So each class sends ``floor`` or ``ceil`` of
    ``test_size x its rows`` to test. A null label is a class of its own. Not the rows scikit-learn
    would pick: a row's side depends on its key's hash, not on its position. ``min_classes``: a
    classifier's training set needs both outcomes; a constant stratum (regression) has one.

    Jobs on ``df``: the per-class bucket counts (also refuses null keys), a check that the key is
    unique (one shuffle of the key columns: a group-by on them, read until the first duplicate),
    and the collection of the boundary buckets.
    """
    from pyspark.sql import functions as F

    keys = _keys(key)
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be between 0 and 1 (exclusive), not {test_size}")
    _require(df, [*keys, label])
    if split_column in df.columns:
        raise ValueError(f"the training set already has a {split_column!r} column")
    selection = _Selection.count(df, key, label, seed, _SPLIT_SALT)
    classes = [c for c in selection.sizes if c is not None]
    if len(classes) < min_classes:
        raise ValueError(
            f"the training set has a single class in {label!r} ({selection.rows} rows): "
            "a classifier needs examples of both outcomes"
        )
    if not df.groupBy(*keys).count().where(F.col("count") > 1).isEmpty():
        raise ValueError(f"the training set has duplicated {key!r} values: the key must be unique")
    test, _, per_class = selection.smallest(math.ceil(test_size * selection.rows))
    rows = {
        **{("test", c): n for c, n in per_class.items()},
        **{("train", c): selection.sizes[c] - per_class.get(c, 0) for c in selection.sizes},
    }
    return Split(df.withColumn(split_column, F.when(test, F.lit("test")).otherwise(F.lit("train"))), rows)


def stratified_sample(df: DataFrame, label: str, max_rows: int, seed: int, key: str | list[str]) -> Sample:
    """At most ``max_rows`` rows of ``df``, seeded and stratified on ``label`` (class shares kept
    by largest remainder, as in ``stratified_split``); ``df`` itself when it has at most
    ``max_rows`` rows.

    Exactly ``max_rows`` when the key is unique. That is not checked here (the split checks it):
    rows sharing a key and a class are kept or dropped together, so duplicates can only make the
    sample smaller, and ``used_rows`` is always the exact count. Jobs on ``df``: the per-class bucket counts (also
    refuses null keys) and, when sampling, the collection of the boundary buckets.
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, not {max_rows}")
    return _sample(df, label, seed, key, lambda rows: min(rows, max_rows))


def stratified_fraction(
    df: DataFrame, label: str, fraction: float, seed: int, key: str | list[str]
) -> Sample:
    """``round(fraction x rows)`` rows of ``df`` (half up), seeded and stratified like
    ``stratified_sample`` (same hash salt, so the same seed picks by the same rule); ``df``
    unchanged when ``fraction >= 1``.

    Bounds a second frame the same way as a first: ``fraction = used_rows / available_rows`` of
    the first's ``stratified_sample`` (e.g. the test split by the train split's sampling rate).
    """
    if not fraction > 0:
        raise ValueError(f"fraction must be positive, not {fraction}")
    return _sample(df, label, seed, key, lambda rows: min(rows, math.floor(fraction * rows + 0.5)))


def _sample(
    df: DataFrame, label: str, seed: int, key: str | list[str], total: Callable[[int], int]
) -> Sample:
    _require(df, [*_keys(key), label])
    selection = _Selection.count(df, key, label, seed, _SAMPLE_SALT)
    wanted = total(selection.rows)
    if wanted >= selection.rows:
        return Sample(df, selection.rows, selection.rows)
    kept, used, _ = selection.smallest(wanted)
    return Sample(df.where(kept), selection.rows, used)


def _keys(key: str | list[str]) -> list[str]:
    return [key] if isinstance(key, str) else list(key)


def _require(df: DataFrame, columns: list[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"the training set is missing column(s) {missing}; it has {df.columns}")


def _class_order(value: Any) -> tuple:
    return (value is None, value)  # a null class sorts last; there is at most one


def _shares(sizes: dict[Any, int], total: int) -> dict[Any, int]:
    """``total`` rows shared over classes in proportion to ``sizes``, by largest remainder
    (integer arithmetic: no float rounding decides a row)."""
    rows = sum(sizes.values())
    base = {c: total * n // rows for c, n in sizes.items()}
    left = total - sum(base.values())
    by_remainder = sorted(sizes, key=lambda c: (-(total * sizes[c] % rows), -sizes[c], _class_order(c)))
    for c in by_remainder[:left]:
        base[c] += 1
    return base


@dataclass(frozen=True)
class _Selection:
    """The cutoff machinery shared by the split and the samples: row counts per class and hash
    bucket, and from them the exact ``(h, key)`` cutoff of each class."""

    df: DataFrame
    label: str
    keys: list[str]
    h: Column
    bits: int
    buckets: dict[Any, list[tuple[int, int]]]  # class -> [(bucket, rows)] in bucket order

    @classmethod
    def count(cls, df: DataFrame, key: str | list[str], label: str, seed: int, salt: str) -> _Selection:
        """Cost: one scan of ``df``, aggregated per partition before the shuffle; the driver gets
        at most classes x 2^bits rows of (class, bucket, count)."""
        from pyspark.sql import functions as F

        keys, bits = _keys(key), _BUCKET_BITS
        h = F.xxhash64(F.lit(salt), F.lit(seed), *[F.col(k) for k in keys])
        any_null = F.lit(False)
        for k in keys:
            any_null = any_null | F.col(k).isNull()
        counts = (
            df.groupBy(F.col(label).alias("class"), F.shiftright(h, 64 - bits).alias("bucket"))
            .agg(F.count(F.lit(1)).alias("rows"), F.count_if(any_null).alias("null_keys"))
            .collect()
        )
        null_keys = sum(r["null_keys"] for r in counts)
        if null_keys:
            raise ValueError(
                f"the training set has {null_keys} row(s) with a null {key!r}: "
                "the key must be set on every row"
            )
        buckets: dict[Any, list[tuple[int, int]]] = {}
        for r in sorted(counts, key=lambda r: r["bucket"]):
            buckets.setdefault(r["class"], []).append((r["bucket"], r["rows"]))
        return cls(
            df, label, keys, h, bits, dict(sorted(buckets.items(), key=lambda kv: _class_order(kv[0])))
        )

    @property
    def sizes(self) -> dict[Any, int]:
        return {c: sum(n for _, n in b) for c, b in self.buckets.items()}

    @property
    def rows(self) -> int:
        return sum(self.sizes.values())

    def smallest(self, total: int) -> tuple[Column, int, dict[Any, int]]:
        """A boolean column selecting, in each class, its share of ``total`` rows: those with the
        smallest ``(h, key)``; how many rows it selects, in all and per class.

        Cost: one job reading ``df`` that collects only the boundary bucket of each class.
        """
        from pyspark.sql import functions as F

        take, sizes = _shares(self.sizes, total), self.sizes
        shift = 64 - self.bits
        cuts: dict[
            Any, tuple[int, int, int]
        ] = {}  # class -> (bucket holding its cut, rows below it, rows in it)
        for c, buckets in self.buckets.items():
            below = 0
            for bucket, rows in buckets:
                if 0 < take[c] < sizes[c] and take[c] <= below + rows:
                    cuts[c] = (bucket, below, rows)
                    break
                below += rows
        candidates = self._boundary_rows(
            {c: bucket for c, (bucket, below, rows) in cuts.items() if take[c] < below + rows}
        )
        branches, per_class = [], {}
        for c in self.buckets:
            if take[c] == 0:
                continue
            if c not in cuts:  # every row of the class
                branches.append((c, F.lit(True)))
                per_class[c] = take[c]
                continue
            bucket, below, _ = cuts[c]
            needed = take[c] - below
            if c not in candidates:  # the cut is the end of the bucket: no row of it needs a look
                branches.append((c, self.h < F.lit((bucket + 1) << shift)))
                per_class[c] = take[c]
                continue
            ranked = sorted(candidates[c])
            while needed and ranked[needed - 1] == ranked[needed]:  # a duplicated key straddles the cut:
                needed -= 1  # leave every copy out
            under = self.h < F.lit(bucket << shift)  # every row of the buckets below
            branches.append((c, under if not needed else under | self._at_most(ranked[needed - 1])))
            per_class[c] = below + needed
        selected = None
        for c, condition in branches:  # one CASE on the class
            is_class = F.col(self.label).eqNullSafe(F.lit(c))
            selected = F.when(is_class, condition) if selected is None else selected.when(is_class, condition)
        return (
            (F.lit(False) if selected is None else selected.otherwise(F.lit(False))),
            sum(per_class.values()),
            per_class,
        )

    def _boundary_rows(self, bucket_of: dict[Any, int]) -> dict[Any, list[tuple]]:
        """(h, key...) of every row in the given bucket of each class."""
        from pyspark.sql import functions as F

        if not bucket_of:
            return {}
        where = F.lit(False)
        for c, bucket in bucket_of.items():
            where = where | (
                F.col(self.label).eqNullSafe(F.lit(c))
                & (F.shiftright(self.h, 64 - self.bits) == F.lit(bucket))
            )
        rows = (
            self.df.where(where)
            .select(F.col(self.label).alias("class"), self.h.alias("h"), *[F.col(k) for k in self.keys])
            .collect()
        )
        found: dict[Any, list[tuple]] = {c: [] for c in bucket_of}
        for r in rows:  # by position: a key column may share a name with the aliases
            found[r[0]].append(tuple(r)[1:])
        return found

    def _at_most(self, cutoff: tuple) -> Column:
        """``(h, key...) <= cutoff`` in lexicographic order (the key only breaks ties of ``h``).

        The driver sorted the candidates with Python's order, which agrees with Spark's for the
        key types we use (numbers; strings, both ordering by code point)."""
        from pyspark.sql import functions as F

        columns = [self.h, *[F.col(k) for k in self.keys]]
        condition = columns[-1] <= F.lit(cutoff[-1])
        for column, value in reversed(list(zip(columns[:-1], cutoff[:-1]))):
            condition = (column < F.lit(value)) | ((column == F.lit(value)) & condition)
        return condition
