"""The gateway as an HTTP server (Starlette on uvicorn) and as a background process of the
local target. ``python -m mlops_dagster.serving`` (or ``mlops serve``) runs it in the foreground."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from starlette.responses import PlainTextResponse

from ..settings import ConfigError, Project, Settings
from .batching import LoadedModel
from .gateway import Gateway
from .guard import BrowserGuard, Guard, JSONResponse, error, is_loopback
from .payload import BadRequest, Column, parse_json
from .tokens import TokenStore


def state_dir(settings: Settings) -> Path:
    return Path(settings.root, "serving")


def info_file(state: str | Path) -> Path:
    """Where a running gateway says its process id and URL (one gateway per MLOPS_HOME)."""
    return Path(state, "gateway.json")


def running_url(state: str | Path) -> str | None:
    """The URL the gateway of this state folder said it serves on, if one said so."""
    try:
        return json.loads(info_file(state).read_text())["url"]
    except (OSError, ValueError, KeyError):
        return None


def gateway_url(host: str, port: int, state: str | Path) -> str | None:
    """Where this project's gateway serves: ``port``, or with port 0 wherever it said it serves
    (None: it has not said yet)."""
    return f"http://{host}:{port}" if port else running_url(state)


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def build_gateway(project: Project) -> Gateway:
    """The gateway of a project: every use case's endpoint, each with its own online features."""
    from ..resources.local_lakehouse import LocalLakehouse
    from ..resources.online_store import build_online_store
    from ..resources.registry import ModelRegistry
    from .capture import InferenceCapture
    from .features import online_features

    settings = project.default  # what the use cases share: root, MLflow, the online store, limits
    cfg = settings.serving
    lakehouse = LocalLakehouse(root=str(settings.root / "lakehouse"))

    def load(entity_name: str, entity_version: str) -> LoadedModel:
        registry = ModelRegistry(
            tracking_uri=settings.mlflow.tracking_uri,
            registry_uri=settings.mlflow.registry_uri,
            model_name=entity_name,
        )
        model, columns, example, predict_fn = registry.load_for_serving(entity_version)
        return LoadedModel(model, [Column(n, t) for n, t in columns], example, predict_fn)

    def write(rows: list[dict], once: str) -> None:
        import pandas as pd

        frame = pd.DataFrame(rows)
        frame["request_time"] = pd.to_datetime(frame["request_time"], unit="s", utc=True)
        for endpoint, part in frame.groupby("endpoint"):
            lakehouse.write(
                settings.inference_table(endpoint),
                part,
                "append",
                description=f"Inference table of serving endpoint {endpoint}: every request, "
                "its served model, prediction, latency and status.",
                once=once,
            )

    store = build_online_store(settings)
    features = {u.serving.endpoint: found for u in project.use_cases if (found := online_features(u, store))}
    state = state_dir(settings)
    state.mkdir(parents=True, exist_ok=True)
    recorder = InferenceCapture(
        write, cfg.capture_batch_size, cfg.capture_flush_seconds, journal=state / "capture"
    ).start()
    if recorder.recovered:
        logging.getLogger(__name__).warning(
            "%d captured requests of a gateway that ended without flushing them: committing them",
            recorder.recovered,
        )
    return Gateway(
        load,
        recorder,
        settings.inference_table,
        state / "endpoints.json",
        cfg.max_body_bytes,
        cfg.max_rows,
        features=features,
        max_queued_requests=cfg.max_queued_requests,
        queue_bounds={u.serving.endpoint: u.serving.max_queued_requests for u in project.use_cases},
        model_processes=cfg.model_processes,
    )


class BodyTooLarge(BadRequest):
    def __init__(self, size: int, limit: int):
        super().__init__(
            f"request body of more than {limit} bytes (serving.max_body_bytes): {size} bytes "
            "declared or received",
            status=413,
            error_code="REQUEST_LIMIT_EXCEEDED",
        )
        self.size = size


async def read_body(request, limit: int) -> bytes:
    """The request body, read as it streams (chunked or not): refused as soon as it passes
    ``limit``, so a 150 MB upload costs at most ``limit`` bytes of memory."""
    try:
        declared = int(request.headers.get("content-length", ""))
    except ValueError:
        declared = None
    if declared is not None and declared > limit:
        raise BodyTooLarge(declared, limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _handlers(gateway: Gateway):
    """The API's handlers by operation id (see ``openapi.OPERATIONS``)."""
    from .openapi import document

    def described(endpoint) -> JSONResponse:
        return JSONResponse(endpoint.describe(gateway.capture_table(endpoint.name)))

    async def json_object(request) -> dict:
        body = parse_json(await read_body(request, gateway.max_body_bytes), finite=True)
        if not isinstance(body, dict):
            raise BadRequest(
                f"the body must be a JSON object, not {type(body).__name__}",
                error_code="INVALID_PARAMETER_VALUE",
            )
        return body

    async def invocations(request):
        name = request.path_params.get("name") or gateway.default_endpoint()
        try:
            body, size = await read_body(request, gateway.max_body_bytes), None
        except BodyTooLarge as exc:  # refused (413, still captured) without reading what we will not use
            body, size = b"", exc.size
        status, answer, headers = await gateway.invoke(name, body, size=size)
        return JSONResponse(answer, status_code=status, headers=headers)

    async def health(request):
        ready = {n: e.describe(None)["state"] for n, e in gateway.endpoints.items()}
        # Which project's gateway this is: a caller from another MLOPS_HOME must not use it.
        state = str(gateway.state_file.parent.resolve()) if gateway.state_file else None
        return JSONResponse({"status": "OK", "endpoints": ready, "state_dir": state})

    async def create_endpoint(request):
        body = await json_object(request)
        if "config" not in body:
            raise BadRequest(
                'config is required: {"served_entities": [...]}', error_code="INVALID_PARAMETER_VALUE"
            )
        return described(gateway.submit(body.get("name"), body["config"], create=True))

    def existing(request):
        name = request.path_params["name"]
        if name not in gateway.endpoints:
            raise BadRequest(f"endpoint {name[:100]!r} does not exist", 404, "RESOURCE_DOES_NOT_EXIST")
        return name

    async def delete_endpoint(request):
        gateway.delete(existing(request))
        return JSONResponse({})

    async def update_config(request):
        name = existing(request)
        return described(gateway.submit(name, await json_object(request)))

    return {
        "ping": lambda request: PlainTextResponse("\n"),
        "health": health,
        "openapi": lambda request: JSONResponse(document()),
        "invocations": invocations,
        "mlflow_invocations": invocations,
        "list_endpoints": lambda request: JSONResponse(
            {"endpoints": [e.describe(gateway.capture_table(n)) for n, e in gateway.endpoints.items()]}
        ),
        "create_endpoint": create_endpoint,
        "get_endpoint": lambda request: described(gateway.endpoints[existing(request)]),
        "delete_endpoint": delete_endpoint,
        "update_config": update_config,
    }


def _route(handler, scope: str | None, guard: Guard):
    """``handler`` behind the token check of ``scope`` and the JSON content-type check; every
    ``BadRequest`` it raises becomes Databricks' error JSON."""
    import inspect

    async def endpoint(request):
        if scope is not None:
            refusal = guard.refuse_caller(request.headers, scope)
            if refusal is not None:
                return refusal
        if request.method in ("POST", "PUT", "PATCH"):
            media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
            if media != "application/json":
                return error(
                    415,
                    "BAD_REQUEST",
                    f"send the body as JSON: Content-Type: application/json, not {media[:60] or 'none'!r}",
                )
        try:
            answer = handler(request)
            return await answer if inspect.isawaitable(answer) else answer
        except BadRequest as exc:
            return error(exc.status, exc.error_code, str(exc))

    return endpoint


def build_app(gateway: Gateway, guard: Guard, on_stop=None):
    """The gateway's HTTP API (``openapi.OPERATIONS``) behind ``guard``."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Route

    from .openapi import OPERATIONS

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await gateway.restore()
        yield
        gateway.close()  # flushes the inference table
        if on_stop is not None:
            on_stop()

    async def no_such_api(request, exc):  # Databricks' shape for an unknown path or method too
        code = "ENDPOINT_NOT_FOUND" if exc.status_code == 404 else "BAD_REQUEST"
        return error(
            exc.status_code,
            code,
            f"No API found for '{request.method} {request.url.path[:200]}'",
            getattr(exc, "headers", None),
        )

    handlers = _handlers(gateway)
    routes = [
        Route(op.path, _route(handlers[op.operation_id], op.scope, guard), methods=[op.method])
        for op in OPERATIONS
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(BrowserGuard, guard=guard)],
        exception_handlers={404: no_such_api, 405: no_such_api},
    )


def request_guard(auth: str, host: str, state: Path) -> Guard:
    """The guard of a gateway about to serve on ``host``, or a ``ConfigError`` saying why it must
    not: no token on a reachable address, or ``serving.auth: none`` off loopback."""
    log = logging.getLogger(__name__)
    if auth == "none":
        if not is_loopback(host):
            raise ConfigError(
                f"serving.auth: none would let anyone who reaches {host} manage and query the "
                "endpoints: it is allowed with a loopback serving.host (127.0.0.1) only. Remove "
                "serving.auth (tokens are the default) or serve on 127.0.0.1"
            )
        log.warning("serving.auth: none: no token needed; anyone on this machine can manage the endpoints")
        return Guard(None, host)
    tokens = TokenStore(state)
    if not is_loopback(host):
        if not tokens:
            raise ConfigError(
                f"serving.host {host} is reachable from other machines, and this gateway has no "
                "token yet: create one first (mlops token create --scope query for callers that "
                "score, --scope manage for deployments), then start it again"
            )
        log.warning("serving on %s: reachable from the network; every API call needs a token", host)
    return Guard(tokens, host)


def serve(project: Project, host: str | None = None, port: int | None = None) -> None:
    """Run the gateway in this process until SIGTERM / Ctrl-C (then flush the inference table)."""
    import uvicorn

    settings = project.default
    host = host or settings.serving.host
    state = state_dir(settings)
    state.mkdir(parents=True, exist_ok=True)
    guard = request_guard(settings.serving.auth, host, state)  # refuses before anything starts
    port = port or settings.serving.port or _free_port(host)  # serving.port 0: any free port
    gateway = build_gateway(project)
    info = info_file(state)
    info.write_text(json.dumps({"pid": os.getpid(), "url": f"http://{host}:{port}"}))
    logging.getLogger(__name__).info("serving gateway of %s on http://%s:%s", settings.root, host, port)
    # uvicorn re-raises SIGTERM after its graceful shutdown, so clean up in the app's shutdown.
    app = build_app(gateway, guard, on_stop=lambda: info.unlink(missing_ok=True))
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=30,
    )


def is_up(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


class GatewayOwnedElsewhere(RuntimeError):
    """The configured port answers, but not with this project's gateway."""


def check_owner(url: str, state: str | Path) -> None:
    """Raise unless the gateway answering at ``url`` keeps its state in ``state`` (this MLOPS_HOME's):
    another project's gateway would serve its own models under our endpoint names."""
    mine = Path(state).resolve()
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
            other = json.loads(response.read()).get("state_dir")
    except (OSError, ValueError, AttributeError):
        other = None
    if other is not None and Path(other) == mine:
        return
    port = urlsplit(url).port
    owner = (
        f"the serving gateway of {Path(other).parent}"
        if other
        else "a server that is not this project's gateway"
    )
    stop = f"stop it (MLOPS_HOME={Path(other).parent} mlops stop) or " if other else "stop it or "
    raise GatewayOwnedElsewhere(
        f"{url} is taken by {owner}, not by this project's (MLOPS_HOME {mine.parent}): {stop}give this project "
        f"another port with serving.port in its config (port {port} now; 0 takes any free port)"
    )


def ensure_running(
    host: str, port: int, state: str | Path, settings_json: str, wait_seconds: float = 120.0
) -> str:
    """The URL of this project's gateway: the one already answering (on ``port``, or with port 0
    wherever it said it serves), else a new one started as a detached background process. Another
    project's gateway on the port is an error (see ``check_owner``).

    The process gets the exact settings of its caller (``settings_json``), whatever files and
    environment those came from.
    """
    state = Path(state)
    url = gateway_url(host, port, state)
    if url and is_up(url):
        check_owner(url, state)
        return url
    recorded = running_url(state)
    if recorded and recorded != url and is_up(recorded):
        with contextlib.suppress(GatewayOwnedElsewhere):  # then the file is stale: the port is another's now
            check_owner(recorded, state)
            raise RuntimeError(
                f"this project's serving gateway runs on {recorded}, not on {url} as "
                "serving.port now says: stop it (mlops stop), then run again"
            )
    state.mkdir(parents=True, exist_ok=True)
    info_file(state).unlink(missing_ok=True)  # a gateway that died without cleaning up
    settings_file = state / "gateway-settings.json"
    settings_file.write_text(settings_json)
    log_file = state / "gateway.log"
    with log_file.open("a") as logfile:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlops_dagster.serving", str(settings_file)],
            stdout=logfile,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            said = log_file.read_text(errors="replace").strip().splitlines()[-1:]
            raise RuntimeError(
                f"the serving gateway exited with {process.returncode}"
                f"{': ' + said[0] if said else ''} (see {log_file})"
            )
        url = gateway_url(host, port, state)
        if url and is_up(url):
            check_owner(url, state)  # another project's gateway may have taken the port meanwhile
            return url
        time.sleep(0.2)
    raise TimeoutError(
        f"the serving gateway did not answer on {url or host} within {wait_seconds:.0f} s; see {log_file}"
    )


def stop(settings: Settings, wait_seconds: float = 60.0) -> bool:
    """Stop a running gateway gracefully (SIGTERM: in-flight requests finish, captures flush).

    Done when the gateway has removed its state file at the end of its shutdown (a process
    that exited but was not reaped yet still answers ``kill -0``).
    """
    info = info_file(state_dir(settings))
    if not info.exists():
        return False
    pid = json.loads(info.read_text())["pid"]
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        info.unlink(missing_ok=True)
        return False
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if not info.exists():
            return True
        time.sleep(0.1)
    return False
