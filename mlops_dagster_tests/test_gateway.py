"""The serving gateway over real HTTP (uvicorn on 127.0.0.1) with real scikit-learn models and a
real Delta inference table: routing, batching, config swaps, failures and capture."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import uvicorn
from sklearn.linear_model import LogisticRegression

from mlops_dagster.resources.local_lakehouse import LocalLakehouse
from mlops_dagster.serving.batching import LoadedModel
from mlops_dagster.serving.capture import InferenceCapture
from mlops_dagster.serving.gateway import Gateway
from mlops_dagster.serving.guard import Guard
from mlops_dagster.serving.payload import Column
from mlops_dagster.serving.server import build_app
from mlops_dagster.serving.tokens import TokenStore

from .project import free_port

COLUMNS = [Column("x", "double"), Column("y", "double")]
TABLE = "ml.serving.test_payload"


class CountingModel:
    """A real fitted LogisticRegression; counts how often (and on how many rows) it is called."""

    def __init__(self, flip: bool = False, delay: float = 0.0):
        rng = np.random.default_rng(0)
        x = rng.normal(size=(200, 2))
        y = (x[:, 0] + x[:, 1] > 0).astype(int)
        self.model = LogisticRegression().fit(x, 1 - y if flip else y)
        self.calls, self.rows, self.delay = 0, 0, delay

    def predict_proba(self, frame: pd.DataFrame):
        self.calls += 1
        self.rows += len(frame)
        time.sleep(self.delay)
        return self.model.predict_proba(frame[["x", "y"]].to_numpy(dtype=float))


class ProcessModel(CountingModel):
    """Answers the id of the process that scored each row as the positive class's "probability"."""

    def predict_proba(self, frame: pd.DataFrame):
        time.sleep(self.delay)
        return np.array([[0.0, float(os.getpid())]] * len(frame))


class BrokenModel:
    def predict_proba(self, frame):
        raise ValueError("weights file is corrupt")


def _json(response) -> dict:
    data = response.read()
    return json.loads(data) if response.headers.get("content-type", "").startswith("application/json") else {}


class Server:
    """A gateway on a free 127.0.0.1 port; its calls carry a manage token made as `mlops token
    create --scope manage` makes one (``auth="none"``: the gateway wants none)."""

    def __init__(
        self,
        tmp_path,
        models: dict[str, object],
        features=None,
        auth: str = "token",
        model_processes: int = 1,
    ):
        self.models = models  # version -> model; features: endpoint -> OnlineFeatures
        self.tokens = TokenStore(tmp_path / "state")
        self.token = self.tokens.create("manage")[1] if auth == "token" else None
        self.lakehouse = LocalLakehouse(root=str(tmp_path / "lakehouse"))
        capture = InferenceCapture(
            lambda rows, once: self.lakehouse.write(TABLE, pd.DataFrame(rows), "append", once=once),
            batch_size=500,
            flush_seconds=0.2,
            journal=tmp_path / "capture",
        ).start()
        self.gateway = Gateway(
            self._load,
            capture,
            lambda name: TABLE,
            tmp_path / "endpoints.json",
            max_body_bytes=4096,
            seed=7,
            features=features,
            model_processes=model_processes,
        )
        self.port = free_port()
        guard = Guard(self.tokens if auth == "token" else None, "127.0.0.1")
        self.server = uvicorn.Server(
            uvicorn.Config(
                build_app(self.gateway, guard),
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                loop="asyncio",
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def _load(self, name: str, version: str) -> LoadedModel:
        model = self.models[version]
        if isinstance(model, Exception):
            raise model
        return LoadedModel(model, COLUMNS, [[0.5, -0.2], [1.0, 1.0]])

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started and time.time() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(30)
        self.gateway.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(self, method: str, path: str, body=None, raw: bytes | None = None, headers: dict | None = None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        sent = {
            "Content-Type": "application/json",
            **({"Authorization": f"Bearer {self.token}"} if self.token else {}),
        }
        sent = {k: v for k, v in {**sent, **(headers or {})}.items() if v is not None}  # None: leave it out
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method, headers=sent)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, _json(response), dict(response.headers)
        except urllib.error.HTTPError as error:
            return error.code, _json(error), dict(error.headers)

    def deploy(self, routes: dict[str, int], shadow: str | None = None, create: bool = False):
        entities = [
            {"entity_name": "m", "entity_version": v} for v in {**routes, **({shadow: 0} if shadow else {})}
        ]
        config = {
            "served_entities": entities,
            "traffic_config": {
                "routes": [
                    {"served_model_name": f"m-{v}", "traffic_percentage": p} for v, p in routes.items()
                ]
            },
        }
        if shadow:
            config["shadow_routes"] = [{"served_model_name": f"m-{shadow}", "mirror_percentage": 100}]
        if create:
            status, body, _ = self.call(
                "POST", "/api/2.0/serving-endpoints", {"name": "ep", "config": config}
            )
        else:
            status, body, _ = self.call("PUT", "/api/2.0/serving-endpoints/ep/config", config)
        assert status == 200, body
        return self.wait()

    def wait(self):
        deadline = time.time() + 20
        while time.time() < deadline:
            _, state, _ = self.call("GET", "/api/2.0/serving-endpoints/ep")
            if state["state"]["config_update"] != "IN_PROGRESS":
                return state
            time.sleep(0.05)
        raise AssertionError("endpoint update did not finish")

    def invoke(self, rows, path="/serving-endpoints/ep/invocations"):
        return self.call("POST", path, {"dataframe_records": [{"x": a, "y": b} for a, b in rows]})

    def captured(self) -> pd.DataFrame:
        self.gateway.capture.close()
        return self.lakehouse.read(TABLE) if self.lakehouse.exists(TABLE) else pd.DataFrame()


def test_predictions_batching_and_capture_of_every_request(tmp_path):
    model = CountingModel(delay=0.02)
    with Server(tmp_path, {"1": model}) as server:
        state = server.deploy({"1": 100}, create=True)
        assert state["state"] == {"ready": "READY", "config_update": "NOT_UPDATING"}
        status, body, headers = server.invoke([(2.0, 2.0), (-2.0, -2.0)])
        assert status == 200 and headers["served-model-name"] == "m-1"
        assert body["predictions"][0][1] > 0.9 and body["predictions"][1][1] < 0.1
        status, body, _ = server.call("POST", "/invocations", {"inputs": {"x": [2.0], "y": [2.0]}})
        assert status == 200 and len(body["predictions"]) == 1

        calls_before = model.calls
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(lambda i: server.invoke([(i / 10, 0.0)])[0], range(64)))
        assert results == [200] * 64
        assert model.rows - 2 - 1 - 2 >= 64 - 2  # every request scored (smoke test rows aside)
        assert model.calls - calls_before < 64  # concurrent requests shared model calls

        assert server.invoke([("bad", 1.0)])[0] == 400
        assert server.call("POST", "/serving-endpoints/ep/invocations", raw=b"x" * 5000)[0] == 413
        assert server.call("POST", "/serving-endpoints/nope/invocations", {"instances": [[1, 2]]})[0] == 404
    captured = server.captured()
    assert len(captured) == 2 + 64 + 3
    assert sorted(captured["status_code"].value_counts().items()) == [(200, 66), (400, 1), (404, 1), (413, 1)]
    assert set(captured.loc[captured["status_code"] == 200, "model_version"]) == {"1"}
    assert captured["latency_ms"].gt(0).all() and captured["request_id"].is_unique
    [refused] = captured.loc[captured["status_code"] == 400, "error"]
    assert refused == "column 'x' expects a number (double), row 0 has 'bad'"


def test_a_config_swap_under_load_drops_no_request(tmp_path):
    with Server(tmp_path, {"1": CountingModel(), "2": CountingModel(flip=True)}) as server:
        server.deploy({"1": 100}, create=True)
        stop, statuses, versions = threading.Event(), [], set()

        def hammer():
            while not stop.is_set():
                status, _, headers = server.invoke([(1.0, 1.0)])
                statuses.append(status)
                versions.add(headers.get("served-model-name"))

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(0.3)
        server.deploy({"1": 100, "2": 0})
        server.deploy({"1": 0, "2": 100})
        state = server.deploy({"2": 100})
        time.sleep(0.3)
        stop.set()
        for thread in threads:
            thread.join()
        assert statuses and set(statuses) == {200}
        assert versions == {"m-1", "m-2"}
        assert state["config"]["config_version"] == 4
        assert [e["entity_version"] for e in state["config"]["served_entities"]] == ["2"]


def test_a_failed_load_or_smoke_test_keeps_the_old_config_serving(tmp_path):
    models = {"1": CountingModel(), "2": OSError("artifact missing"), "3": BrokenModel()}
    with Server(tmp_path, models) as server:
        server.deploy({"1": 100}, create=True)
        for version, message in (
            ("2", "could not load m version 2: artifact missing"),
            ("3", "smoke test of m version 3 failed: weights file is corrupt"),
        ):
            state = server.deploy({version: 100})
            assert state["state"] == {"ready": "READY", "config_update": "UPDATE_FAILED"}
            assert message in state["state_message"]
            assert state["pending_config"]["served_entities"][0]["state"]["deployment"] == "DEPLOYMENT_FAILED"
            assert [e["entity_version"] for e in state["config"]["served_entities"]] == ["1"]
            status, _, headers = server.invoke([(1.0, 1.0)])
            assert status == 200 and headers["served-model-name"] == "m-1"


def test_traffic_split_and_shadow(tmp_path):
    with Server(tmp_path, {"1": CountingModel(), "2": CountingModel(flip=True)}) as server:
        server.deploy({"1": 80, "2": 20}, create=True)
        served = [server.invoke([(1.0, 1.0)])[2]["served-model-name"] for _ in range(300)]
        share = served.count("m-2") / len(served)
        assert 0.12 < share < 0.28

        server.deploy({"1": 100}, shadow="2")
        answers = [server.invoke([(1.0, 1.0)]) for _ in range(20)]
        assert {a[2]["served-model-name"] for a in answers} == {"m-1"}
        assert all(
            a[1]["predictions"][0][1] > 0.5 for a in answers
        )  # the primary's answer, not the flipped shadow's
    captured = server.captured()
    mirrored = captured[captured["mirrored"]]
    assert len(mirrored) == 20 and set(mirrored["model_version"]) == {"2"}
    primary = captured[~captured["mirrored"]]
    assert set(mirrored["request_id"]) <= set(primary["request_id"])  # each mirror belongs to a real request
    assert all(json.loads(r)["predictions"][0][1] < 0.5 for r in mirrored["response"])


def test_config_api_errors_and_restore_after_restart(tmp_path):
    with Server(tmp_path, {"1": CountingModel()}) as server:
        assert server.call("GET", "/api/2.0/serving-endpoints/ep")[0] == 404
        status, body, _ = server.call(
            "POST", "/api/2.0/serving-endpoints", {"name": "ep", "config": {"served_entities": []}}
        )
        assert status == 400 and "served_entities" in body["message"]
        bad_routes = {
            "served_entities": [{"entity_name": "m", "entity_version": "1"}],
            "traffic_config": {"routes": [{"served_model_name": "m-1", "traffic_percentage": 90}]},
        }
        status, body, _ = server.call(
            "POST", "/api/2.0/serving-endpoints", {"name": "ep", "config": bad_routes}
        )
        assert status == 400 and "add up to 100" in body["message"]
        server.deploy({"1": 100}, create=True)
        again = {
            **bad_routes,
            "traffic_config": {"routes": [{"served_model_name": "m-1", "traffic_percentage": 100}]},
        }
        status, body, _ = server.call("POST", "/api/2.0/serving-endpoints", {"name": "ep", "config": again})
        assert status == 409 and body["error_code"] == "RESOURCE_ALREADY_EXISTS"
        assert (
            json.loads((tmp_path / "endpoints.json").read_text())["ep"]["served_entities"][0][
                "entity_version"
            ]
            == "1"
        )
    with Server(tmp_path, {"1": CountingModel()}) as restarted:  # a new process: endpoints come back
        assert restarted.invoke([(1.0, 1.0)])[0] == 200
        assert restarted.call("DELETE", "/api/2.0/serving-endpoints/ep")[0] == 200
        assert restarted.call("GET", "/api/2.0/serving-endpoints")[1] == {"endpoints": []}


def _chunked_upload(port: int, path: str, token: str, total: int = 150 << 20) -> tuple[int, dict, int]:
    """POST up to ``total`` bytes as a chunked body (no Content-Length), stopping as soon as the
    gateway answers: its status, JSON body and how many bytes were sent by then."""
    import select
    import socket

    chunk = b" " * (1 << 16)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        sent = 0
        while sent < total and not select.select([sock], [], [], 0)[0]:
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        response = b""
        while b"\r\n\r\n" not in response or not response.rstrip().endswith(b"}"):
            response += sock.recv(65536)
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body[body.index(b"{") : body.rindex(b"}") + 1]), sent


def test_client_mistakes_are_4xx_naming_the_field_never_500(tmp_path):
    with Server(tmp_path, {"1": CountingModel()}) as server:
        server.deploy({"1": 100}, create=True)
        ep = "/serving-endpoints/ep/invocations"
        for raw, message in (
            (b'{"instances": [[Infinity, 1]]}', "column 'x' expects a finite number (double), row 0 has inf"),
            (b'{"instances": [[1e999, 1]]}', "column 'x' expects a finite number (double), row 0 has inf"),
            (b'{"instances": [[1' + b"0" * 400 + b", 1]]}", "column 'x' expects a finite number"),
            (b'{"instances": [[1' + b"0" * 3000 + b", 1]]}", "column 'x' expects a finite number"),
            (
                b'{"instances": [[1, 2], [null, null]]}',
                "row(s) 1 have no value in any of the model's columns ['x', 'y']",
            ),
            (b'{"instances": ' + b"[" * 2000 + b"]" * 2000 + b"}", "nested too deeply"),
        ):
            status, body, _ = server.call("POST", ep, raw=raw)
            assert status == 400 and message in body["message"], (raw[:40], body)

        api = "/api/2.0/serving-endpoints"
        entity = {"entity_name": "m", "entity_version": "1"}
        for method, path, sent, message in (
            ("POST", api, [1], "the body must be a JSON object, not list"),
            ("POST", api, "ep2", "the body must be a JSON object, not str"),
            (
                "POST",
                api,
                {"name": None, "config": {"served_entities": [entity]}},
                "name None is not a valid name",
            ),
            (
                "POST",
                api,
                {"name": "a b", "config": {"served_entities": [entity]}},
                "name 'a b' is not a valid",
            ),
            ("POST", api, {"name": "ep2"}, "config is required"),
            ("POST", api, {"name": "ep2", "config": [entity]}, "config must be an object"),
            (
                "POST",
                api,
                {"name": "ep2", "config": {"served_entities": [{"entity_name": "m"}]}},
                "served_entities[0].entity_version is required",
            ),
            (
                "POST",
                api,
                {"name": "ep2", "config": {"served_entities": [{**entity, "entity_version": "0"}]}},
                "served_entities[0].entity_version is required: a model version, a positive integer",
            ),
            (
                "PUT",
                f"{api}/ep/config",
                {"served_entities": [entity], "traffic_config": {"routes": [{"served_model_name": "m-1"}]}},
                "traffic_config.routes[0].traffic_percentage must be",
            ),
            (
                "PUT",
                f"{api}/ep/config",
                {"served_entities": [entity], "traffic_config": {"routes": "m-1"}},
                "traffic_config.routes must be a list",
            ),
            (
                "PUT",
                f"{api}/ep/config",
                {"served_entities": [{**entity, "name": "a\nb"}]},
                "served_entities[0].name 'a\\nb' is not a valid name",
            ),
        ):
            status, body, _ = server.call(method, path, sent)
            assert status == 400 and body["error_code"] == "INVALID_PARAMETER_VALUE", (sent, body)
            assert message in body["message"], (sent, body)
        status, body, _ = server.call(
            "PUT",
            f"{api}/ep/config",
            raw=b'{"served_entities": [{"entity_name": "m", "entity_version": "1", "size": NaN}]}',
        )
        assert status == 400 and "NaN is not a number here" in body["message"]
        assert [e["name"] for e in server.call("GET", api)[1]["endpoints"]] == ["ep"]  # no ghost endpoint
        assert server.call("GET", f"{api}/nope")[1]["error_code"] == "RESOURCE_DOES_NOT_EXIST"

        # Refused while the 150 MB stream is still coming (socket buffers take a few MB more before
        # the client sees the answer), not after reading it whole.
        status, body, sent = _chunked_upload(server.port, ep, server.token)
        assert status == 413 and body["error_code"] == "REQUEST_LIMIT_EXCEEDED" and sent < 32 << 20
        status, body, sent = _chunked_upload(server.port, api, server.token)
        assert status == 413 and sent < 32 << 20
        assert server.invoke([(1.0, 1.0)])[0] == 200  # and it still answers


def test_mlflow_invocations_scores_on_the_only_endpoint_and_names_them_when_there_are_several(tmp_path):
    with Server(tmp_path, {"1": CountingModel()}) as server:
        body = {"inputs": {"x": [1.0], "y": [1.0]}}
        status, answer, _ = server.call("POST", "/invocations", body)
        assert status == 404 and "has none yet" in answer["message"]
        server.deploy({"1": 100}, create=True)
        assert server.call("POST", "/invocations", body)[0] == 200
        config = {"served_entities": [{"entity_name": "m", "entity_version": "1"}]}
        assert (
            server.call("POST", "/api/2.0/serving-endpoints", {"name": "other", "config": config})[0] == 200
        )
        status, answer, _ = server.call("POST", "/invocations", body)
        assert status == 400 and answer["error_code"] == "BAD_REQUEST"
        assert answer["message"] == (
            "/invocations is ambiguous: this gateway serves 2 endpoints (ep, other); POST to "
            "one of /serving-endpoints/ep/invocations, /serving-endpoints/other/invocations"
        )


def test_model_processes_score_batches_at_once_and_a_killed_one_is_started_again(tmp_path):
    with Server(tmp_path, {"1": ProcessModel(delay=0.2)}, model_processes=2) as server:
        server.deploy({"1": 100}, create=True)
        workers = set(server.gateway.processes.pids())
        assert len(workers) == 2 and os.getpid() not in workers
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: server.invoke([(i, 0.0)]), range(16)))
        assert [status for status, _, _ in answers] == [200] * 16
        scored_by = {int(body["predictions"][0][1]) for _, body, _ in answers}
        assert scored_by == workers  # both processes scored, at once (each batch sleeps 0.2 s)

        os.kill(next(iter(workers)), signal.SIGKILL)
        statuses = [server.invoke([(1.0, 0.0)])[0] for _ in range(4)]
        assert statuses.count(200) >= 3 and statuses[-1] == 200  # at most the batch it held fails
        assert len(set(server.gateway.processes.pids()) - workers) == 1  # started again
