"""Parse and validate landing files against the dataset's column rules.

Nothing is dropped silently: every row either comes back typed in ``valid`` or in ``quarantine``
with its line number, its original fields and every reason it was refused. Problems that concern
the whole file (empty, missing columns, not UTF-8) are listed in ``problems`` as well.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd


class Rule(Protocol):
    type: str
    nullable: bool
    allowed: list[Any] | None
    min: float | None
    max: float | None


QUARANTINE_COLUMNS = ["source_file", "line_number", "record", "reason"]
_TRUE = {"true", "yes", "1"}
_FALSE = {"false", "no", "0"}


@dataclass
class ParsedFile:
    path: str
    valid: pd.DataFrame
    quarantine: pd.DataFrame
    problems: list[str] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        return len(self.valid) + len(self.quarantine)


def _quarantine_frame(path: str, lines: list[int], records: list[str], reasons: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {"source_file": path, "line_number": pd.Series(lines, dtype="int64"),
         "record": pd.Series(records, dtype="object"), "reason": pd.Series(reasons, dtype="object")},
        columns=QUARANTINE_COLUMNS,
    )


def _empty_valid(rules: Mapping[str, Rule]) -> pd.DataFrame:
    return _typed(pd.DataFrame({c: pd.Series(dtype="object") for c in rules}), rules)[0]


def _whole_file_refused(path: str, rules, reason: str, lines=(), records=()) -> ParsedFile:
    lines, records = list(lines) or [0], list(records) or [""]
    return ParsedFile(
        path, _empty_valid(rules), _quarantine_frame(path, lines, records, [reason] * len(lines)), [reason]
    )


def _read_rows(text: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    reader = csv.reader(io.StringIO(text))
    header: list[str] = []
    rows: list[tuple[int, list[str]]] = []
    for fields in reader:
        if not header:
            header = [h.strip() for h in fields]
            continue
        if fields:  # csv yields [] for blank lines
            rows.append((reader.line_num, fields))
    return header, rows


def _typed(strings: pd.DataFrame, rules: Mapping[str, Rule]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Columns converted to their rule types, and a frame of per-cell reasons ('' where fine)."""
    typed: dict[str, pd.Series] = {}
    parse_reasons = pd.DataFrame(index=strings.index)
    for column, rule in rules.items():
        raw = strings[column].astype("object").str.strip()
        raw = raw.where(raw != "", None)
        reason = pd.Series("", index=strings.index, dtype="object")
        if rule.type in ("double", "long"):
            values = pd.to_numeric(raw, errors="coerce")
            bad = raw.notna() & values.isna()
            reason[bad] = f"{column}: " + raw[bad].map(repr) + " is not a number"
            if rule.type == "long":
                fractional = values.notna() & (values % 1 != 0)
                reason[fractional] = f"{column}: " + raw[fractional].map(repr) + " is not a whole number"
                values = values.where(~fractional).astype("Int64")
            else:
                values = values.astype("float64")
        elif rule.type == "boolean":
            values = raw.str.lower().map(lambda v: True if v in _TRUE else False if v in _FALSE else None)
            bad = raw.notna() & values.isna()
            reason[bad] = f"{column}: " + raw[bad].map(repr) + " is not true/false"
            values = values.astype("boolean")
        else:
            values = raw.astype("string")
        typed[column] = values
        parse_reasons[column] = reason
    typed_frame = pd.DataFrame(typed, index=strings.index)
    rule_reasons = rule_violations(typed_frame, rules)
    # A value that could not be parsed is reported as such, not also as empty.
    return typed_frame, parse_reasons.where(parse_reasons != "", rule_reasons)


def rule_violations(frame: pd.DataFrame, rules: Mapping[str, Rule]) -> pd.DataFrame:
    """Per-cell reasons ('' where fine) for typed values that break nullability, allowed values or ranges."""
    reasons = pd.DataFrame(index=frame.index)
    for column, rule in rules.items():
        values = frame[column]
        reason = pd.Series("", index=frame.index, dtype="object")
        present = values.notna()
        if not rule.nullable:
            reason[~present] = f"{column} is empty"
        shown = values.astype("object").map(str)
        if rule.allowed is not None:
            numeric = rule.type in ("double", "long")
            allowed = [float(a) for a in rule.allowed] if numeric else [str(a) for a in rule.allowed]
            outside = present & ~values.astype("float64" if numeric else "object").isin(allowed)
            reason[outside] = f"{column}: " + shown[outside].map(repr) + f" is not one of {rule.allowed}"
        if rule.min is not None:
            low = present & (values.astype("float64") < rule.min)
            reason[low] = f"{column}: " + shown[low] + f" is below the minimum {rule.min:g}"
        if rule.max is not None:
            high = present & (values.astype("float64") > rule.max)
            reason[high] = f"{column}: " + shown[high] + f" is above the maximum {rule.max:g}"
        reasons[column] = reason
    return reasons


def parse_landing_file(path: str | Path, rules: Mapping[str, Rule], key: str) -> ParsedFile:
    """Read one CSV landing file and split it into typed valid rows and quarantined rows."""
    path = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return _whole_file_refused(path, rules, f"file is not UTF-8 text ({exc.reason} at byte {exc.start})")
    if not text.strip():
        return _whole_file_refused(path, rules, "file is empty")
    header, rows = _read_rows(text)
    if not rows:
        return _whole_file_refused(path, rules, "file has a header but no rows")

    missing = [c for c in rules if c not in header]
    records = [json.dumps(dict(zip(header, fields)), ensure_ascii=False) for _, fields in rows]
    lines = [line for line, _ in rows]
    if missing:
        reason = f"file lacks required column(s) {', '.join(missing)} (header: {', '.join(header)})"
        return _whole_file_refused(path, rules, reason, lines, records)
    problems = []
    extra = [c for c in header if c not in rules]
    if extra:
        problems.append(f"ignored column(s) not in the dataset contract: {', '.join(extra)}")

    width = len(header)
    shape_reason = [
        "" if len(fields) == width else f"row has {len(fields)} fields, the header has {width}"
        for _, fields in rows
    ]
    padded = [(fields + [""] * width)[:width] for _, fields in rows]
    strings = pd.DataFrame(padded, columns=header, dtype="object")[list(rules)]
    typed, reasons = _typed(strings, rules)

    keys = strings[key].str.strip()
    dup = keys.duplicated(keep=False) & keys.ne("")
    if dup.any():
        line_arr = pd.Series(lines, index=strings.index)
        where = line_arr[dup].groupby(keys[dup]).agg(lambda s: ", ".join(map(str, s)))
        reasons["_duplicate"] = ""
        reasons.loc[dup, "_duplicate"] = (
            f"{key} " + keys[dup].map(repr) + " appears more than once in this file (lines "
            + keys[dup].map(where) + ")"
        )
        problems.append(f"{int(dup.sum())} rows share a {key} with another row of the file")

    reason_text = reasons.apply(lambda r: "; ".join(x for x in r if x), axis=1)
    # A row with the wrong number of fields has shifted values: its cell reasons would mislead.
    shape = pd.Series(shape_reason, index=strings.index)
    reason_text = reason_text.where(shape == "", shape)
    bad = reason_text != ""
    bad_idx = np.flatnonzero(bad.to_numpy())
    quarantine = _quarantine_frame(
        path, [lines[i] for i in bad_idx], [records[i] for i in bad_idx], reason_text[bad].tolist()
    )
    if len(quarantine):
        problems.append(f"{len(quarantine)} of {len(rows)} rows quarantined")
    return ParsedFile(path, typed[~bad].reset_index(drop=True), quarantine, problems)
