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
* Every request, including refused ones, is captured to the inference table.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .capture import InferenceCapture
from .features import OnlineFeatures
from .payload import BadRequest, Column, parse_rows

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """What the loader returns for ``entity_name`` / ``entity_version``."""

    model: Any                  # has predict_method(DataFrame)
    columns: list[Column]       # from the model signature
    example: list[list[Any]]    # rows for the smoke test (the logged input example)
    predict_method: str = "predict_proba"  # a classifier's probabilities; "predict": a regressor's numbers

    def predict(self, frame) -> Any:
        return getattr(self.model, self.predict_method)(frame)


class Batcher:
    """Scores queued requests for one model together, one model call at a time."""

    def __init__(self, model: LoadedModel, executor: ThreadPoolExecutor, max_rows: int = 4096):
        self.model, self.names, self.executor, self.max_rows = model, [c.name for c in model.columns], executor, max_rows
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
                    scores = await loop.run_in_executor(self.executor, self._predict,
                                                        [r for rows, _ in batch for r in rows])
                except Exception as exc:  # the model failed on this batch: every caller hears why
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                offset = 0
                for rows, future in batch:
                    if not future.done():
                        future.set_result(scores[offset:offset + len(rows)])
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
    config_update: str = "IN_PROGRESS"   # NOT_UPDATING | IN_PROGRESS | UPDATE_FAILED
    message: str = ""

    def describe(self, capture_table: str | None) -> dict[str, Any]:
        """The endpoint in the shape of Databricks' ServingEndpointDetailed."""
        body: dict[str, Any] = {
            "name": self.name, "id": self.name, "creation_timestamp": self.created,
            "state": {"ready": "READY" if self.active else "NOT_READY", "config_update": self.config_update},
        }
        if self.active:
            body["config"] = {
                **self.active.spec, "config_version": self.active.version,
                "served_entities": [
                    {**entity, "state": {"deployment": "DEPLOYMENT_READY"}}
                    for entity in self.active.spec["served_entities"]
                ],
            }
        if self.pending is not None:
            state = {"deployment": "DEPLOYMENT_FAILED" if self.config_update == "UPDATE_FAILED" else "DEPLOYMENT_CREATING",
                     "deployment_state_message": self.message}
            body["pending_config"] = {**self.pending, "served_entities": [
                {**entity, "state": state} for entity in self.pending.get("served_entities", [])]}
        if capture_table:
            body["auto_capture_config"] = {"enabled": True, "table_name_prefix": capture_table}
        if self.message:
            body["state_message"] = self.message
        return body


def _served_name(entity: dict[str, Any]) -> str:
    return entity.get("name") or f"{entity['entity_name'].split('.')[-1]}-{entity['entity_version']}"


def validate_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Normalize a Databricks endpoint config (served entities + traffic routes + our shadow routes)."""
    entities = spec.get("served_entities") or spec.get("served_models")
    if not isinstance(entities, list) or not entities:
        raise BadRequest("config needs served_entities: [{entity_name, entity_version, ...}]")
    normalized = []
    for entity in entities:
        if not isinstance(entity, dict) or not entity.get("entity_name") and not entity.get("model_name"):
            raise BadRequest("each served entity needs entity_name and entity_version")
        entity = {**entity}
        entity.setdefault("entity_name", entity.pop("model_name", None))
        entity.setdefault("entity_version", entity.pop("model_version", None))
        entity["entity_version"] = str(entity["entity_version"])
        entity["name"] = _served_name(entity)
        normalized.append(entity)
    names = [e["name"] for e in normalized]
    if len(set(names)) != len(names):
        raise BadRequest(f"served entity names must be unique: {names}")
    routes = (spec.get("traffic_config") or {}).get("routes")
    if routes is None:
        routes = [{"served_model_name": names[0], "traffic_percentage": 100}] if len(names) == 1 else None
    if not routes:
        raise BadRequest("traffic_config.routes is required when more than one entity is served")
    for route in routes:
        if route.get("served_model_name", route.get("served_entity_name")) not in names:
            raise BadRequest(f"route to unknown served model {route}; served: {names}")
    if sum(int(r["traffic_percentage"]) for r in routes) != 100:
        raise BadRequest(f"traffic percentages must add up to 100: {routes}")
    shadows = spec.get("shadow_routes") or []
    for shadow in shadows:
        if shadow.get("served_model_name") not in names:
            raise BadRequest(f"shadow route to unknown served model {shadow}; served: {names}")
    return {"served_entities": normalized, "traffic_config": {"routes": routes}, "shadow_routes": shadows}


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
    ):
        self.loader, self.capture, self.capture_table = loader, capture, capture_table
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
            served[name] = ServedModel(name, ename, eversion, loaded,
                                       Batcher(loaded, self.executor))
        version = (endpoint.active.version + 1) if endpoint.active else 1
        routes = [(r.get("served_model_name") or r.get("served_entity_name"), int(r["traffic_percentage"]))
                  for r in spec["traffic_config"]["routes"]]
        shadows = [(s["served_model_name"], int(s.get("mirror_percentage", 100))) for s in spec["shadow_routes"]]
        return Config(version, spec, served, [r for r in routes if r[1] > 0], shadows)

    async def _apply(self, endpoint: Endpoint, spec: dict[str, Any]) -> None:
        try:
            config = await asyncio.get_running_loop().run_in_executor(None, self._load_config, endpoint, spec)
        except Exception as exc:
            endpoint.config_update, endpoint.message = "UPDATE_FAILED", str(exc)
            log.error("endpoint %s: config update failed, previous config keeps serving: %s", endpoint.name, exc)
            return
        endpoint.active = config  # the swap: requests already routed keep their ServedModel
        endpoint.pending, endpoint.config_update, endpoint.message = None, "NOT_UPDATING", ""
        self._save()
        log.info("endpoint %s: config %d serving %s", endpoint.name, config.version, config.routes)

    def submit(self, name: str, spec: dict[str, Any], create: bool = False) -> Endpoint:
        spec = validate_spec(spec)
        endpoint = self.endpoints.get(name)
        if create and endpoint is not None:
            raise BadRequest(f"endpoint {name!r} already exists", status=409, error_code="RESOURCE_ALREADY_EXISTS")
        if not create and endpoint is None:
            raise BadRequest(f"endpoint {name!r} does not exist", status=404, error_code="RESOURCE_DOES_NOT_EXIST")
        if endpoint is None:
            endpoint = self.endpoints[name] = Endpoint(name)
        elif endpoint.config_update == "IN_PROGRESS":
            raise BadRequest(f"endpoint {name!r} has an update in progress", status=409,
                             error_code="RESOURCE_CONFLICT")
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
            self.submit(name, spec, create=True)
        await asyncio.gather(*self._loads)

    # --- scoring -------------------------------------------------------------------------------

    def default_endpoint(self) -> str:
        if len(self.endpoints) != 1:
            raise BadRequest(f"/invocations needs exactly one endpoint, this gateway has {sorted(self.endpoints)}; "
                             "use /serving-endpoints/{name}/invocations", status=404,
                             error_code="RESOURCE_DOES_NOT_EXIST")
        return next(iter(self.endpoints))

    async def invoke(self, name: str, body: bytes, size: int | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Score ``body`` on endpoint ``name``. ``size`` is the declared body size when the body was
        not read because it is too large."""
        started = time.perf_counter()
        request_id = uuid.uuid4().hex
        endpoint = self.endpoints.get(name)
        served: ServedModel | None = None
        try:
            if endpoint is None:
                raise BadRequest(f"endpoint {name!r} does not exist", status=404, error_code="RESOURCE_DOES_NOT_EXIST")
            config = endpoint.active
            if config is None:
                raise BadRequest(f"endpoint {name!r} is not ready ({endpoint.config_update}: {endpoint.message})",
                                 status=503, error_code="TEMPORARILY_UNAVAILABLE")
            served = config.pick(self.rng)
            size = len(body) if size is None else size
            if size > self.max_body_bytes:
                raise BadRequest(f"request body of {size} bytes exceeds the limit of {self.max_body_bytes}",
                                 status=413, error_code="REQUEST_LIMIT_EXCEEDED")
            features = self.features.get(name)
            if features is None:
                rows = parse_rows(body, served.loaded.columns, self.max_rows)
            else:
                rows = await asyncio.get_running_loop().run_in_executor(
                    self.lookups, parse_rows, body, served.loaded.columns, self.max_rows, features.fill)
            for shadow, percent in config.shadows:
                if shadow != served.name and self.rng.random() * 100 < percent:
                    asyncio.get_running_loop().create_task(
                        self._mirror(endpoint.name, config.served[shadow], rows, body, request_id))
            predictions = await served.batcher.predict(rows)
            status, response, error = 200, {"predictions": predictions}, None
        except BadRequest as exc:
            status, response, error = exc.status, {"error_code": exc.error_code, "message": str(exc)}, str(exc)
        except Exception as exc:  # the model itself failed: a server error, still captured
            log.exception("endpoint %s: scoring failed", name)
            status, error = 500, f"{type(exc).__name__}: {exc}"
            response = {"error_code": "INTERNAL_ERROR", "message": f"model failed to score the request: {error}"}
        latency = (time.perf_counter() - started) * 1000
        self._capture(name, request_id, served, status, latency, body, response, error, mirrored=False)
        headers = {"x-request-id": request_id}
        if served is not None and status == 200:
            headers["served-model-name"] = served.name
        return status, response, headers

    async def _mirror(self, name: str, shadow: ServedModel, rows, body: bytes, request_id: str) -> None:
        started = time.perf_counter()
        try:
            status, response, error = 200, {"predictions": await shadow.batcher.predict(rows)}, None
        except Exception as exc:
            status, response, error = 500, {}, f"{type(exc).__name__}: {exc}"
        self._capture(name, request_id, shadow, status, (time.perf_counter() - started) * 1000, body, response,
                      error, mirrored=True)

    def _capture(self, name, request_id, served, status, latency, body, response, error, mirrored) -> None:
        if self.capture is None:
            return
        self.capture.record({
            "request_id": request_id, "request_time": time.time(), "endpoint": name,
            "served_model_name": served.name if served else None,
            "model_name": served.entity_name if served else None,
            "model_version": served.entity_version if served else None,
            "status_code": status, "latency_ms": latency,
            "request": body.decode("utf-8", errors="replace")[:65536],
            "response": json.dumps(response)[:65536], "error": error, "mirrored": mirrored,
        })

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
