"""Request parsing of the serving gateway: every accepted format, every refusal with a clear message."""

from __future__ import annotations

import json

import pytest

from mlops_dagster.serving.payload import BadRequest, Column, parse_rows

COLUMNS = [Column("plan", "string"), Column("months", "double"), Column("active", "boolean")]


def rows(payload) -> list:
    return parse_rows(json.dumps(payload).encode(), COLUMNS)


def test_every_format_gives_the_same_rows():
    expected = [["basic", 3.0, True], ["pro", 12.0, False]]
    assert (
        rows(
            {
                "dataframe_records": [
                    {"plan": "basic", "months": 3, "active": True},
                    {"months": 12, "plan": "pro", "active": False, "extra": 1},
                ]
            }
        )
        == expected
    )
    assert (
        rows(
            {
                "dataframe_split": {
                    "columns": ["months", "plan", "active"],
                    "data": [[3, "basic", True], [12, "pro", False]],
                }
            }
        )
        == expected
    )
    assert (
        rows(
            {
                "instances": [
                    {"plan": "basic", "months": 3, "active": True},
                    {"plan": "pro", "months": 12, "active": False},
                ]
            }
        )
        == expected
    )
    assert rows({"instances": [["basic", 3, True], ["pro", 12, False]]}) == expected
    assert (
        rows({"inputs": {"plan": ["basic", "pro"], "months": [3, 12], "active": [True, False]}}) == expected
    )
    assert rows({"inputs": [{"plan": "basic", "months": 3, "active": True}]}) == expected[:1]


def test_missing_values_pass_through_for_the_pipeline_to_impute():
    assert rows({"dataframe_records": [{"plan": None, "months": None, "active": True}]}) == [
        [None, None, True]
    ]
    assert parse_rows(b'{"instances": [["a", NaN, null]]}', COLUMNS) == [["a", None, None]]


def test_a_row_with_no_value_at_all_is_refused_naming_the_columns():
    with pytest.raises(BadRequest) as refused:
        rows(
            {
                "dataframe_records": [
                    {"plan": "a", "months": 1, "active": True},
                    {"plan": None, "months": None, "active": None},
                ]
            }
        )
    assert str(refused.value) == (
        "row(s) 1 have no value in any of the model's columns ['plan', 'months', 'active']: send at least one"
    )
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"


@pytest.mark.parametrize(
    "body, message",
    [
        (b"", "empty request body"),
        (b"   ", "empty request body"),
        (b"{not json", "malformed JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (
            b'{"rows": []}',
            "send exactly one of dataframe_split, dataframe_records, instances, inputs (found keys ['rows'])",
        ),
        (b'{"instances": [], "inputs": []}', "send exactly one of"),
        (b'{"dataframe_records": []}', "holds no rows"),
        (b'{"dataframe_records": [{"plan": "basic"}]}', "row 0 lacks column(s) ['months', 'active']"),
        (
            b'{"dataframe_records": [{"plan": "basic", "months": "three", "active": true}]}',
            "column 'months' expects a number (double), row 0 has 'three'",
        ),
        (
            b'{"dataframe_records": [{"plan": "basic", "months": true, "active": true}]}',
            "column 'months' expects a number",
        ),
        (
            b'{"dataframe_records": [{"plan": 7, "months": 1, "active": true}]}',
            "column 'plan' expects a string, row 0 has 7",
        ),
        (
            b'{"dataframe_records": [{"plan": "a", "months": 1, "active": "yes"}]}',
            "column 'active' expects true/false",
        ),
        (
            b'{"dataframe_split": {"columns": ["plan"], "data": [["a"]]}}',
            "dataframe_split lacks column(s) ['months', 'active']",
        ),
        (
            b'{"dataframe_split": {"columns": ["plan", "months", "active"], "data": [["a", 1]]}}',
            "row 0 must be a list of 3 values",
        ),
        (b'{"dataframe_split": [1]}', 'dataframe_split must be {"columns"'),
        (
            b'{"inputs": {"plan": ["a", "b"], "months": [1], "active": [true, false]}}',
            "same number of values",
        ),
        (b'{"instances": "abc"}', "instances must be a list of row objects"),
        # Numbers a float cannot hold, and JSON Python's parser refuses: client mistakes, not 500s.
        (
            b'{"instances": [["a", Infinity, true]]}',
            "column 'months' expects a finite number (double), row 0 has inf",
        ),
        (
            b'{"instances": [["a", -1e999, true]]}',
            "column 'months' expects a finite number (double), row 0 has -inf",
        ),
        (
            b'{"instances": [["a", 1' + b"0" * 400 + b", true]]}",
            "column 'months' expects a finite number (double), row 0 has an integer of 401 digits",
        ),
        (
            b'{"instances": [["a", 1' + b"0" * 5000 + b", true]]}",
            "malformed JSON: Exceeds the limit (4300 digits)",
        ),
        (b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "malformed JSON: nested too deeply"),
        (
            b'{"dataframe_split": {"columns": [["plan"], "months", "active"], "data": [[1, 2, 3]]}}',
            "dataframe_split columns must be column names (strings)",
        ),
        (
            b'{"dataframe_records": [{"plan": "a", "months": "' + b"y" * 10_000 + b'", "active": true}]}',
            "row 0 has '" + "y" * 59 + "...",
        ),  # a value is shown cut short
    ],
)
def test_bad_bodies_are_refused_with_a_message_naming_the_problem(body, message):
    with pytest.raises(BadRequest) as refused:
        parse_rows(body, COLUMNS)
    assert message in str(refused.value)
    assert 400 <= refused.value.status < 500


def test_too_many_rows_is_a_413():
    body = json.dumps(
        {"dataframe_split": {"columns": ["plan", "months", "active"], "data": [["a", 1, True]] * 11}}
    )
    with pytest.raises(BadRequest, match="11 rows in one request; the limit is 10") as refused:
        parse_rows(body.encode(), COLUMNS, max_rows=10)
    assert refused.value.status == 413
