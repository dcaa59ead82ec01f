"""Overload: a real gateway over HTTP on 127.0.0.1 with a real scikit-learn model and a Delta
inference table, driven past ``serving.max_queued_requests``. Every request gets a 200 or a quick
429 ``REQUEST_LIMIT_EXCEEDED`` with ``Retry-After`` (never a 500 or a hang), refused requests never
reach the model, and every request, refused ones included, is one row of the inference table."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from databricks.sdk import WorkspaceClient

from mlops_dagster.serving.admission import RETRY_AFTER_MAX_SECONDS, Admission, Overloaded

from .test_gateway import CountingModel, Server

BOUND = 4  # requests the endpoint holds at once
DELAY = 0.05  # seconds added to each model call: at most 20 calls (of <= BOUND requests) a second
CLIENTS = 32  # concurrent callers
REQUESTS = 480  # sent in all (bounded: the test stops by itself in a few seconds)


def test_past_the_bound_requests_get_a_quick_429_and_every_one_is_captured(tmp_path):
    model = CountingModel(delay=DELAY)
    with Server(tmp_path, {"1": model}) as server:
        server.gateway.max_queued_requests = BOUND  # the endpoint is created with it below
        server.deploy({"1": 100}, create=True)
        smoke_rows, smoke_calls = model.rows, model.calls
        started = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            answers = list(pool.map(lambda i: server.invoke([(i / 100, -i / 100)]), range(REQUESTS)))
        seconds, calls = time.perf_counter() - started, model.calls - smoke_calls
        statuses = Counter(status for status, _, _ in answers)
        assert set(statuses) == {200, 429}, statuses  # no 500, and a timeout would have raised
        assert statuses[200] > 0 and statuses[429] > 0, statuses
        for status, body, headers in answers:
            if status == 429:
                assert body["error_code"] == "REQUEST_LIMIT_EXCEEDED", body
                assert (
                    f"limit of {BOUND} requests" in body["message"]
                    and "max_queued_requests" in body["message"]
                )
                assert headers["retry-after"].isdigit() and 1 <= int(headers["retry-after"]) <= 60, headers
                assert "served-model-name" not in headers
            else:
                assert len(body["predictions"]) == 1 and headers["served-model-name"] == "m-1"
        assert model.rows - smoke_rows == statuses[200]  # a refused request never reached the model
        endpoint = server.gateway.endpoints["ep"]
        assert endpoint.admission.held == 0 and endpoint.admission.refused == statuses[429]
        assert server.invoke([(1.0, 1.0)])[0] == 200  # nothing leaked: it answers once the load is gone
    captured = server.captured()
    sent = {headers["x-request-id"]: status for status, _, headers in answers}
    mine = captured[captured["request_id"].isin(sent)]
    assert len(mine) == REQUESTS and mine["request_id"].is_unique
    assert dict(zip(mine["request_id"], mine["status_code"])) == sent  # each request's own status
    refused = mine[mine["status_code"] == 429]
    assert refused["error"].str.contains("max_queued_requests").all()
    assert refused["latency_ms"].median() < DELAY * 1000 / 5  # answered without waiting for a model call
    by_status = Counter(mine["status_code"])
    ok = mine.loc[mine["status_code"] == 200, "latency_ms"]
    print(
        f"\noverload: {REQUESTS} requests from {CLIENTS} clients in {seconds:.2f} s, bound {BOUND}, "
        f"{DELAY * 1000:.0f} ms per model call ({calls} calls): {statuses[200]} x 200, "
        f"{statuses[429]} x 429; inference table: {len(mine)} rows ({by_status[200]} x 200, "
        f"{by_status[429]} x 429); latency p50 of a 429 {refused['latency_ms'].median():.2f} ms "
        f"(max {refused['latency_ms'].max():.1f}), of a 200 {ok.median():.1f} ms (max {ok.max():.1f})"
    )


def test_databricks_sdk_waits_the_retry_after_and_its_retry_is_answered(tmp_path):
    with Server(tmp_path, {"1": CountingModel(delay=1.0)}) as server:
        server.gateway.max_queued_requests = 1
        server.deploy({"1": 100}, create=True)
        sdk = WorkspaceClient(host=server.url, token=server.tokens.create("query")[1], auth_type="pat")
        admission = server.gateway.endpoints["ep"].admission
        with ThreadPoolExecutor(1) as pool:
            holding = pool.submit(server.invoke, [(1.0, 1.0)])
            deadline = time.monotonic() + 10
            while admission.held == 0 and time.monotonic() < deadline:  # the only place is taken
                time.sleep(0.01)
            started = time.monotonic()
            answer = sdk.serving_endpoints.query("ep", dataframe_records=[{"x": 1.0, "y": 1.0}])
            waited = time.monotonic() - started
            assert holding.result()[0] == 200
        assert len(answer.predictions) == 1 and admission.refused >= 1 and waited >= 1.0  # Retry-After: 1
    statuses = Counter(server.captured()["status_code"])
    assert statuses[200] == 2 and statuses[429] == admission.refused


def test_a_mirror_takes_a_place_under_the_bound_and_is_captured_as_429_without_one(tmp_path):
    with Server(tmp_path, {"1": CountingModel(), "2": CountingModel(flip=True)}) as server:
        server.gateway.max_queued_requests = 1  # the primary request holds the only place
        server.deploy({"1": 100}, shadow="2", create=True)
        assert [server.invoke([(1.0, 1.0)])[0] for _ in range(5)] == [200] * 5
    captured = server.captured()
    mirrored = captured[captured["mirrored"]]
    assert list(captured.loc[~captured["mirrored"], "status_code"]) == [200] * 5
    assert len(mirrored) == 5 and set(mirrored["status_code"]) == {429}
    assert set(mirrored["model_version"]) == {"2"}


def test_each_endpoint_has_its_own_bound_from_its_use_case(tmp_path):
    with Server(tmp_path, {"1": CountingModel()}) as server:
        server.gateway.max_queued_requests, server.gateway.queue_bounds = 7, {"other": 3}
        server.deploy({"1": 100}, create=True)
        config = {"served_entities": [{"entity_name": "m", "entity_version": "1"}]}
        assert (
            server.call("POST", "/api/2.0/serving-endpoints", {"name": "other", "config": config})[0] == 200
        )
        assert {n: e.admission.bound for n, e in server.gateway.endpoints.items()} == {"ep": 7, "other": 3}
        before = server.gateway.endpoints["ep"].admission
        server.deploy({"1": 100})  # a config swap keeps the endpoint's count
        assert server.gateway.endpoints["ep"].admission is before


def test_admission_counts_refuses_and_says_when_to_retry():
    admission = Admission("ep", 2)
    assert admission.retry_after() == 1  # nothing measured yet: at least a second
    with admission.admit(), admission.admit():
        assert admission.held == 2
        with pytest.raises(Overloaded) as refused, admission.admit():
            pass
        assert (refused.value.status, refused.value.error_code, refused.value.retry_after) == (
            429,
            "REQUEST_LIMIT_EXCEEDED",
            1,
        )
    assert (admission.held, admission.refused) == (0, 1)
    with pytest.raises(RuntimeError), admission.admit():
        raise RuntimeError("the model failed")
    assert admission.held == 0  # a failed request gives its place back
    admission.seconds = 2.3
    assert admission.retry_after() == 3
    admission.seconds = 1e6
    assert admission.retry_after() == RETRY_AFTER_MAX_SECONDS
    with pytest.raises(ValueError):
        Admission("ep", 0)
