"""Fuzzing the serving gateway: schemathesis sends what the gateway's own OpenAPI document allows
(and what it does not) to a live gateway with a manage token, and hypothesis drives the request
parser with every format, NaN, infinities, huge numbers, deep nesting and unicode keys. A client
mistake is a 4xx, never a 500 nor an exception from deep inside."""

from __future__ import annotations

import json
import math

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from mlops_dagster.serving.openapi import OPERATIONS, document
from mlops_dagster.serving.payload import FORMATS, BadRequest, Column, parse_rows

from .test_gateway import CountingModel, Server


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    """A live gateway on 127.0.0.1 with endpoint ``ep`` (a real scikit-learn model); any version
    the fuzzer names loads that model too, so its configs are applied, not just refused."""
    models = {str(v): CountingModel() for v in range(1, 4)}
    with Server(tmp_path_factory.mktemp("fuzz"), models) as server:
        server.deploy({"1": 100}, create=True)
        yield server


# The document the gateway serves (checked below), loaded at collection: schemathesis's lazy
# from_fixture loader does not work with pytest 9 (it sets a node attribute pytest 9 removed).
schema = schemathesis.openapi.from_dict(document())


def test_the_gateway_serves_its_openapi_document_without_a_token(fuzzed):
    status, served, _ = fuzzed.call("GET", "/openapi.json", headers={"Authorization": None})
    assert status == 200 and served == document()
    assert {p for p in served["paths"]} == {op.path for op in OPERATIONS}


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_is_a_server_error(case, fuzzed):
    if (
        case.path.endswith(("/invocations", "/config"))
        and "{name}" in case.path
        and case.method in ("POST", "PUT")
    ):
        case.path_parameters = {"name": "ep"}  # bodies to the parser and configs to apply, not 404s
    case.call_and_validate(
        base_url=fuzzed.url, headers={"Authorization": f"Bearer {fuzzed.token}"}, checks=[not_a_server_error]
    )


def test_the_gateway_still_serves_after_the_fuzzing(fuzzed):
    assert fuzzed.call("GET", "/ping")[0] == 200
    config = {"served_entities": [{"entity_name": "m", "entity_version": "2"}]}
    status, body, _ = fuzzed.call(
        "POST", "/api/2.0/serving-endpoints", {"name": "after-fuzz", "config": config}
    )
    assert status == 200, body
    for _ in range(100):
        status, body, headers = fuzzed.call(
            "POST", "/serving-endpoints/after-fuzz/invocations", {"dataframe_records": [{"x": 1.0, "y": 1.0}]}
        )
        if status != 503:  # loading
            break
    assert status == 200 and headers["served-model-name"] == "m-2" and len(body["predictions"]) == 1


# --- the parser ----------------------------------------------------------------------------------

COLUMNS = [
    Column("plan", "string"),
    Column("months", "double"),
    Column("active", "boolean"),
    Column("ünïcødé ключ", "long"),
]
NAMES = [c.name for c in COLUMNS]
HUGE, DEEP = "\x00huge", "\x00deep"  # placeholders for what json.dumps cannot write (see _body)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.text(max_size=20),
    st.sampled_from([HUGE, DEEP]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
keys = st.sampled_from(NAMES) | st.text(max_size=8)
records = st.lists(st.dictionaries(keys, values, max_size=6), max_size=5)
rows_in_order = st.lists(st.lists(values, min_size=3, max_size=5), max_size=5)
columnar = st.dictionaries(keys, st.lists(values, max_size=4) | values, max_size=6)
split = st.fixed_dictionaries(
    {"columns": st.lists(keys | values, max_size=6), "data": rows_in_order | values}
)
payloads = st.one_of(
    st.builds(lambda r: {"dataframe_records": r}, records | values),
    st.builds(lambda s: {"dataframe_split": s}, split | values),
    st.builds(
        lambda f, v: {f: v},
        st.sampled_from(["instances", "inputs"]),
        records | rows_in_order | columnar | values,
    ),
    st.dictionaries(st.sampled_from(FORMATS) | st.text(max_size=8), values, max_size=3),
    values,
)


def _body(payload) -> bytes:
    """JSON with NaN/Infinity literals, 5,000-digit integers and 5,000-deep arrays where the
    placeholders stand (Python's json writes none of those)."""
    text = json.dumps(payload, allow_nan=True)
    return (
        text.replace(json.dumps(HUGE), "1" * 5000)
        .replace(json.dumps(DEEP), "[" * 5000 + "]" * 5000)
        .encode("utf-8", "surrogatepass")
    )


def _check(body: bytes, fill=None) -> None:
    try:
        rows = parse_rows(body, COLUMNS, max_rows=20, fill=fill)
    except BadRequest as refused:
        assert 400 <= refused.status < 500 and str(refused)
        return
    assert 0 < len(rows) <= 20
    for row in rows:
        assert len(row) == len(COLUMNS) and any(v is not None for v in row)
        plan, months, active, count = row
        assert plan is None or isinstance(plan, str)
        assert months is None or (isinstance(months, float) and math.isfinite(months))
        assert count is None or (isinstance(count, float) and math.isfinite(count))
        assert active is None or isinstance(active, bool)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads)
def test_the_parser_gives_rows_or_a_bad_request(payload):
    _check(_body(payload))


def _lookup(records):
    """A feature lookup by ``plan`` (the entity key) that knows every plan, as OnlineFeatures does."""
    for i, record in enumerate(records):
        if not isinstance(record.get("plan"), str):
            raise BadRequest(f"row {i} has no plan to look up")
    return [{"months": 3.0, "active": True, "ünïcødé ключ": 1, **record} for record in records]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads)
def test_the_parser_with_a_feature_lookup_gives_rows_or_a_bad_request(payload):
    _check(_body(payload), fill=_lookup)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_any_bytes_give_rows_or_a_bad_request(body):
    _check(body)
