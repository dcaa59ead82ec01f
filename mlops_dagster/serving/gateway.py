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
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from .admission import Overloaded
from .batching import Batcher, LoadedModel
from .capture import InferenceCapture
from .endpoints import MAX_QUEUED_REQUESTS, Config, Endpoint, ServedModel, check_name, validate_spec
from .features import OnlineFeatures
from .model_processes import ModelProcesses
from .payload import BadRequest, Column, parse_rows

log = logging.getLogger(__name__)


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
        model_processes: int = 1,
    ):
        """``max_queued_requests``: each endpoint's bound on requests held at once, unless
        ``queue_bounds`` names the endpoint (each use case's own ``serving.max_queued_requests``).
        ``model_processes`` > 1: batches are scored by that many worker processes at once."""
        self.loader, self.capture, self.capture_table = loader, capture, capture_table
        self.max_queued_requests, self.queue_bounds = max_queued_requests, queue_bounds or {}
        self.state_file, self.max_body_bytes, self.max_rows = state_file, max_body_bytes, max_rows
        self.endpoints: dict[str, Endpoint] = {}
        self.rng = random.Random(seed)
        self.processes = ModelProcesses(model_processes) if model_processes > 1 else None
        self.executor = ThreadPoolExecutor(max_workers=model_processes, thread_name_prefix="predict")
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
            served[name] = ServedModel(
                name, ename, eversion, loaded, self._batcher(loaded, f"{ename}/{eversion}")
            )
        version = (endpoint.active.version + 1) if endpoint.active else 1
        routes = [(r["served_model_name"], r["traffic_percentage"]) for r in spec["traffic_config"]["routes"]]
        shadows = [(s["served_model_name"], s["mirror_percentage"]) for s in spec["shadow_routes"]]
        return Config(version, spec, served, [r for r in routes if r[1] > 0], shadows)

    def _batcher(self, loaded: LoadedModel, key: str) -> Batcher:
        """The model's batcher: scoring in this process, or in the worker processes (given a copy)."""
        if self.processes is None:
            return Batcher(loaded, self.executor)
        self.processes.add(key, loaded.model, loaded.predict_method, [c.name for c in loaded.columns])
        return Batcher(
            loaded, self.executor, score=partial(self.processes.predict, key), parallel=self.processes.count
        )

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
        if self.processes is not None:
            self.processes.close()
        if self.lookups is not None:
            self.lookups.shutdown(wait=True)
            for store in {id(f.store): f.store for f in self.features.values()}.values():
                store.close()


def _frame(rows: list[list[Any]], columns: list[Column]):
    import pandas as pd

    return pd.DataFrame(rows, columns=[c.name for c in columns])
