"""Authentication of the serving gateway, like a Databricks workspace's: bearer tokens with a
scope on every API (over real HTTP, with databricks-sdk and MLflow's deployments client), the
token commands, the refusals of browser-reachable requests, and where the gateway may start."""

from __future__ import annotations

import json
import logging
import os
import stat

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import PermissionDenied, Unauthenticated

from mlops_dagster.cli import main
from mlops_dagster.serving.openapi import OPERATIONS
from mlops_dagster.serving.server import request_guard
from mlops_dagster.serving.tokens import TokenError, TokenStore, owner_token
from mlops_dagster.settings import ConfigError

from .test_gateway import CountingModel, Server

ROWS = [{"x": 1.0, "y": 1.0}, {"x": -1.0, "y": -2.0}]
CONFIG = {"served_entities": [{"entity_name": "m", "entity_version": "1"}]}


@pytest.fixture
def server(tmp_path):
    with Server(tmp_path, {"1": CountingModel()}) as server:
        server.deploy({"1": 100}, create=True)
        yield server


def _path(template: str) -> str:
    return template.replace("{name}", "ep")


def test_no_wrong_or_basic_credentials_are_401_on_every_api_and_probes_stay_open(server):
    query = server.tokens.create("query")[1]
    for op in OPERATIONS:
        body = {"served_entities": []} if op.body is not None else None
        if op.scope is None:
            assert server.call(op.method, _path(op.path), headers={"Authorization": None})[0] == 200, op
            continue
        for authorization in (
            None,
            "Bearer wrong",
            f"Bearer {query}x",
            "Basic dXNlcjpwYXNz",
            f"Token {query}",
            "Bearer",
        ):
            status, answer, headers = server.call(
                op.method, _path(op.path), body, headers={"Authorization": authorization}
            )
            assert (status, answer["error_code"]) == (401, "UNAUTHENTICATED"), (op, authorization, answer)
            assert headers["www-authenticate"].startswith("Bearer")
        status, answer, _ = server.call(
            op.method, _path(op.path), body, headers={"Authorization": f"Bearer {query}"}
        )
        if op.scope == "manage":
            assert (status, answer["error_code"]) == (403, "PERMISSION_DENIED"), op
            assert "scope query; this API needs a manage token" in answer["message"]
        else:
            assert status in (200, 400), (op, answer)  # allowed: a query token may call it
    assert [e["name"] for e in server.call("GET", "/api/2.0/serving-endpoints")[1]["endpoints"]] == ["ep"]
    assert server.call("GET", "/api/2.1/nothing")[:2] == (
        404,
        {"error_code": "ENDPOINT_NOT_FOUND", "message": "No API found for 'GET /api/2.1/nothing'"},
    )
    assert server.call("PATCH", "/api/2.0/serving-endpoints", {})[0] == 405


def test_databricks_sdk_with_a_query_token_queries_and_is_refused_management(server):
    token = server.tokens.create("query", "sdk-reader")[1]
    sdk = WorkspaceClient(host=server.url, token=token, auth_type="pat")
    answer = sdk.serving_endpoints.query("ep", dataframe_records=ROWS)
    assert answer.served_model_name == "m-1" and len(answer.predictions) == 2
    assert sdk.serving_endpoints.get("ep").state.ready.value == "READY"
    assert [e.name for e in sdk.serving_endpoints.list()] == ["ep"]
    api = "/api/2.0/serving-endpoints"
    for manage in (
        lambda: sdk.api_client.do("POST", api, body={"name": "x", "config": CONFIG}),
        lambda: sdk.api_client.do("PUT", "/api/2.0/serving-endpoints/ep/config", body=CONFIG),
        lambda: sdk.serving_endpoints.delete("ep"),
    ):
        with pytest.raises(PermissionDenied, match="needs a manage token"):
            manage()
    for wrong in ("not-a-token", server.tokens.create("query")[1] + "x"):
        with pytest.raises(Unauthenticated):
            WorkspaceClient(host=server.url, token=wrong, auth_type="pat").serving_endpoints.query(
                "ep", dataframe_records=ROWS
            )
    manager = WorkspaceClient(host=server.url, token=server.token, auth_type="pat")
    manager.api_client.do("POST", "/api/2.0/serving-endpoints", body={"name": "second", "config": CONFIG})
    manager.serving_endpoints.delete("second")


def test_mlflow_deployments_client_with_a_query_token(server, monkeypatch):
    from mlflow.deployments import get_deploy_client
    from mlflow.exceptions import MlflowException
    from requests import HTTPError

    refused = (MlflowException, HTTPError)  # by the call: the client raises one or the other
    monkeypatch.setenv("DATABRICKS_HOST", server.url)
    monkeypatch.setenv("DATABRICKS_TOKEN", server.tokens.create("query")[1])
    client = get_deploy_client("databricks")
    assert len(client.predict(endpoint="ep", inputs={"dataframe_records": ROWS})["predictions"]) == 2
    assert client.get_endpoint("ep")["name"] == "ep"
    assert [e["name"] for e in client.list_endpoints()] == ["ep"]
    for manage in (
        lambda: client.create_endpoint(config={"name": "x", "config": CONFIG}),
        lambda: client.update_endpoint_config("ep", CONFIG),
        lambda: client.delete_endpoint("ep"),
    ):
        with pytest.raises(refused, match="PERMISSION_DENIED"):
            manage()
    monkeypatch.setenv("DATABRICKS_TOKEN", "wrong")
    with pytest.raises(refused, match="UNAUTHENTICATED|401"):
        get_deploy_client("databricks").predict(endpoint="ep", inputs={"dataframe_records": ROWS})


def test_a_revoked_token_is_refused_from_the_next_request_and_tokens_are_never_logged(server, caplog):
    caplog.set_level(logging.DEBUG)
    store = TokenStore(server.tokens.dir)  # another process's view: the CLI's
    info, token = store.create("query", "laptop")
    assert server.invoke([(1.0, 1.0)])[0] == 200
    assert (
        server.call("GET", "/api/2.0/serving-endpoints", headers={"Authorization": f"Bearer {token}"})[0]
        == 200
    )
    store.revoke("laptop")
    assert (
        server.call("GET", "/api/2.0/serving-endpoints", headers={"Authorization": f"Bearer {token}"})[0]
        == 401
    )
    assert token not in caplog.text and server.token not in caplog.text
    stored = server.tokens.file.read_text()
    assert token not in stored and server.token not in stored  # hashes only
    assert stat.S_IMODE(os.stat(server.tokens.file).st_mode) == 0o600


def test_browser_reachable_requests_are_refused(server):
    api = "/api/2.0/serving-endpoints"
    create = json.dumps({"name": "evil", "config": CONFIG}).encode()
    # A page on another site posting a "simple" (no preflight) request, with or without a token.
    for headers in (
        {"Origin": "http://evil.example", "Content-Type": "text/plain"},
        {"Origin": "null", "Content-Type": "text/plain", "Authorization": None},
    ):
        status, answer, _ = server.call("POST", api, raw=create, headers=headers)
        assert (status, answer["error_code"]) == (403, "PERMISSION_DENIED") and "web pages" in answer[
            "message"
        ]
    status, answer, _ = server.call("POST", api, raw=create, headers={"Content-Type": "text/plain"})
    assert status == 415 and "Content-Type: application/json" in answer["message"]
    assert server.call("POST", api, raw=create, headers={"Content-Type": None})[0] == 415
    # DNS rebinding: a foreign name resolving to 127.0.0.1 reaches the port, with the foreign Host.
    for host in ("evil.example", "evil.example:80", f"127.0.0.1.evil.example:{server.port}"):
        status, answer, _ = server.call("GET", api, headers={"Host": host})
        assert status == 421 and "loopback host names" in answer["message"]
        assert server.call("GET", "/health", headers={"Host": host})[0] == 421
    for host in (f"localhost:{server.port}", f"127.0.0.1:{server.port}", "[::1]"):
        assert server.call("GET", api, headers={"Host": host})[0] == 200
    assert server.call("GET", api, headers={"Origin": f"http://localhost:{server.port}"})[0] == 200
    assert [e["name"] for e in server.call("GET", api)[1]["endpoints"]] == ["ep"]  # nothing was created


def test_auth_none_needs_no_token_on_loopback(tmp_path):
    with Server(tmp_path, {"1": CountingModel()}, auth="none") as server:
        assert server.token is None
        server.deploy({"1": 100}, create=True)
        assert server.invoke([(1.0, 1.0)])[0] == 200
        # The browser checks stay: a token is not what stops a web page.
        assert server.call("GET", "/api/2.0/serving-endpoints", headers={"Host": "evil.example"})[0] == 421


def test_where_the_gateway_may_start(tmp_path):
    state = tmp_path / "serving"
    with pytest.raises(ConfigError, match="serving.auth: none .* allowed with a loopback serving.host"):
        request_guard("none", "0.0.0.0", state)
    assert request_guard("none", "127.0.0.1", state).tokens is None
    with pytest.raises(ConfigError, match=r"reachable from other machines.*mlops token create --scope query"):
        request_guard("token", "0.0.0.0", state)
    assert request_guard("token", "127.0.0.1", state).tokens is not None  # loopback: tokens come when needed
    TokenStore(state).create("query")
    assert request_guard("token", "0.0.0.0", state).bound_host == "0.0.0.0"


def test_mlops_serve_on_a_reachable_host_without_a_token_refuses_to_start(
    local_root, tmp_path, monkeypatch, capsys
):
    conf = tmp_path / "exposed.yaml"
    conf.write_text("serving:\n  host: 0.0.0.0\n")
    monkeypatch.setenv("MLOPS_CONFIG", str(conf))
    assert main(["serve"]) == 2
    assert "mlops token create" in capsys.readouterr().err
    assert not (local_root / "serving" / "gateway.json").exists()  # nothing started


def test_token_commands(local_root, capsys):
    assert main(["token", "list"]) == 0
    assert "no tokens" in capsys.readouterr().out
    assert main(["token", "create", "--scope", "query"]) == 0
    out = capsys.readouterr()
    token = out.out.strip()
    assert len(token) >= 40 and "\n" not in token and "query-1" in out.err and "shown once" in out.err
    assert main(["token", "create", "--scope", "manage", "--name", "deployer"]) == 0
    capsys.readouterr()
    assert main(["token", "list"]) == 0
    listed = capsys.readouterr().out
    assert [line.split()[:2] for line in listed.splitlines()] == [
        ["query-1", "query"],
        ["deployer", "manage"],
    ]
    assert token not in listed
    store = TokenStore(local_root / "serving")
    assert store.verify(token).scope == "query" and store.verify(token + "x") is None
    assert main(["token", "create", "--scope", "manage", "--name", "deployer"]) == 1
    assert "a token named 'deployer' exists" in capsys.readouterr().err
    assert main(["token", "revoke", "query-1"]) == 0 and store.verify(token) is None
    assert main(["token", "revoke", "query-1"]) == 1
    assert "no token named 'query-1' (tokens: deployer)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["token", "create", "--scope", "admin"])
    with pytest.raises(TokenError, match="token name"):
        store.create("query", "a b")


def test_the_owner_token_is_made_once_kept_private_and_made_again_when_revoked(tmp_path):
    token = owner_token(tmp_path)
    assert owner_token(tmp_path) == token
    assert stat.S_IMODE(os.stat(tmp_path / "owner-token").st_mode) == 0o600
    store = TokenStore(tmp_path)
    assert store.verify(token).scope == "manage" and [t.name for t in store.list()] == ["owner"]
    store.revoke("owner")
    again = owner_token(tmp_path)
    assert again != token and store.verify(again).name == "owner" and store.verify(token) is None
