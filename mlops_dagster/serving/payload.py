"""Request bodies of a serving endpoint, parsed into rows the model understands.

Accepts the formats of Databricks serving and MLflow's scoring server: ``dataframe_split``,
``dataframe_records``, ``instances`` and ``inputs``. Every problem is a ``BadRequest`` naming what
is wrong (the expected columns come from the model signature), never an exception from deep
inside pandas or the model.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


class BadRequest(ValueError):
    """A client error: the HTTP status and a message for the caller."""

    def __init__(self, message: str, status: int = 400, error_code: str = "BAD_REQUEST"):
        super().__init__(message)
        self.status, self.error_code = status, error_code


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # MLflow signature type: "string", "double", "long", "boolean", ...


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _shown(value: Any, limit: int = 60) -> str:
    """A value for an error message: its repr, cut short (a client may send megabytes)."""
    if isinstance(value, int) and abs(value) >= 10**limit:
        return f"an integer of {len(str(abs(value)))} digits"
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _number(column: Column, value: Any, row: int) -> float:
    if not _numeric(value):
        raise BadRequest(
            f"column {column.name!r} expects a number ({column.type}), row {row} has {_shown(value)}"
        )
    try:
        number = float(value)
    except OverflowError:  # an integer beyond 1.8e308
        number = math.inf
    if math.isinf(number):
        raise BadRequest(
            f"column {column.name!r} expects a finite number ({column.type}), row {row} has {_shown(value)}",
            error_code="INVALID_PARAMETER_VALUE",
        )
    return number


def _check_cell(column: Column, value: Any, row: int) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None  # missing values are imputed by the model pipeline
    if column.type in ("double", "float", "long", "integer"):
        return _number(column, value, row)
    if column.type == "boolean":
        if not isinstance(value, bool):
            raise BadRequest(f"column {column.name!r} expects true/false, row {row} has {_shown(value)}")
        return value
    if not isinstance(value, str):
        raise BadRequest(f"column {column.name!r} expects a string, row {row} has {_shown(value)}")
    return value


def _from_records(records: Any, columns: list[Column], field: str) -> list[list[Any]]:
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise BadRequest(f"{field} must be a list of objects (one per row, column name -> value)")
    names = [c.name for c in columns]
    rows = []
    for i, record in enumerate(records):
        missing = [n for n in names if n not in record]
        if missing:
            raise BadRequest(f"row {i} lacks column(s) {missing}; the model expects {names}")
        rows.append([_check_cell(c, record[c.name], i) for c in columns])
    return rows


def _from_split(split: Any, columns: list[Column]) -> list[list[Any]]:
    if (
        not isinstance(split, dict)
        or not isinstance(split.get("columns"), list)
        or not isinstance(split.get("data"), list)
    ):
        raise BadRequest('dataframe_split must be {"columns": [...], "data": [[...], ...]}')
    given = split["columns"]
    if not all(isinstance(name, str) for name in given):
        raise BadRequest("dataframe_split columns must be column names (strings)")
    missing = [c.name for c in columns if c.name not in given]
    if missing:
        raise BadRequest(
            f"dataframe_split lacks column(s) {missing}; the model expects {[c.name for c in columns]}"
        )
    index = {name: i for i, name in enumerate(given)}
    rows = []
    for r, values in enumerate(split["data"]):
        if not isinstance(values, list) or len(values) != len(given):
            raise BadRequest(f"dataframe_split row {r} must be a list of {len(given)} values")
        rows.append([_check_cell(c, values[index[c.name]], r) for c in columns])
    return rows


def _from_columnar(inputs: Any, columns: list[Column]) -> list[list[Any]]:
    names = [c.name for c in columns]
    missing = [n for n in names if n not in inputs]
    if missing:
        raise BadRequest(f"inputs lack column(s) {missing}; the model expects {names}")
    lengths = {len(v) if isinstance(v, list) else 1 for v in (inputs[n] for n in names)}
    if len(lengths) != 1:
        raise BadRequest("inputs columns must all have the same number of values")
    n = lengths.pop()
    cols = [inputs[c.name] if isinstance(inputs[c.name], list) else [inputs[c.name]] for c in columns]
    return [[_check_cell(c, cols[j][i], i) for j, c in enumerate(columns)] for i in range(n)]


def _keyed_records(field: str, value: Any, columns: list[Column]) -> list[dict[str, Any]] | None:
    """The request as row objects when it names its columns but lacks some model columns (e.g.
    sends only the entity key, for features to be looked up); None when nothing is to be filled
    or the shape is wrong (the usual parsing then says what is wrong)."""
    names = [c.name for c in columns]
    if field == "dataframe_split":
        if not (
            isinstance(value, dict)
            and isinstance(value.get("columns"), list)
            and all(isinstance(name, str) for name in value["columns"])
            and isinstance(value.get("data"), list)
            and all(isinstance(r, list) and len(r) == len(value["columns"]) for r in value["data"])
        ):
            return None
        records = [dict(zip(value["columns"], row)) for row in value["data"]]
    elif isinstance(value, dict) and field in ("inputs", "instances"):
        if not all(isinstance(v, list) for v in value.values()) or len({len(v) for v in value.values()}) != 1:
            return None
        records = [dict(zip(value, row)) for row in zip(*value.values())]
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        records = value
    else:
        return None
    return records if any(n not in r for r in records for n in names) else None


def parse_rows(
    body: bytes,
    columns: list[Column],
    max_rows: int = 10_000,
    fill: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
) -> list[list[Any]]:
    """Rows (values in signature column order) from a request body, or a ``BadRequest``.

    ``fill`` completes row objects that lack model columns (feature lookup by entity key); values
    the request does send are kept."""
    if not body or not body.strip():
        raise BadRequest(f"empty request body: send JSON with one of {', '.join(FORMATS)}")
    payload = parse_json(body)
    if not isinstance(payload, dict):
        raise BadRequest(f"the body must be a JSON object with one of {', '.join(FORMATS)}")
    present = [f for f in FORMATS if f in payload]
    if len(present) != 1:
        found = f"found {present}" if present else f"found keys {sorted(payload)[:8]}"
        raise BadRequest(f"send exactly one of {', '.join(FORMATS)} ({found})")
    field = present[0]
    value = payload[field]
    records = _keyed_records(field, value, columns) if fill is not None else None
    if records is not None:
        if len(records) > max_rows:
            raise BadRequest(
                f"{len(records)} rows in one request; the limit is {max_rows}",
                status=413,
                error_code="REQUEST_LIMIT_EXCEEDED",
            )
        rows = _from_records(fill(records), columns, field)
    elif field == "dataframe_split":
        rows = _from_split(value, columns)
    elif field == "dataframe_records":
        rows = _from_records(value, columns, field)
    elif isinstance(value, dict):  # columnar `inputs` / `instances`
        rows = _from_columnar(value, columns)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        rows = _from_records(value, columns, field)
    elif isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        rows = _from_split({"columns": [c.name for c in columns], "data": value}, columns)
    else:
        raise BadRequest(
            f"{field} must be a list of row objects, a list of rows in signature order "
            f"{[c.name for c in columns]}, or an object of columns"
        )
    if not rows:
        raise BadRequest(f"{field} holds no rows")
    if len(rows) > max_rows:
        raise BadRequest(
            f"{len(rows)} rows in one request; the limit is {max_rows}",
            status=413,
            error_code="REQUEST_LIMIT_EXCEEDED",
        )
    empty = [i for i, row in enumerate(rows) if all(v is None for v in row)]
    if empty:  # nothing to score: the model would answer with its imputed averages
        shown = ", ".join(map(str, empty[:10])) + (f" and {len(empty) - 10} more" if len(empty) > 10 else "")
        raise BadRequest(
            f"row(s) {shown} have no value in any of the model's columns {[c.name for c in columns]}: "
            "send at least one",
            error_code="INVALID_PARAMETER_VALUE",
        )
    return rows


def _no_constant(name: str):
    raise BadRequest(f"malformed JSON: {name} is not a number here", error_code="MALFORMED_REQUEST")


def _finite(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise BadRequest(
            f"malformed JSON: {_shown(text)} is beyond the range of a number", error_code="MALFORMED_REQUEST"
        )
    return number


def parse_json(body: bytes, finite: bool = False) -> Any:
    """The JSON value of ``body``, or a ``BadRequest`` (never a ValueError or RecursionError: a
    5,000-digit integer and arrays nested 100,000 deep are the client's mistakes). ``finite``
    refuses NaN, Infinity and numbers that overflow (1e999)."""
    hooks = {"parse_constant": _no_constant, "parse_float": _finite} if finite else {}
    try:
        return json.loads(body, **hooks)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, integers beyond 4,300 digits
        if isinstance(exc, BadRequest):
            raise
        raise BadRequest(f"malformed JSON: {exc}", error_code="MALFORMED_REQUEST") from None
    except RecursionError:
        raise BadRequest("malformed JSON: nested too deeply", error_code="MALFORMED_REQUEST") from None


def keyed_answers(request: str, response: str, key: str) -> list[tuple[str, Any]]:
    """(key, answer) for each row of a captured request that names its entity ``key``, with what the
    endpoint answered for it (the response's ``predictions``, in row order). A request without the
    key, or whose captured answer does not parse or has another number of rows, gives none."""
    try:
        keys = [row[0] for row in parse_rows(request.encode(), [Column(key, "string")], max_rows=1 << 30)]
        answers = json.loads(response)["predictions"]
    except (BadRequest, ValueError, KeyError, TypeError):
        return []
    return list(zip(keys, answers)) if isinstance(answers, list) and len(answers) == len(keys) else []
