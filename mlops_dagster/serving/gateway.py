"""The local serving gateway: speaks the Databricks serving REST API and MLflow's scoring protocol.

* ``POST /serving-endpoints/{name}/invocations`` (and MLflow's ``POST /invocations``) with
  ``dataframe_split`` / ``dataframe_records`` / ``instances`` / ``inputs``; ``GET /ping``, ``/health``.
* ``/api/2.0/serving-endpoints`` create / list / get / update config / delete, so databricks-sdk's
  ``WorkspaceClient`` pointed at the gateway manages it like a workspace endpoint.
* A config update is desired state: new models are loaded and smoke-tested in the background
  while the old config keeps answering; the switch is one reference swap, so no request is
  dropped. A failed load or smoke test leaves the old config serving (``UPDATE_FAILED``).
* Traffic: weighted routes between served models (blue/green, canary, A/B) and shadow routes
  that mirror requests to a candidate whose answers are captured but never returned.
* Concurrent requests for one model are scored together (dynamic batching): one
  model call serves every request that arrived while the previous call ran.
* Feature serving: a request may send only the entity key; the model's features are looked up
  in the online store first (unknown keys get a 404 naming them).
* Overload: each endpoint holds at most ``max_queued_requests`` requests waiting or being scored;
  past that it answers 429 ``REQUEST_LIMIT_EXCEEDED`` with ``Retry-After`` at once (``admission``).
* Every request, including refused ones, is captured to the inference table.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..settings import ServingSettings
from .admission import Admission, Overloaded
from .capture import InferenceCapture
from .features import OnlineFeatures
from .payload import BadRequest, Column, parse_rows

log = logging.getLogger(__name__)

MAX_QUEUED_REQUESTS = ServingSettings.model_fields["max_queued_requests"].default


@dataclass
class LoadedModel:
    """What the loader returns for ``entity_name`` / ``entity_version``."""

    model: Any  # has predict_method(DataFrame)
    columns: list[Column]  # from the model signature
    example: list[list[Any]]  # rows for the smoke test (the logged input example)
    predict_method: str = "predict_proba"  # a classifier's probabilities; "predict": a regressor's numbers

    def predict(self, frame) -> Any:
        return getattr(self.model, self.predict_method)(frame)


class Batcher:
    """Scores queued requests for one model together, one model call at a time."""

    def __init__(self, model: LoadedModel, executor: ThreadPoolExecutor, max_rows: int = 4096):
        self.model, self.names, self.executor, self.max_rows = (
            model,
            [c.name for c in model.columns],
            executor,
            max_rows,
        )
        self.queue: list[tuple[list[list[Any]], asyncio.Future]] = []
        self.running = False

    def _predict(self, rows: list[list[Any]]) -> list:
        import pandas as pd
        import sklearn

        frame = pd.DataFrame(rows, columns=self.names)
        # A fitted model and inputs already checked against its signature: skip sklearn's
        # per-call parameter validation and finiteness scan (the imputers handle missing values).
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            return self.model.predict(frame).tolist()

    async def predict(self, rows: list[list[Any]]) -> list:
        future = asyncio.get_running_loop().create_future()
        self.queue.append((rows, future))
        if not self.running:
            self.running = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.queue:
                batch, size = [], 0
                while self.queue and (not batch or size + len(self.queue[0][0]) <= self.max_rows):
                    rows, future = self.queue.pop(0)
                    batch.append((rows, future))
                    size += len(rows)
                try:
                    scores = await loop.run_in_executor(
                        self.executor, self._predict, [r for rows, _ in batch for r in rows]
                    )
                except Exception as exc:  # the model failed on this batch: every caller hears why
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                offset = 0
                for rows, future in batch:
                    if not future.done():
                        future.set_result(scores[offset : offset + len(rows)])
                    offset += len(rows)
        finally:
            self.running = False


@dataclass
class ServedModel:
    name: str
    entity_name: str
    entity_version: str
    loaded: LoadedModel
    batcher: Batcher


@dataclass
class Config:
    """One applied endpoint configuration; replaced as a whole, never edited in place."""

    version: int
    spec: dict[str, Any]
    served: dict[str, ServedModel]
    routes: list[tuple[str, int]]
    shadows: list[tuple[str, int]]

    def pick(self, rng: random.Random) -> ServedModel:
        names, weights = zip(*self.routes)
        return self.served[rng.choices(names, weights=weights)[0]]


@dataclass
class Endpoint:
    name: str
    created: int = field(default_factory=lambda: int(time.time() * 1000))
    active: Config | None = None
    pending: dict[str, Any] | None = None
    config_update: str = "IN_PROGRESS"  # NOT_UPDATING | IN_PROGRESS | UPDATE_FAILED
    message: str = ""
    max_queued_requests: int = MAX_QUEUED_REQUESTS
    admission: Admission = field(init=False)  # outlives config swaps: the bound is the endpoint's

    def __post_init__(self) -> None:
        self.admission = Admission(self.name, self.max_queued_requests)

    def describe(self, capture_table: str | None) -> dict[str, Any]:
        """The endpoint in the shape of Databricks' ServingEndpointDetailed."""
        body: dict[str, Any] = {
            "name": self.name,
            "id": self.name,
            "creation_timestamp": self.created,
            "state": {"ready": "READY" if self.active else "NOT_READY", "config_update": self.config_update},
        }
        if self.active:
            body["config"] = {
                **self.active.spec,
                "config_version": self.active.version,
                "served_entities": [
                    {**entity, "state": {"deployment": "DEPLOYMENT_READY"}}
                    for entity in self.active.spec["served_entities"]
                ],
            }
        if self.pending is not None:
            state = {
                "deployment": "DEPLOYMENT_FAILED"
                if self.config_update == "UPDATE_FAILED"
                else "DEPLOYMENT_CREATING",
                "deployment_state_message": self.message,
            }
            body["pending_config"] = {
                **self.pending,
                "served_entities": [
                    {**entity, "state": state} for entity in self.pending.get("served_entities", [])
                ],
            }
        if capture_table:
            body["auto_capture_config"] = {"enabled": True, "table_name_prefix": capture_table}
        if self.message:
            body["state_message"] = self.message
        return body


# Databricks: "An endpoint name can consist of alphanumeric characters, dashes, and underscores"
# (at most 63 of them); served entity names follow the same rule.
NAME = re.compile(r"^[A-Za-z0-9_-]{1,63}$")
VERSION = re.compile(r"^[1-9][0-9]{0,17}$")


def _invalid(message: str) -> BadRequest:
    return BadRequest(message, error_code="INVALID_PARAMETER_VALUE")


def check_name(name: Any, field: str = "name") -> str:
    """``name`` if it is a valid endpoint (or served entity) name, else a 400 saying the rule."""
    if not isinstance(name, str) or not NAME.match(name):
        shown = repr(name) if not isinstance(name, str) or len(name) < 80 else f"{name[:80]!r}..."
        raise _invalid(f"{field} {shown} is not a valid name: use 1 to 63 letters, digits, '-' or '_'")
    return name


def _entity(entity: Any, index: int) -> dict[str, Any]:
    """A served entity with a valid entity_name, entity_version (a positive integer, as a string)
    and name (given, or ``<model>-<version>``)."""
    field = f"served_entities[{index}]"
    if not isinstance(entity, dict):
        raise _invalid(f"{field} must be an object with entity_name and entity_version")
    entity = {**entity}
    ename = entity.pop("model_name", None) if "entity_name" not in entity else entity["entity_name"]
    eversion = (
        entity.pop("model_version", None) if "entity_version" not in entity else entity["entity_version"]
    )
    if not isinstance(ename, str) or not ename.strip() or len(ename) > 255 or not ename.isprintable():
        raise _invalid(f"{field}.entity_name is required: the registered model's name (got {ename!r:.80})")
    if isinstance(eversion, int) and not isinstance(eversion, bool):
        eversion = str(eversion)
    if not isinstance(eversion, str) or not VERSION.match(eversion):
        raise _invalid(
            f"{field}.entity_version is required: a model version, a positive integer such as "
            f'"1" (got {eversion!r:.80})'
        )
    entity["entity_name"], entity["entity_version"] = ename, eversion
    default = f"{ename.split('.')[-1]}-{eversion}"
    if entity.get("name") is None and not NAME.match(default):
        raise _invalid(f"{field}.name is required: {default!r:.80} (the default) is not a valid name")
    entity["name"] = check_name(entity.get("name") or default, f"{field}.name")
    return entity


def _percent(route: Any, field: str, key: str, default: int | None = None) -> int:
    value = route.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise _invalid(f"{field}.{key} must be a whole number from 0 to 100 (got {value!r:.80})")
    return value


def _routes(spec: dict[str, Any], names: list[str]) -> list[dict[str, Any]]:
    traffic = spec.get("traffic_config")
    if traffic is not None and not isinstance(traffic, dict):
        raise _invalid('traffic_config must be an object: {"routes": [...]}')
    routes = (traffic or {}).get("routes")
    if routes is None:
        if len(names) > 1:
            raise _invalid("traffic_config.routes is required when more than one entity is served")
        return [{"served_model_name": names[0], "traffic_percentage": 100}]
    if not isinstance(routes, list) or not routes:
        raise _invalid("traffic_config.routes must be a list of {served_model_name, traffic_percentage}")
    normalized = []
    for i, route in enumerate(routes):
        field = f"traffic_config.routes[{i}]"
        if not isinstance(route, dict):
            raise _invalid(f"{field} must be an object: {{served_model_name, traffic_percentage}}")
        target = route.get("served_model_name", route.get("served_entity_name"))
        if target not in names:
            raise _invalid(f"{field} routes to unknown served model {target!r:.80}; served: {names}")
        normalized.append(
            {
                **route,
                "served_model_name": target,
                "traffic_percentage": _percent(route, field, "traffic_percentage"),
            }
        )
    if sum(r["traffic_percentage"] for r in normalized) != 100:
        raise _invalid(
            f"traffic percentages must add up to 100: {[r['traffic_percentage'] for r in normalized]}"
        )
    return normalized


def _shadows(spec: dict[str, Any], names: list[str]) -> list[dict[str, Any]]:
    shadows = spec.get("shadow_routes") or []
    if not isinstance(shadows, list):
        raise _invalid("shadow_routes must be a list of {served_model_name, mirror_percentage}")
    normalized = []
    for i, shadow in enumerate(shadows):
        field = f"shadow_routes[{i}]"
        if not isinstance(shadow, dict) or shadow.get("served_model_name") not in names:
            raise _invalid(f"{field} must name a served model ({names}): {shadow!r:.80}")
        normalized.append({**shadow, "mirror_percentage": _percent(shadow, field, "mirror_percentage", 100)})
    return normalized


def validate_spec(spec: Any) -> dict[str, Any]:
    """Normalize a Databricks endpoint config (served entities + traffic routes + our shadow
    routes); every mistake is a ``BadRequest`` naming the field."""
    if not isinstance(spec, dict):
        raise _invalid('config must be an object: {"served_entities": [...], "traffic_config": {...}}')
    entities = spec.get("served_entities") or spec.get("served_models")
    if not isinstance(entities, list) or not entities:
        raise _invalid("config needs served_entities: [{entity_name, entity_version, ...}]")
    normalized = [_entity(entity, i) for i, entity in enumerate(entities)]
    names = [e["name"] for e in normalized]
    if len(set(names)) != len(names):
        raise _invalid(f"served entity names must be unique: {names}")
    return {
        "served_entities": normalized,
        "traffic_config": {"routes": _routes(spec, names)},
        "shadow_routes": _shadows(spec, names),
    }


class Gateway:
    def __init__(
        self,
        loader: Callable[[str, str], LoadedModel],
        capture: InferenceCapture | None = None,
        capture_table: Callable[[str], str] | None = None,
        state_file: Path | None = None,
        max_body_bytes: int = 1 << 20,
        max_rows: int = 10_000,
        seed: int | None = None,
        features: dict[str, OnlineFeatures] | None = None,
        max_queued_requests: int = MAX_QUEUED_REQUESTS,
        queue_bounds: dict[str, int] | None = None,
    ):
        """``max_queued_requests``: each endpoint's bound on requests held at once, unless
        ``queue_bounds`` names the endpoint (each use case's own ``serving.max_queued_requests``)."""
        self.loader, self.capture, self.capture_table = loader, capture, capture_table
        self.max_queued_requests, self.queue_bounds = max_queued_requests, queue_bounds or {}
        self.state_file, self.max_body_bytes, self.max_rows = state_file, max_body_bytes, max_rows
        self.endpoints: dict[str, Endpoint] = {}
        self.rng = random.Random(seed)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        # Online feature lookups (per endpoint: each use case its own) wait on a store, never on the event loop.
        self.features = features or {}
        self.lookups = ThreadPoolExecutor(max_workers=1, thread_name_prefix="features") if features else None
        self._loads: set[asyncio.Task] = set()

    # --- configuration -------------------------------------------------------------------------

    def _load_config(self, endpoint: Endpoint, spec: dict[str, Any]) -> Config:
        """Load (reusing models already served) and smoke-test every served entity of ``spec``."""
        current = endpoint.active.served if endpoint.active else {}
        served = {}
        for entity in spec["served_entities"]:
            name, ename, eversion = entity["name"], entity["entity_name"], entity["entity_version"]
            old = current.get(name)
            if old and (old.entity_name, old.entity_version) == (ename, eversion):
                served[name] = old
                continue
            try:
                loaded = self.loader(ename, eversion)
            except Exception as exc:
                raise RuntimeError(f"could not load {ename} version {eversion}: {exc}") from exc
            try:
                scores = loaded.predict(_frame(loaded.example, loaded.columns))
                if len(scores) != len(loaded.example):
                    raise ValueError(f"{len(scores)} predictions for {len(loaded.example)} rows")
            except Exception as exc:
                raise RuntimeError(f"smoke test of {ename} version {eversion} failed: {exc}") from exc
            served[name] = ServedModel(name, ename, eversion, loaded, Batcher(loaded, self.executor))
        version = (endpoint.active.version + 1) if endpoint.active else 1
        routes = [(r["served_model_name"], r["traffic_percentage"]) for r in spec["traffic_config"]["routes"]]
        shadows = [(s["served_model_name"], s["mirror_percentage"]) for s in spec["shadow_routes"]]
        return Config(version, spec, served, [r for r in routes if r[1] > 0], shadows)

    async def _apply(self, endpoint: Endpoint, spec: dict[str, Any]) -> None:
        try:
            config = await asyncio.get_running_loop().run_in_executor(None, self._load_config, endpoint, spec)
        except Exception as exc:
            endpoint.config_update, endpoint.message = "UPDATE_FAILED", str(exc)
            log.error(
                "endpoint %s: config update failed, previous config keeps serving: %s", endpoint.name, exc
            )
            return
        endpoint.active = config  # the swap: requests already routed keep their ServedModel
        endpoint.pending, endpoint.config_update, endpoint.message = None, "NOT_UPDATING", ""
        self._save()
        log.info("endpoint %s: config %d serving %s", endpoint.name, config.version, config.routes)

    def submit(self, name: Any, spec: Any, create: bool = False) -> Endpoint:
        name = check_name(name) if create else name
        spec = validate_spec(spec)
        endpoint = self.endpoints.get(name)
        if create and endpoint is not None:
            raise BadRequest(
                f"endpoint {name!r} already exists", status=409, error_code="RESOURCE_ALREADY_EXISTS"
            )
        if not create and endpoint is None:
            raise BadRequest(
                f"endpoint {name!r} does not exist", status=404, error_code="RESOURCE_DOES_NOT_EXIST"
            )
        if endpoint is None:
            endpoint = self.endpoints[name] = Endpoint(
                name, max_queued_requests=self.queue_bounds.get(name, self.max_queued_requests)
            )
        elif endpoint.config_update == "IN_PROGRESS":
            raise BadRequest(
                f"endpoint {name!r} has an update in progress", status=409, error_code="RESOURCE_CONFLICT"
            )
        endpoint.pending, endpoint.config_update, endpoint.message = spec, "IN_PROGRESS", ""
        task = asyncio.get_running_loop().create_task(self._apply(endpoint, spec))
        self._loads.add(task)
        task.add_done_callback(self._loads.discard)
        return endpoint

    def delete(self, name: str) -> None:
        del self.endpoints[name]
        self._save()

    def _save(self) -> None:
        if self.state_file is None:
            return
        state = {name: e.active.spec for name, e in self.endpoints.items() if e.active}
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_file)

    async def restore(self) -> None:
        """Bring back the endpoints a previous gateway process was serving."""
        if self.state_file is None or not self.state_file.exists():
            return
        for name, spec in json.loads(self.state_file.read_text()).items():
            try:
                self.submit(name, spec, create=True)
            except BadRequest as exc:  # saved by an older, laxer gateway: the others still come back
                log.error("endpoint %s not restored: %s", name, exc)
        await asyncio.gather(*self._loads)

    # --- scoring -------------------------------------------------------------------------------

    def default_endpoint(self) -> str:
        """The endpoint MLflow's ``POST /invocations`` scores on: the only one there is."""
        if not self.endpoints:
            raise BadRequest(
                "/invocations scores on this gateway's only endpoint, and it has none yet",
                status=404,
                error_code="RESOURCE_DOES_NOT_EXIST",
            )
        if len(self.endpoints) > 1:
            urls = ", ".join(f"/serving-endpoints/{n}/invocations" for n in sorted(self.endpoints))
            raise BadRequest(
                f"/invocations is ambiguous: this gateway serves {len(self.endpoints)} endpoints "
                f"({', '.join(sorted(self.endpoints))}); POST to one of {urls}"
            )
        return next(iter(self.endpoints))

    async def invoke(
        self, name: str, body: bytes, size: int | None = None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Score ``body`` on endpoint ``name``. ``size`` is the declared body size when the body was
        not read because it is too large."""
        started = time.perf_counter()
        request_id = uuid.uuid4().hex
        endpoint = self.endpoints.get(name)
        served: ServedModel | None = None
        retry_after: int | None = None
        try:
            if endpoint is None:
                raise BadRequest(
                    f"endpoint {name!r} does not exist", status=404, error_code="RESOURCE_DOES_NOT_EXIST"
                )
            config = endpoint.active
            if config is None:
                raise BadRequest(
                    f"endpoint {name!r} is not ready ({endpoint.config_update}: {endpoint.message})",
                    status=503,
                    error_code="TEMPORARILY_UNAVAILABLE",
                )
            served = config.pick(self.rng)
            size = len(body) if size is None else size
            if size > self.max_body_bytes:
                raise BadRequest(
                    f"request body of {size} bytes exceeds the limit of {self.max_body_bytes}",
                    status=413,
                    error_code="REQUEST_LIMIT_EXCEEDED",
                )
            with endpoint.admission.admit():  # past the bound: Overloaded, a 429 before any work
                predictions = await self._score(endpoint, config, served, body, request_id)
            status, response, error = 200, {"predictions": predictions}, None
        except BadRequest as exc:
            status, response, error = (
                exc.status,
                {"error_code": exc.error_code, "message": str(exc)},
                str(exc),
            )
            retry_after = exc.retry_after if isinstance(exc, Overloaded) else None
        except Exception as exc:  # the model itself failed: a server error, still captured
            log.exception("endpoint %s: scoring failed", name)
            status, error = 500, f"{type(exc).__name__}: {exc}"
            response = {
                "error_code": "INTERNAL_ERROR",
                "message": f"model failed to score the request: {error}",
            }
        latency = (time.perf_counter() - started) * 1000
        self._capture(name, request_id, served, status, latency, body, response, error, mirrored=False)
        headers = {"x-request-id": request_id}
        if served is not None and status == 200:
            headers["served-model-name"] = served.name
        if retry_after is not None:
            headers["retry-after"] = str(retry_after)
        return status, response, headers

    async def _score(
        self, endpoint: Endpoint, config: Config, served: ServedModel, body: bytes, request_id: str
    ):
        """Parse ``body`` (with online features if the endpoint has them), mirror it, score it on ``served``."""
        features = self.features.get(endpoint.name)
        if features is None:
            rows = parse_rows(body, served.loaded.columns, self.max_rows)
        else:
            rows = await asyncio.get_running_loop().run_in_executor(
                self.lookups, parse_rows, body, served.loaded.columns, self.max_rows, features.fill
            )
        for shadow, percent in config.shadows:
            if shadow != served.name and self.rng.random() * 100 < percent:
                asyncio.get_running_loop().create_task(
                    self._mirror(endpoint, config.served[shadow], rows, body, request_id)
                )
        return await served.batcher.predict(rows)

    async def _mirror(
        self, endpoint: Endpoint, shadow: ServedModel, rows, body: bytes, request_id: str
    ) -> None:
        """Score a copy on the shadow model. It takes a place under the endpoint's bound like a
        request (the shadow shares the model thread): with none free it is skipped, captured as 429."""
        started = time.perf_counter()
        try:
            with endpoint.admission.admit():
                status, response, error = 200, {"predictions": await shadow.batcher.predict(rows)}, None
        except Overloaded as exc:
            status, response, error = 429, {"error_code": exc.error_code, "message": str(exc)}, str(exc)
        except Exception as exc:
            status, response, error = 500, {}, f"{type(exc).__name__}: {exc}"
        self._capture(
            endpoint.name,
            request_id,
            shadow,
            status,
            (time.perf_counter() - started) * 1000,
            body,
            response,
            error,
            mirrored=True,
        )

    def _capture(self, name, request_id, served, status, latency, body, response, error, mirrored) -> None:
        if self.capture is None:
            return
        self.capture.record(
            {
                "request_id": request_id,
                "request_time": time.time(),
                "endpoint": name,
                "served_model_name": served.name if served else None,
                "model_name": served.entity_name if served else None,
                "model_version": served.entity_version if served else None,
                "status_code": status,
                "latency_ms": latency,
                "request": body.decode("utf-8", errors="replace")[:65536],
                "response": json.dumps(response)[:65536],
                "error": error,
                "mirrored": mirrored,
            }
        )

    def close(self) -> None:
        if self.capture is not None:
            self.capture.close()
        self.executor.shutdown(wait=True)
        if self.lookups is not None:
            self.lookups.shutdown(wait=True)
            for store in {id(f.store): f.store for f in self.features.values()}.values():
                store.close()


def _frame(rows: list[list[Any]], columns: list[Column]):
    import pandas as pd

    return pd.DataFrame(rows, columns=[c.name for c in columns])
