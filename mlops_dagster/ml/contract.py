"""The dataset contract on Arrow columns: text to typed values, and what is wrong with each cell.

Every check is a vectorized Arrow kernel over a whole batch; the words that explain a refusal are
only built for the rows that were refused, so a clean batch costs a few kernels per column. Used
by ingestion (landing text to typed rows) and by the raw table's contract check (typed rows).
Pure functions of Arrow data: no Spark, no Dagster.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


class Rule(Protocol):
    type: str
    nullable: bool
    allowed: list[Any] | None
    min: float | None
    max: float | None


# What is wrong with a cell; one code per cell. A value that cannot be parsed is reported as such
# (not also as empty or out of range); among the rules a later one wins, as the checks run in order.
OK, NOT_A_NUMBER, NOT_WHOLE, NOT_BOOLEAN, EMPTY, NOT_ALLOWED, BELOW_MIN, ABOVE_MAX, NOT_A_TIME = range(9)

TIMESTAMP = pa.timestamp("us", tz="UTC")
ARROW_TYPES = {
    "string": pa.string(),
    "double": pa.float64(),
    "long": pa.int64(),
    "boolean": pa.bool_(),
    "timestamp": TIMESTAMP,
}
# A decimal number as people write them (no hex, no inf/nan, no trailing type letters).
_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
# ISO 8601: a date, or a date and time (seconds and fraction optional), with an optional zone
# (none: UTC).
_TIME = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?(Z|[+-]\d{2}:?\d{2})?$"
_WITHOUT_ZONE = [
    (r"^(\d{4}-\d{2}-\d{2})$", r"\1T00:00:00"),
    (r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})$", r"\1T\2:00"),
    (r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2}(\.\d+)?)$", r"\1T\2Z"),
    (r" ", "T"),
]
_TRUE = ["true", "yes", "1"]
_FALSE = ["false", "no", "0"]


def _mask(array: pa.Array) -> np.ndarray:
    """A boolean Arrow array as a NumPy mask, null counting as False."""
    return pc.fill_null(array, False).to_numpy(zero_copy_only=False)


def parse_column(raw: pa.Array, rule: Rule) -> tuple[pa.Array, np.ndarray]:
    """Text cells (already stripped, None where empty) as the rule's type, and per-cell parse codes.
    Cells of the rule's type already (a Parquet column) are taken as they are; a double that is NaN
    or infinite is not a number, as its text would not be."""
    codes = np.zeros(len(raw), dtype=np.int8)
    if rule.type != "string" and raw.type == ARROW_TYPES[rule.type]:
        if rule.type == "double":
            codes[~_mask(pc.is_finite(raw)) & _mask(pc.is_valid(raw))] = NOT_A_NUMBER
            return pc.if_else(pc.is_finite(raw), raw, pa.scalar(None, pa.float64())), codes
        return raw, codes
    present = _mask(pc.is_valid(raw))
    if rule.type in ("double", "long"):
        number = pc.match_substring_regex(raw, _NUMBER)
        codes[present & ~_mask(number)] = NOT_A_NUMBER
        values = pc.if_else(number, raw, pa.scalar(None, pa.string())).cast(pa.float64())
        if rule.type == "long":
            fractional = _mask(pc.not_equal(values, pc.floor(values)))
            codes[fractional] = NOT_WHOLE
            values = pc.if_else(pa.array(fractional), pa.scalar(None, pa.float64()), values).cast(pa.int64())
        return values, codes
    if rule.type == "boolean":
        lowered = pc.utf8_lower(raw)
        is_true, is_false = pc.is_in(lowered, pa.array(_TRUE)), pc.is_in(lowered, pa.array(_FALSE))
        codes[present & ~_mask(is_true) & ~_mask(is_false)] = NOT_BOOLEAN
        return pc.if_else(is_true, True, pc.if_else(is_false, False, pa.scalar(None, pa.bool_()))), codes
    if rule.type == "timestamp":
        return _times(raw, codes, present)
    return raw.cast(pa.string()), codes


def _times(raw: pa.Array, codes: np.ndarray, present: np.ndarray) -> tuple[pa.Array, np.ndarray]:
    """ISO 8601 text as UTC timestamps; a date alone is midnight, a time without a zone is UTC."""
    shaped = pc.match_substring_regex(raw, _TIME)
    text = pc.if_else(shaped, raw, pa.scalar(None, pa.string()))
    for pattern, replacement in _WITHOUT_ZONE:
        text = pc.replace_substring_regex(text, pattern, replacement)
    try:
        values = text.cast(TIMESTAMP)
    except pa.ArrowInvalid:  # a well-shaped but impossible date (2026-02-30): cell by cell
        values = pa.array([_time(t) for t in text.to_pylist()], TIMESTAMP)
    codes[present & _mask(pc.is_null(values))] = NOT_A_TIME
    return values, codes


def _time(text: str | None):
    try:
        return pa.scalar(text).cast(TIMESTAMP).as_py() if text is not None else None
    except pa.ArrowInvalid:
        return None


def rule_codes(values: pa.Array, rule: Rule) -> np.ndarray:
    """Per-cell codes for typed values that break nullability, allowed values or the range."""
    codes = np.zeros(len(values), dtype=np.int8)
    present = _mask(pc.is_valid(values))
    if not rule.nullable:
        codes[~present] = EMPTY
    if rule.allowed is not None:
        numeric = rule.type in ("double", "long")
        allowed = pa.array([float(a) for a in rule.allowed] if numeric else [str(a) for a in rule.allowed])
        compared = values.cast(pa.float64()) if numeric else values.cast(pa.string())
        codes[present & ~_mask(pc.is_in(compared, value_set=allowed))] = NOT_ALLOWED
    if rule.min is not None:
        codes[_mask(pc.less(values.cast(pa.float64()), rule.min))] = BELOW_MIN
    if rule.max is not None:
        codes[_mask(pc.greater(values.cast(pa.float64()), rule.max))] = ABOVE_MAX
    return codes


def check_cells(
    raw: Mapping[str, pa.Array], rules: Mapping[str, Rule]
) -> tuple[dict[str, pa.Array], dict[str, np.ndarray]]:
    """Typed columns and per-cell codes for a batch of text columns (one per contract column)."""
    typed, codes = {}, {}
    for column, rule in rules.items():
        values, parse = parse_column(raw[column], rule)
        rules_broken = rule_codes(values, rule)
        typed[column], codes[column] = values, np.where(parse != OK, parse, rules_broken)
    return typed, codes


def describe(column: str, code: int, raw: Any, value: Any, rule: Rule) -> str:
    """Why one cell was refused, in words (``raw`` as written in the file, ``value`` as typed)."""
    if code == NOT_A_NUMBER:
        return f"{column}: {raw!r} is not a number"
    if code == NOT_WHOLE:
        return f"{column}: {raw!r} is not a whole number"
    if code == NOT_BOOLEAN:
        return f"{column}: {raw!r} is not true/false"
    if code == NOT_A_TIME:
        return f"{column}: {raw!r} is not a date or time (ISO 8601, e.g. 2026-11-23 or 2026-11-23T10:30:00Z)"
    if code == EMPTY:
        return f"{column} is empty"
    if code == NOT_ALLOWED:
        return f"{column}: {str(value)!r} is not one of {rule.allowed}"
    if code == BELOW_MIN:
        return f"{column}: {value} is below the minimum {rule.min:g}"
    return f"{column}: {value} is above the maximum {rule.max:g}"


def cell_reasons(
    rows: np.ndarray,
    raw: Mapping[str, pa.Array],
    typed: Mapping[str, pa.Array],
    codes: Mapping[str, np.ndarray],
    rules: Mapping[str, Rule],
) -> list[list[str]]:
    """For each of ``rows`` (indices), the reasons of its refused cells in contract column order."""
    reasons: list[list[str]] = [[] for _ in rows]
    for column, rule in rules.items():
        column_codes = codes[column][rows]
        hit = np.flatnonzero(column_codes != OK)
        if not len(hit):
            continue
        at = pa.array(rows[hit])
        raws, values = raw[column].take(at).to_pylist(), typed[column].take(at).to_pylist()
        for j, i in enumerate(hit):
            reasons[i].append(describe(column, int(column_codes[i]), raws[j], values[j], rule))
    return reasons


def typed_schema(rules: Mapping[str, Rule]) -> pa.Schema:
    """The Arrow schema of typed contract columns, in contract order."""
    return pa.schema([pa.field(c, ARROW_TYPES[r.type]) for c, r in rules.items()])


def count_violations(rules: Mapping[str, Rule], batches) -> Iterator[pa.RecordBatch]:
    """For typed rows (e.g. a table's Arrow batches in a Spark task): per contract column, how many
    cells break a rule and the first such cell in words. One row per column with violations."""
    found: dict[str, list] = {}
    for batch in batches:
        table = pa.Table.from_batches([batch])
        for column, rule in rules.items():
            codes = rule_codes(table.column(column).combine_chunks(), rule)
            bad = np.flatnonzero(codes != OK)
            if not len(bad):
                continue
            seen = found.setdefault(column, [0, None])
            seen[0] += len(bad)
            if seen[1] is None:
                value = table.column(column)[int(bad[0])].as_py()
                seen[1] = describe(column, int(codes[bad[0]]), value, value, rule)
    yield pa.RecordBatch.from_pylist(
        [{"column": c, "violations": n, "example": e} for c, (n, e) in found.items()],
        schema=pa.schema([("column", pa.string()), ("violations", pa.int64()), ("example", pa.string())]),
    )
