"""A Databricks workspace emulator: the REST subset dagster-databricks and databricks-sdk call,
served on 127.0.0.1 (random port) by a real HTTP server, doing the work for real.

- DBFS 2.0: create / add-block / close / put / read / get-status / mkdirs / delete / list, on a
  local folder (the emulator's DBFS root).
- Jobs 2.1 and 2.2: runs/submit / get / get-output / cancel. A ``spark_python_task`` runs in a
  subprocess (``databricks_runtime``) with local Spark, ``/dbfs/`` mapped to the DBFS root and
  ``spark`` / ``sc`` / ``dbutils`` in the script's globals; a serverless task (no cluster) must name
  one of the run's ``environments`` (recorded as its ``cluster``); the script may be in a volume; files under ``/dbfs/`` opened from the
  emulator's DBFS root and a new cluster's ``spark_env_vars`` in its environment (how Dagster Pipes
  passes its parameters, its context and messages going through DBFS). Its state moves PENDING -> RUNNING ->
  TERMINATED with SUCCESS / FAILED / CANCELED, or INTERNAL_ERROR when its "cluster" fails.
- Permissions 2.0: PATCH / GET on jobs and clusters, and a one-time run's ``access_control_list``; Unity Catalog grants 2.1: GET / PATCH.
- Files 2.0: files (upload / download / delete) and directories (create / list / delete) of
  volumes, each volume a local folder (``volumes``).
- Serving endpoints: create / get / update config / delete / invocations, answered by the
  project's serving gateway (the same Databricks serving API), when built with ``project``.
- Billing: every run that ran on a new cluster leaves a ``system.billing.usage`` record (its
  cluster's custom tags, DBUs = (driver + min workers) x run time x ``DBU_PER_NODE_HOUR``);
  ``bill`` adds one for compute it does not run (an endpoint's uptime); ``system.billing.list_prices``
  prices each SKU. SQL Statement Execution 2.0 (statements / get)
  on a registered warehouse (``add_warehouse``) runs the statement with Spark SQL against those
  rows (``system.billing.*`` are the only tables it knows).
- Clusters 2.1 ``get`` for existing clusters registered with ``add_cluster``.
- Unity Catalog objects as records (no storage behind them): catalogs (``add_catalog``; creating
  one is a metastore admin's job), schemas and volumes (get / create, refused when their parent is
  missing or they exist); workspace folders (mkdirs / get-status); secret scopes' key names
  (``list``, never values).
- Lakebase (Database 2.0): database instances (create / get; a new one is STARTING, then
  AVAILABLE) and credentials for them, on a real PostgreSQL server (``add_postgres``): each
  instance's creator gets a login role owning ``databricks_postgres``, and each credential is a new
  random password of that role, so only the newest token logs in. ``current_user.me`` names the
  identity of the token (``USER_NAME``).
- Monitors (Unity Catalog quality monitors 2.1): create / get / run a refresh / get a refresh.
  A monitor needs its table, read with delta-rs under ``tables_root`` (where the emulated target
  keeps its tables); a refresh really profiles it and writes ``<table>_profile_metrics`` in the
  output schema: per window of each granularity, model id (inference-log profiles), slice (the
  whole table, and each value of a column named in ``slicing_exprs``) and column, a subset of
  Databricks' columns (``window``, ``granularity``, ``log_type``, ``slice_key``, ``slice_value``,
  ``column_name``, ``data_type``, ``count``, ``num_nulls``, ``percent_null``, ``avg``, ``min``,
  ``max``, ``stddev``; ``:table`` is the whole row). No drift metrics table and no dashboard.
- Secrets for ``dbutils.secrets.get``; a bearer token every call must carry.
- Faults: ``fail_next_calls`` (429 / 500 / 503 for the next N calls), ``fail_next_run``,
  ``slow_runs`` (runs wait in PENDING, like a cluster starting).

What it does not emulate: clusters (each run is one local process), libraries (the runtime is
this virtualenv; requested libraries are recorded, not installed), Unity Catalog and Delta on
Spark (no delta-spark jars here), the MLflow REST API and notebooks.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any, ClassVar

RUNTIME_VERSION = "15.4.x-emulator"
DBU_PER_NODE_HOUR = {"i3.xlarge": 1.0, "i3.2xlarge": 2.0}  # the emulated workspace's own rates
USER_NAME = "mlops-ci@example.com"  # the identity of the workspace token
LIST_PRICES = {
    "PREMIUM_JOBS_COMPUTE": 0.15,
    "PREMIUM_ALL_PURPOSE_COMPUTE": 0.55,
    "PREMIUM_SERVERLESS_REAL_TIME_INFERENCE": 0.07,
    "PREMIUM_JOBS_SERVERLESS_COMPUTE": 0.35,
}


@dataclass
class EmulatedRun:
    run_id: int
    job_id: int
    run_name: str
    task: dict[str, Any]
    libraries: list[dict[str, Any]]
    cluster: dict[str, Any]
    life_cycle_state: str = "PENDING"
    result_state: str | None = None
    state_message: str = ""
    pid: int | None = None
    start_time: int = field(default_factory=lambda: int(time.time() * 1000))
    end_time: int = 0
    cancel_requested: bool = False
    stdout_path: str = ""
    stderr_path: str = ""
    ran_from: int = 0  # when its "cluster" started running the task (ms)


class DatabricksEmulator:
    def __init__(
        self,
        root: Path,
        token: str,
        project=None,
        run_env: dict[str, str] | None = None,
        volumes: list[Path] | None = None,
        tables_root: Path | None = None,
    ):
        self.root = Path(root)
        self.dbfs_root = self.root / "dbfs"
        self.dbfs_root.mkdir(parents=True, exist_ok=True)
        self.token = token
        self.project = project
        self.run_env = dict(run_env or {})
        self.volumes = [Path(v).resolve() for v in volumes or []]  # folders the Files API may list
        self.tables_root = tables_root  # catalog/schema/table folders of the target's Delta tables
        self.monitors: dict[str, dict[str, Any]] = {}  # table -> MonitorInfo
        self.refreshes: dict[str, list[dict[str, Any]]] = {}  # table -> its refreshes, newest last
        self.runs: dict[int, EmulatedRun] = {}
        self.secrets: dict[str, dict[str, str]] = {}
        self.permissions: dict[tuple[str, str], list[dict]] = {}
        self.grants: dict[tuple[str, str], dict[str, set[str]]] = {}  # securable -> principal -> privileges
        self.calls: list[tuple[str, str, int]] = []  # method, path, status
        self.usage: list[dict[str, Any]] = []  # system.billing.usage records
        self.warehouses: set[str] = set()
        self.clusters: dict[str, dict[str, Any]] = {}
        self.catalogs: dict[str, dict[str, Any]] = {}  # name -> CatalogInfo
        self.schemas: dict[str, dict[str, Any]] = {}  # full name -> SchemaInfo
        self.uc_volumes: dict[str, dict[str, Any]] = {}  # full name -> VolumeInfo
        self.folders: set[str] = {"/", "/Users", "/Shared"}  # workspace folders
        self.statements: dict[str, dict[str, Any]] = {}
        self.database_instances: dict[str, dict[str, Any]] = {}
        self.database_tokens: list[str] = []  # every Lakebase credential handed out
        self._postgres: str | None = None  # the admin DSN of the server behind the instances
        self._ids = itertools.count(1001)
        self._handles: dict[int, tuple[Path, bytearray]] = {}
        self._faults: list[tuple[int, str | None, str]] = []
        self._fail_runs: list[str] = []
        self._pending_seconds = 0.0
        self._lock = threading.Lock()
        self._gateway = None
        self._server = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # ---- fault injection -------------------------------------------------------------------
    def fail_next_calls(
        self,
        status: int,
        count: int,
        path_prefix: str | None = None,
        message: str = "Unexpected error: injected by the emulator",
    ) -> None:
        """The next ``count`` calls (under ``path_prefix``) answer ``status``."""
        with self._lock:
            self._faults.extend([(status, path_prefix, message)] * count)

    def fail_next_run(self, message: str = "Cluster failed to start: injected by the emulator") -> None:
        self._fail_runs.append(message)

    def slow_runs(self, seconds: float) -> None:
        self._pending_seconds = seconds

    def add_cluster(self, cluster_id: str, **spec: Any) -> None:
        """An existing (all-purpose) cluster that Clusters 2.1 ``get`` describes."""
        self.clusters[cluster_id] = {"cluster_id": cluster_id, "state": "RUNNING", **spec}

    def add_catalog(self, name: str) -> None:
        self.catalogs[name] = {"name": name, "full_name": name}

    def add_warehouse(self, warehouse_id: str) -> None:
        self.warehouses.add(warehouse_id)

    def add_postgres(self, admin_dsn: str) -> None:
        """The PostgreSQL server every database instance's data lives on (its superuser's DSN)."""
        self._postgres = admin_dsn

    def put_secret(self, scope: str, key: str, value: str) -> None:
        self.secrets.setdefault(scope, {})[key] = value

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self) -> DatabricksEmulator:
        import socket

        import uvicorn

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        config = uvicorn.Config(self._app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="databricks-emulator", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the Databricks emulator did not start")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        for run in self.runs.values():
            if run.life_cycle_state in ("PENDING", "RUNNING"):
                self._cancel(run)
        if self._gateway is not None:
            self._gateway.close()
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    def __enter__(self) -> DatabricksEmulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- HTTP ----------------------------------------------------------------------------------
    def _app(self):
        from starlette.applications import Starlette
        from starlette.middleware import Middleware
        from starlette.middleware.base import BaseHTTPMiddleware
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Mount, Route

        emulator = self

        class WorkspaceAuth(BaseHTTPMiddleware):
            """Authentication, then injected faults, then the call; every call is recorded."""

            async def dispatch(self, request: Request, call_next):
                path = request.url.path
                if request.headers.get("authorization") != f"Bearer {emulator.token}":
                    emulator.calls.append((request.method, path, 401))
                    return JSONResponse(
                        {"error_code": "UNAUTHENTICATED", "message": "Invalid access token."}, status_code=401
                    )
                fault = emulator._take_fault(path)
                if fault is not None:
                    status, message = fault
                    emulator.calls.append((request.method, path, status))
                    codes = {429: "REQUEST_LIMIT_EXCEEDED", 503: "TEMPORARILY_UNAVAILABLE"}
                    headers = {"Retry-After": "1"} if status in (429, 503) else {}
                    return JSONResponse(
                        {"error_code": codes.get(status, "INTERNAL_ERROR"), "message": message},
                        status_code=status,
                        headers=headers,
                    )
                response = await call_next(request)
                emulator.calls.append((request.method, path, response.status_code))
                return response

        def api(handler):
            async def endpoint(request: Request):
                if request.method == "GET":
                    payload = dict(request.query_params)
                else:
                    raw = await request.body()
                    payload = json.loads(raw) if raw else {}
                payload.update(request.path_params, _method=request.method)
                try:
                    return JSONResponse(handler(payload))
                except ApiError as exc:
                    return JSONResponse({"error_code": exc.code, "message": str(exc)}, status_code=exc.status)

            return endpoint

        routes = [
            Route("/api/2.0/dbfs/create", api(self._dbfs_create), methods=["POST"]),
            Route("/api/2.0/dbfs/add-block", api(self._dbfs_add_block), methods=["POST"]),
            Route("/api/2.0/dbfs/close", api(self._dbfs_close), methods=["POST"]),
            Route("/api/2.0/dbfs/put", api(self._dbfs_put), methods=["POST"]),
            Route("/api/2.0/dbfs/read", api(self._dbfs_read), methods=["GET"]),
            Route("/api/2.0/dbfs/get-status", api(self._dbfs_status), methods=["GET"]),
            Route("/api/2.0/dbfs/mkdirs", api(self._dbfs_mkdirs), methods=["POST"]),
            Route("/api/2.0/dbfs/delete", api(self._dbfs_delete), methods=["POST"]),
            Route("/api/2.0/dbfs/list", api(self._dbfs_list), methods=["GET"]),
            Route(
                "/api/2.0/permissions/{object_type}/{object_id}",
                api(self._permissions),
                methods=["GET", "PATCH", "PUT"],
            ),
            Route(
                "/api/2.1/unity-catalog/permissions/{securable_type}/{full_name}",
                api(self._grants),
                methods=["GET", "PATCH"],
            ),
            Route("/api/2.0/fs/directories/{path:path}", api(self._list_directory), methods=["GET"]),
            Route(
                "/api/2.0/fs/directories/{path:path}", api(self._change_directory), methods=["PUT", "DELETE"]
            ),
            Route("/api/2.0/fs/files/{path:path}", self._file_endpoint(), methods=["GET", "PUT", "DELETE"]),
            Route("/api/2.1/clusters/get", api(self._get_cluster), methods=["GET"]),
            Route("/api/2.1/unity-catalog/catalogs/{name}", api(self._get_catalog), methods=["GET"]),
            Route("/api/2.1/unity-catalog/schemas", api(self._create_schema), methods=["POST"]),
            Route("/api/2.1/unity-catalog/schemas/{full_name}", api(self._get_schema), methods=["GET"]),
            Route("/api/2.1/unity-catalog/volumes", api(self._create_volume), methods=["POST"]),
            Route("/api/2.1/unity-catalog/volumes/{name}", api(self._get_volume), methods=["GET"]),
            Route("/api/2.0/workspace/mkdirs", api(self._mkdirs), methods=["POST"]),
            Route("/api/2.0/workspace/get-status", api(self._workspace_status), methods=["GET"]),
            Route("/api/2.0/secrets/list", api(self._list_secrets), methods=["GET"]),
            Route("/api/2.0/database/instances", api(self._create_database_instance), methods=["POST"]),
            Route("/api/2.0/database/instances/{name}", api(self._get_database_instance), methods=["GET"]),
            Route("/api/2.0/database/credentials", api(self._database_credential), methods=["POST"]),
            Route("/api/2.0/preview/scim/v2/Me", api(lambda p: {"userName": USER_NAME}), methods=["GET"]),
            Route(
                "/api/2.1/unity-catalog/tables/{table}/monitor",
                api(self._monitor),
                methods=["GET", "POST"],
            ),
            Route(
                "/api/2.1/unity-catalog/tables/{table}/monitor/refreshes",
                api(self._run_refresh),
                methods=["POST"],
            ),
            Route(
                "/api/2.1/unity-catalog/tables/{table}/monitor/refreshes/{refresh_id}",
                api(self._get_refresh),
                methods=["GET"],
            ),
            Route("/api/2.0/sql/statements/", api(self._statement), methods=["POST"]),
            Route("/api/2.0/sql/statements/{statement_id}", api(self._get_statement), methods=["GET"]),
        ]
        for version in ("2.1", "2.2"):
            routes += [
                Route(f"/api/{version}/jobs/runs/submit", api(self._submit), methods=["POST"]),
                Route(f"/api/{version}/jobs/runs/get", api(self._get_run), methods=["GET"]),
                Route(f"/api/{version}/jobs/runs/get-output", api(self._get_output), methods=["GET"]),
                Route(f"/api/{version}/jobs/runs/cancel", api(self._cancel_run), methods=["POST"]),
            ]
        if self.project is not None:
            from mlops_dagster.serving.guard import Guard as GatewayGuard
            from mlops_dagster.serving.server import build_app, build_gateway

            self._gateway = build_gateway(self.project)
            # The workspace's token is checked by WorkspaceAuth (below), as Databricks checks it: no
            # gateway tokens. (One name for both classes once made the import shadow the middleware.)
            routes.append(
                Mount("/", app=build_app(self._gateway, GatewayGuard(tokens=None, bound_host=None)))
            )
        return Starlette(routes=routes, middleware=[Middleware(WorkspaceAuth)])

    def _take_fault(self, path: str) -> tuple[int, str] | None:
        with self._lock:
            for i, (status, prefix, message) in enumerate(self._faults):
                if prefix is None or path.startswith(prefix):
                    del self._faults[i]
                    return status, message
        return None

    # ---- DBFS ----------------------------------------------------------------------------------
    def local_path(self, path: str) -> Path:
        """A DBFS path (``dbfs:/x``, ``/x`` or ``/dbfs/x``) on the emulator's disk."""
        for prefix in ("dbfs:", "/dbfs"):
            if path.startswith(prefix):
                path = path[len(prefix) :]
        resolved = (self.dbfs_root / path.lstrip("/")).resolve()
        if not str(resolved).startswith(str(self.dbfs_root.resolve())):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"path {path} leaves DBFS")
        return resolved

    def _existing(self, path: str) -> Path:
        local = self.local_path(path)
        if not local.exists():
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"No file or directory exists on path {path}.")
        return local

    def _dbfs_create(self, p):
        local = self.local_path(p["path"])
        if local.exists() and not p.get("overwrite"):
            raise ApiError(
                400, "RESOURCE_ALREADY_EXISTS", f"A file or directory already exists at {p['path']}."
            )
        handle = next(self._ids)
        self._handles[handle] = (local, bytearray())
        return {"handle": handle}

    def _dbfs_add_block(self, p):
        if p["handle"] not in self._handles:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"handle {p['handle']} is not open")
        self._handles[p["handle"]][1].extend(base64.b64decode(p["data"]))
        return {}

    def _dbfs_close(self, p):
        local, data = self._handles.pop(p["handle"])
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(bytes(data))
        return {}

    def _dbfs_put(self, p):
        local = self.local_path(p["path"])
        if local.exists() and not p.get("overwrite"):
            raise ApiError(
                400, "RESOURCE_ALREADY_EXISTS", f"A file or directory already exists at {p['path']}."
            )
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(base64.b64decode(p.get("contents", "")))
        return {}

    def _dbfs_read(self, p):
        local = self._existing(p["path"])
        offset, length = int(p.get("offset", 0)), int(p.get("length", 1 << 20))
        with open(local, "rb") as handle:
            handle.seek(offset)
            data = handle.read(length)
        return {"bytes_read": len(data), "data": base64.b64encode(data).decode()}

    def _status(self, local: Path) -> dict[str, Any]:
        stat = local.stat()
        return {
            "path": "/" + str(local.relative_to(self.dbfs_root.resolve())),
            "is_dir": local.is_dir(),
            "file_size": 0 if local.is_dir() else stat.st_size,
            "modification_time": int(stat.st_mtime * 1000),
        }

    def _dbfs_status(self, p):
        return self._status(self._existing(p["path"]))

    def _dbfs_mkdirs(self, p):
        self.local_path(p["path"]).mkdir(parents=True, exist_ok=True)
        return {}

    def _dbfs_delete(self, p):
        local = self.local_path(p["path"])
        if local.is_dir():
            if any(local.iterdir()) and str(p.get("recursive")).lower() != "true":
                raise ApiError(400, "IO_ERROR", f"{p['path']} is a non-empty directory; pass recursive")
            shutil.rmtree(local)
        elif local.exists():
            local.unlink()
        return {}

    def _dbfs_list(self, p):
        local = self._existing(p["path"])
        entries = sorted(local.iterdir()) if local.is_dir() else [local]
        return {"files": [self._status(e.resolve()) for e in entries]}

    # ---- Files API ----------------------------------------------------------------------------
    def _in_volume(self, path: str) -> Path | None:
        """A path of a volume (``volumes``) on the emulator's disk, or None."""
        local = Path("/" + path.lstrip("/")).resolve()
        return local if any(local == v or v in local.parents for v in self.volumes) else None

    def _change_directory(self, p):
        folder = self._in_volume(p["path"])
        if folder is None:
            raise ApiError(404, "NOT_FOUND", f"/{p['path']} is not in a volume")
        if "PUT" == p.get("_method"):
            folder.mkdir(parents=True, exist_ok=True)
        elif folder.is_dir():
            folder.rmdir()  # refused when not empty, as the API refuses
        return {}

    def _file_endpoint(self):
        from starlette.responses import JSONResponse, Response

        async def endpoint(request):
            path = request.path_params["path"]
            local = self._in_volume(path)
            if request.method == "PUT" and local is not None:
                if local.exists() and request.query_params.get("overwrite", "").lower() != "true":
                    return JSONResponse(
                        {"error_code": "ALREADY_EXISTS", "message": f"/{path}"}, status_code=409
                    )
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_bytes(await request.body())
                return Response(status_code=204)
            if local is None or not local.is_file():
                message = f"The file being accessed is not found: /{path}"
                return JSONResponse({"error_code": "NOT_FOUND", "message": message}, status_code=404)
            if request.method == "DELETE":
                local.unlink()
                return Response(status_code=204)
            return Response(local.read_bytes(), media_type="application/octet-stream")

        return endpoint

    def _list_directory(self, p):
        folder = self._in_volume(p["path"])
        if folder is None or not folder.is_dir():
            raise ApiError(404, "NOT_FOUND", f"The directory being accessed is not found: /{p['path']}")
        return {
            "contents": [
                {
                    "path": str(e),
                    "name": e.name,
                    "is_directory": e.is_dir(),
                    **(
                        {}
                        if e.is_dir()
                        else {"file_size": e.stat().st_size, "last_modified": int(e.stat().st_mtime * 1000)}
                    ),
                }
                for e in sorted(folder.iterdir())
            ]
        }

    # ---- permissions ---------------------------------------------------------------------------
    def _permissions(self, p):
        key = (p["object_type"], p["object_id"])
        for entry in p.get("access_control_list", []):
            self.permissions.setdefault(key, []).append(entry)
        return {
            "object_id": f"/{key[0]}/{key[1]}",
            "object_type": key[0][:-1],
            "access_control_list": self.permissions.get(key, []),
        }

    def _grants(self, p):
        held = self.grants.setdefault((p["securable_type"], p["full_name"]), {})
        for change in p.get("changes", []):
            privileges = held.setdefault(change["principal"], set())
            privileges.update(change.get("add", []))
            privileges.difference_update(change.get("remove", []))
        wanted = p.get("principal")
        return {
            "privilege_assignments": [
                {"principal": who, "privileges": sorted(privs)}
                for who, privs in sorted(held.items())
                if privs and wanted in (None, who)
            ]
        }

    # ---- jobs ----------------------------------------------------------------------------------
    def _submit(self, p):
        tasks = p.get("tasks") or [p]
        if len(tasks) != 1 or "spark_python_task" not in tasks[0]:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "the emulator runs one spark_python_task per run")
        task = tasks[0]
        if task.get("new_cluster") or task.get("existing_cluster_id"):
            cluster = task.get("new_cluster") or {"existing_cluster_id": task["existing_cluster_id"]}
        else:  # serverless: the task names one of the run's environments
            environments = {e["environment_key"]: e["spec"] for e in p.get("environments", [])}
            if task.get("environment_key") not in environments:
                raise ApiError(
                    400,
                    "INVALID_PARAMETER_VALUE",
                    "A serverless python task needs an environment_key naming one of the run's environments",
                )
            cluster = {"serverless_environment": environments[task["environment_key"]]}
        run = EmulatedRun(
            run_id=next(self._ids),
            job_id=next(self._ids),
            run_name=p.get("run_name") or "",
            task=task,
            libraries=task.get("libraries", []),
            cluster=cluster,
        )
        self.runs[run.run_id] = run
        # A one-time run's permissions, given at submit (its job's, as the Permissions API keeps them).
        for entry in p.get("access_control_list", []):
            self.permissions.setdefault(("jobs", str(run.job_id)), []).append(entry)
        threading.Thread(target=self._execute, args=(run,), name=f"run-{run.run_id}", daemon=True).start()
        return {"run_id": run.run_id}

    def _describe(self, run: EmulatedRun) -> dict[str, Any]:
        state = {"life_cycle_state": run.life_cycle_state, "state_message": run.state_message}
        if run.result_state:
            state["result_state"] = run.result_state
        cluster_id = f"emulated-{run.run_id}"
        return {
            "run_id": run.run_id,
            "job_id": run.job_id,
            "run_name": run.run_name,
            "state": state,
            "start_time": run.start_time,
            "end_time": run.end_time,
            "run_page_url": f"{self.url}/#job/{run.job_id}/run/{run.run_id}",
            "cluster_instance": {"cluster_id": cluster_id},
            "tasks": [
                {
                    "task_key": run.task.get("task_key", "task"),
                    "run_id": run.run_id,
                    "state": state,
                    "cluster_instance": {"cluster_id": cluster_id},
                }
            ],
        }

    def _run(self, p) -> EmulatedRun:
        run = self.runs.get(int(p["run_id"]))
        if run is None:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Run {p['run_id']} does not exist.")
        return run

    def _get_run(self, p):
        return self._describe(self._run(p))

    def _get_output(self, p):
        run = self._run(p)
        out = {"metadata": self._describe(run)}
        if run.result_state == "FAILED":
            out["error"] = run.state_message
            out["error_trace"] = Path(run.stderr_path).read_text() if run.stderr_path else ""
        return out

    def _cancel_run(self, p):
        self._cancel(self._run(p))
        return {}

    def _cancel(self, run: EmulatedRun) -> None:
        run.cancel_requested = True
        if run.pid and run.life_cycle_state == "RUNNING":
            try:
                os.killpg(run.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def _finish(self, run: EmulatedRun, life_cycle: str, result: str | None, message: str) -> None:
        run.end_time = int(time.time() * 1000)
        if run.ran_from:
            self._bill(run)
        run.life_cycle_state, run.result_state, run.state_message = life_cycle, result, message

    def _get_cluster(self, p):
        if p.get("cluster_id") not in self.clusters:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Cluster {p.get('cluster_id')} does not exist")
        return self.clusters[p["cluster_id"]]

    # ---- Unity Catalog, workspace folders, secret names ------------------------------------------
    @staticmethod
    def _uc_get(kind: str, store: dict[str, dict[str, Any]], full_name: str) -> dict[str, Any]:
        if full_name not in store:
            raise ApiError(404, f"{kind.upper()}_DOES_NOT_EXIST", f"{kind} '{full_name}' does not exist.")
        return store[full_name]

    @staticmethod
    def _uc_create(kind: str, store: dict[str, dict[str, Any]], info: dict[str, Any]) -> dict[str, Any]:
        if info["full_name"] in store:
            raise ApiError(
                409, f"{kind.upper()}_ALREADY_EXISTS", f"{kind} '{info['full_name']}' already exists"
            )
        store[info["full_name"]] = info
        return info

    def _get_catalog(self, p):
        return self._uc_get("Catalog", self.catalogs, p["name"])

    def _create_schema(self, p):
        self._get_catalog({"name": p["catalog_name"]})
        return self._uc_create(
            "Schema",
            self.schemas,
            {
                "name": p["name"],
                "catalog_name": p["catalog_name"],
                "full_name": f"{p['catalog_name']}.{p['name']}",
                "comment": p.get("comment", ""),
                "properties": p.get("properties") or {},
            },
        )

    def _get_schema(self, p):
        return self._uc_get("Schema", self.schemas, p["full_name"])

    def _create_volume(self, p):
        schema = f"{p['catalog_name']}.{p['schema_name']}"
        self._get_schema({"full_name": schema})
        return self._uc_create(
            "Volume",
            self.uc_volumes,
            {
                **{k: p[k] for k in ("catalog_name", "schema_name", "name", "volume_type")},
                "full_name": f"{schema}.{p['name']}",
                "comment": p.get("comment", ""),
            },
        )

    def _get_volume(self, p):
        return self._uc_get("Volume", self.uc_volumes, p["name"])

    def _mkdirs(self, p):
        path = p["path"].rstrip("/")
        parts = path.split("/")
        self.folders.update("/".join(parts[:i]) for i in range(2, len(parts) + 1))
        return {}

    def _workspace_status(self, p):
        if p["path"].rstrip("/") not in self.folders:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Path ({p['path']}) doesn't exist.")
        return {"path": p["path"], "object_type": "DIRECTORY"}

    def _list_secrets(self, p):
        if p["scope"] not in self.secrets:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Scope {p['scope']} does not exist!")
        return {
            "secrets": [{"key": key, "last_updated_timestamp": 0} for key in sorted(self.secrets[p["scope"]])]
        }

    # ---- Lakebase database instances --------------------------------------------------------------
    def _admin(self, sql: str, database: str = "postgres") -> None:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        dsn = make_conninfo(**{**conninfo_to_dict(self._postgres), "dbname": database})
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql)

    def _create_database_instance(self, p):
        import re
        from urllib.parse import urlsplit

        name = p.get("name", "")
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", name):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Invalid database instance name: {name!r}")
        if name in self.database_instances:
            raise ApiError(409, "RESOURCE_ALREADY_EXISTS", f"Database instance {name} already exists")
        if self._postgres and not self.database_instances:
            # One server behind every instance: the creator's role owns its database, as on Lakebase;
            # a database an earlier emulator left on the server is replaced.
            self._admin(
                f'DO $$ BEGIN CREATE ROLE "{USER_NAME}" LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$'
            )
            self._admin("DROP DATABASE IF EXISTS databricks_postgres WITH (FORCE)")
            self._admin(f'CREATE DATABASE databricks_postgres OWNER "{USER_NAME}"')
        self.database_instances[name] = {
            "name": name,
            "capacity": p.get("capacity", "CU_1"),
            "state": "STARTING",
            "creator": USER_NAME,
            "uid": f"{next(self._ids):08x}-emulated",
            "pg_version": "PG_VERSION_16",
            "read_write_dns": urlsplit(self._postgres).hostname
            if self._postgres
            else f"{name}.database.emulated",
        }
        return self.database_instances[name]

    def _get_database_instance(self, p):
        instance = self.database_instances.get(p["name"])
        if instance is None:
            raise ApiError(404, "NOT_FOUND", f"Database instance '{p['name']}' does not exist.")
        shown = dict(instance)
        if instance["state"] == "STARTING":
            instance["state"] = "AVAILABLE"  # started by the time anyone asks again
        return shown

    def _database_credential(self, p):
        import secrets
        from datetime import datetime, timedelta

        unknown = [n for n in p.get("instance_names", []) if n not in self.database_instances]
        if unknown or not p.get("instance_names"):
            raise ApiError(404, "NOT_FOUND", f"Database instances {unknown or '(none named)'} do not exist.")
        if not self._postgres:
            raise ApiError(
                400, "INVALID_PARAMETER_VALUE", "the emulator has no PostgreSQL server (add_postgres)"
            )
        token = secrets.token_urlsafe(32)
        self._admin(f"ALTER ROLE \"{USER_NAME}\" PASSWORD '{token}'")
        self.database_tokens.append(token)
        expires = datetime.now(UTC) + timedelta(hours=1)
        return {"token": token, "expiration_time": expires.isoformat().replace("+00:00", "Z")}

    # ---- monitors (data profiling) ------------------------------------------------------------------
    def _table_path(self, name: str) -> Path | None:
        from deltalake import DeltaTable

        path = Path(self.tables_root, *name.split(".")) if self.tables_root and name.count(".") == 2 else None
        return path if path is not None and DeltaTable.is_deltatable(str(path)) else None

    def _monitor(self, p):
        table = p["table"]
        if p["_method"] == "GET":
            if table not in self.monitors:
                raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Monitor for table '{table}' does not exist.")
            return self.monitors[table]
        if self._table_path(table) is None:
            raise ApiError(404, "TABLE_DOES_NOT_EXIST", f"Table '{table}' does not exist.")
        if table in self.monitors:
            raise ApiError(409, "RESOURCE_ALREADY_EXISTS", f"Monitor for table '{table}' already exists.")
        profiles = [k for k in ("inference_log", "time_series", "snapshot") if k in p]
        if len(profiles) != 1 or not p.get("output_schema_name") or not p.get("assets_dir"):
            raise ApiError(
                400,
                "INVALID_PARAMETER_VALUE",
                "a monitor needs assets_dir, output_schema_name and one profile type",
            )
        short = table.rsplit(".", 1)[1]
        self.monitors[table] = {
            **{k: p[k] for k in ("assets_dir", "output_schema_name", profiles[0]) if k in p},
            "slicing_exprs": p.get("slicing_exprs", []),
            "table_name": table,
            "status": "MONITOR_STATUS_ACTIVE",
            "monitor_version": "1",
            "profile_metrics_table_name": f"{p['output_schema_name']}.{short}_profile_metrics",
            "drift_metrics_table_name": f"{p['output_schema_name']}.{short}_drift_metrics",
            "dashboard_id": f"emulated-dashboard-{next(self._ids)}",
        }
        return self.monitors[table]

    def _run_refresh(self, p):
        monitor = self._monitor({"table": p["table"], "_method": "GET"})
        refresh = {
            "refresh_id": next(self._ids),
            "state": "PENDING",
            "start_time_ms": int(time.time() * 1000),
        }
        self.refreshes.setdefault(p["table"], []).append(refresh)
        threading.Thread(target=self._refresh, args=(monitor, refresh), daemon=True).start()
        return refresh

    def _get_refresh(self, p):
        for refresh in self.refreshes.get(p["table"], []):
            if str(refresh["refresh_id"]) == p["refresh_id"]:
                return refresh
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Refresh {p['refresh_id']} does not exist.")

    def _refresh(self, monitor: dict[str, Any], refresh: dict[str, Any]) -> None:
        from deltalake import write_deltalake

        refresh["state"] = "RUNNING"
        try:
            profile = monitor_profile(self._table_path(monitor["table_name"]), monitor)
            target = Path(self.tables_root, *monitor["profile_metrics_table_name"].split("."))
            write_deltalake(str(target), profile, mode="overwrite", schema_mode="overwrite")
            refresh["state"] = "SUCCESS"
        except Exception as exc:  # the refresh fails, as Databricks reports it
            refresh["state"], refresh["message"] = "FAILED", f"{type(exc).__name__}: {exc}"
        refresh["end_time_ms"] = int(time.time() * 1000)

    # ---- billing -------------------------------------------------------------------------------
    def _bill(self, run: EmulatedRun) -> None:
        """The usage record of a run's cluster time (a new cluster: its tags; an existing one: all-purpose)."""
        from datetime import datetime

        new = "existing_cluster_id" not in run.cluster
        workers = (run.cluster.get("autoscale") or {}).get("min_workers", run.cluster.get("num_workers", 0))
        hours = (run.end_time - run.ran_from) / 3_600_000
        sku = "PREMIUM_JOBS_COMPUTE" if new else "PREMIUM_ALL_PURPOSE_COMPUTE"
        self.bill(
            "PREMIUM_JOBS_SERVERLESS_COMPUTE" if "serverless_environment" in run.cluster else sku,
            (1 + workers) * hours * DBU_PER_NODE_HOUR.get(run.cluster.get("node_type_id"), 1.0),
            dict(run.cluster.get("custom_tags") or {}) if new else {},
            span=tuple(datetime.fromtimestamp(t / 1000, UTC) for t in (run.ran_from, run.end_time)),
            cluster_id=f"emulated-{run.run_id}",
            job_id=str(run.job_id),
            job_run_id=str(run.run_id),
        )

    def bill(
        self,
        sku_name: str,
        dbus: float,
        custom_tags: dict[str, str] | None = None,
        endpoint_name: str | None = None,
        span: tuple | None = None,
        **usage_metadata: str,
    ) -> None:
        """A usage record: of a run's cluster (``_bill``), or of compute the emulator does not run
        (a serving endpoint's uptime, another project's cluster), billed over ``span`` (default now)."""
        from datetime import datetime

        start, end = span or (datetime.now(UTC),) * 2
        meta = {
            "cluster_id": None,
            "job_id": None,
            "job_run_id": None,
            **usage_metadata,
            "endpoint_name": endpoint_name,
        }
        self.usage.append(
            {
                "record_id": f"usage-{next(self._ids)}",
                "sku_name": sku_name,
                "cloud": "AWS",
                "usage_start_time": start,
                "usage_end_time": end,
                "usage_date": start.date(),
                "custom_tags": dict(custom_tags or {}),
                "usage_unit": "DBU",
                "usage_quantity": dbus,
                "usage_metadata": meta,
            }
        )

    def _statement(self, p):
        if p.get("warehouse_id") not in self.warehouses:
            raise ApiError(
                404, "RESOURCE_DOES_NOT_EXIST", f"Warehouse {p.get('warehouse_id')} does not exist."
            )
        statement_id = f"statement-{next(self._ids)}"
        try:
            frame = self._sql(p["statement"], p.get("parameters") or [])
            rows = [[None if v is None else str(v) for v in row] for row in frame.collect()]
            columns = [
                {"name": f.name, "position": i, "type_name": f.dataType.typeName().upper()}
                for i, f in enumerate(frame.schema.fields)
            ]
            answer = {
                "statement_id": statement_id,
                "status": {"state": "SUCCEEDED"},
                "manifest": {
                    "format": "JSON_ARRAY",
                    "schema": {"column_count": len(columns), "columns": columns},
                    "total_chunk_count": 1,
                    "total_row_count": len(rows),
                    "chunks": [{"chunk_index": 0, "row_offset": 0, "row_count": len(rows)}],
                },
                "result": {"chunk_index": 0, "row_offset": 0, "row_count": len(rows), "data_array": rows},
            }
        except Exception as exc:  # what the warehouse says about a statement it cannot run
            answer = {
                "statement_id": statement_id,
                "status": {
                    "state": "FAILED",
                    "error": {"error_code": "BAD_REQUEST", "message": str(exc)[:500]},
                },
            }
        self.statements[statement_id] = answer
        return answer

    def _get_statement(self, p):
        if p["statement_id"] not in self.statements:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Statement {p['statement_id']} does not exist.")
        return self.statements[p["statement_id"]]

    def _sql(self, statement: str, parameters: list[dict[str, Any]]):
        """``statement`` run by Spark SQL, system.billing.* being the recorded usage and prices."""
        from datetime import date

        import yaml
        from pyspark.sql import types as T

        from mlops_dagster.resources.spark import SparkResource
        from mlops_dagster.settings import CONF_DIR

        spark = SparkResource(
            spark_config=yaml.safe_load((CONF_DIR / "local.yaml").read_text())["spark"]
        ).session()
        meta = T.StructType(
            [
                T.StructField(n, T.StringType())
                for n in ("cluster_id", "job_id", "job_run_id", "endpoint_name")
            ]
        )
        usage = T.StructType(
            [
                T.StructField("record_id", T.StringType()),
                T.StructField("sku_name", T.StringType()),
                T.StructField("cloud", T.StringType()),
                T.StructField("usage_start_time", T.TimestampType()),
                T.StructField("usage_end_time", T.TimestampType()),
                T.StructField("usage_date", T.DateType()),
                T.StructField("custom_tags", T.MapType(T.StringType(), T.StringType())),
                T.StructField("usage_unit", T.StringType()),
                T.StructField("usage_quantity", T.DoubleType()),
                T.StructField("usage_metadata", meta),
            ]
        )
        spark.createDataFrame(
            [[r[f.name] for f in usage.fields] for r in self.usage], usage
        ).createOrReplaceTempView("emulated_billing_usage")
        spark.sql(
            "SELECT sku_name, 'AWS' AS cloud, 'DBU' AS usage_unit, 'USD' AS currency_code, "
            "TIMESTAMP'2020-01-01 00:00:00' AS price_start_time, CAST(NULL AS TIMESTAMP) AS price_end_time, "
            "named_struct('default', price) AS pricing FROM VALUES "
            + ", ".join(f"('{sku}', {price})" for sku, price in LIST_PRICES.items())
            + " AS prices(sku_name, price)"
        ).createOrReplaceTempView("emulated_billing_list_prices")
        args = {
            p["name"]: date.fromisoformat(p["value"]) if p.get("type") == "DATE" else p.get("value")
            for p in parameters
        }
        sql = statement.replace("system.billing.usage", "emulated_billing_usage").replace(
            "system.billing.list_prices", "emulated_billing_list_prices"
        )
        return spark.sql(sql, args=args)

    def _execute(self, run: EmulatedRun) -> None:
        deadline = time.monotonic() + self._pending_seconds
        while time.monotonic() < deadline and not run.cancel_requested:
            time.sleep(0.05)
        if run.cancel_requested:
            return self._finish(run, "TERMINATED", "CANCELED", "Run cancelled before its cluster started.")
        if self._fail_runs:
            return self._finish(run, "INTERNAL_ERROR", "FAILED", self._fail_runs.pop(0))
        spark_task = run.task["spark_python_task"]
        workdir = self.root / "runs" / str(run.run_id)
        workdir.mkdir(parents=True)
        run.stdout_path, run.stderr_path = str(workdir / "stdout"), str(workdir / "stderr")
        spec = {
            "dbfs_root": str(self.dbfs_root),
            "python_file": str(
                self._in_volume(spark_task["python_file"]) or self.local_path(spark_task["python_file"])
            ),
            "parameters": spark_task.get("parameters", []),
            "secrets": self.secrets,
            "spark_conf": (run.cluster or {}).get("spark_conf") or {},
            "cluster_id": f"emulated-{run.run_id}",
        }
        env = {k: os.environ[k] for k in KEPT_ENV if k in os.environ}
        env.update(self.run_env)
        env.update((run.cluster or {}).get("spark_env_vars") or {})  # Pipes' bootstrap parameters among them
        env["DATABRICKS_RUNTIME_VERSION"] = RUNTIME_VERSION
        # The run's own process, forked by the shared cluster pool; secrets travel on its pipe.
        pool = ClusterPool.shared()
        run.pid = pool.start(
            {
                "spec": spec,
                "env": env,
                "workdir": str(workdir),
                "stdout": run.stdout_path,
                "stderr": run.stderr_path,
            }
        )
        run.life_cycle_state, run.ran_from = "RUNNING", int(time.time() * 1000)
        returncode = pool.wait(run.pid)
        if run.cancel_requested:
            self._finish(run, "TERMINATED", "CANCELED", "Run cancelled.")
        elif returncode == 0:
            self._finish(run, "TERMINATED", "SUCCESS", "")
        else:
            tail = Path(run.stderr_path).read_text(errors="replace").strip().splitlines()[-1:] or [
                "no stderr"
            ]
            self._finish(run, "TERMINATED", "FAILED", f"Workload failed: {tail[0]}")


# What a run's process keeps of this one's environment. PYTHONPATH: the cluster's runtime imports
# this checkout's package, like the code under test.
KEPT_ENV = ("PATH", "HOME", "JAVA_HOME", "LANG", "TMPDIR", "PYTHONPATH")


class ClusterPool:
    """The emulator's clusters: ``databricks_runtime.py --serve``, which imports what every run
    imports once and forks each run's process. One per test process, shared by its emulators and
    started on the first run (it outlives them; it stops when this process ends)."""

    _shared: ClassVar[ClusterPool | None] = None
    _guard = threading.Lock()

    @classmethod
    def shared(cls) -> ClusterPool:
        with cls._guard:
            if cls._shared is None or cls._shared.closed:
                cls._shared = cls()
            return cls._shared

    def __init__(self):
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("databricks_runtime.py")), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={k: os.environ[k] for k in KEPT_ENV if k in os.environ},
            start_new_session=True,
        )
        self.closed, self._ids, self._changed = False, itertools.count(1), threading.Condition()
        self._pids: dict[int, int] = {}  # task id -> its process
        self._exits: dict[int, int] = {}  # process -> exit code (negative: the signal)
        threading.Thread(target=self._read, name="cluster-pool", daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            message = json.loads(line)
            with self._changed:
                if "id" in message:
                    self._pids[message["id"]] = message["pid"]
                else:
                    self._exits[message["pid"]] = message["exit"]
                self._changed.notify_all()
        with self._changed:
            self.closed = True
            self._changed.notify_all()

    def _wait_for(self, found) -> None:
        self._changed.wait_for(lambda: found() or self.closed)
        if not found():
            raise RuntimeError(f"the emulator's cluster pool exited ({self.process.poll()})")

    def start(self, task: dict[str, Any]) -> int:
        """Fork a process for ``task`` (spec, env, workdir, stdout, stderr); its process id."""
        with self._changed:
            task_id = next(self._ids)
            self.process.stdin.write((json.dumps({**task, "id": task_id}) + "\n").encode())
            self.process.stdin.flush()
            self._wait_for(lambda: task_id in self._pids)
            return self._pids.pop(task_id)

    def wait(self, pid: int) -> int:
        """The exit code of a process ``start`` forked, once it ends."""
        with self._changed:
            self._wait_for(lambda: pid in self._exits)
            return self._exits.pop(pid)


_GRANULARITY = {"5 minutes": "5min", "30 minutes": "30min", "1 hour": "1h", "1 day": "1D", "1 week": "7D"}


def monitor_profile(table: Path, monitor: dict[str, Any]):
    """A monitor's profile metrics of a whole Delta table, as an Arrow table (see the module's doc)."""
    import pandas as pd
    import pyarrow as pa
    from deltalake import DeltaTable

    frame = DeltaTable(str(table)).to_pandas()
    kind = next(k for k in ("inference_log", "time_series") if k in monitor)
    spec = monitor[kind]
    model_id = spec.get("model_id_col")
    at = pd.to_datetime(frame[spec["timestamp_col"]], utc=True)
    measured = [c for c in frame.columns if c != spec["timestamp_col"]]
    slices = [(None, None, frame.index)] + [
        (column, str(value), part.index)
        for column in monitor.get("slicing_exprs", [])
        for value, part in frame.groupby(column)
    ]
    rows = []
    for granularity in spec["granularities"]:
        width = pd.Timedelta(_GRANULARITY[granularity])
        starts = at.dt.floor(width)
        for slice_key, slice_value, index in slices:
            part = frame.loc[index].assign(_start=starts.loc[index])
            groups = [model_id, "_start"] if model_id else ["_start"]
            for keys, group in part.groupby(groups):
                start = keys[-1]
                base = {
                    "window": {"start": start.to_pydatetime(), "end": (start + width).to_pydatetime()},
                    "granularity": granularity,
                    "log_type": "INPUT",
                    "slice_key": slice_key,
                    "slice_value": slice_value,
                    **({model_id: str(keys[0])} if model_id else {}),
                }
                rows.append({**base, "column_name": ":table", "data_type": "table", "count": len(group)})
                for column in measured:
                    values = group[column]
                    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
                    stats = values.astype(float).agg(["mean", "min", "max", "std"]) if numeric else None
                    rows.append(
                        {
                            **base,
                            "column_name": column,
                            "data_type": str(values.dtype),
                            "count": int(values.count()),
                            "num_nulls": int(values.isna().sum()),
                            "percent_null": float(values.isna().mean() * 100),
                            **(
                                {
                                    "avg": stats["mean"],
                                    "min": stats["min"],
                                    "max": stats["max"],
                                    "stddev": stats["std"],
                                }
                                if numeric
                                else {}
                            ),
                        }
                    )
    fields = [
        pa.field(
            "window", pa.struct([("start", pa.timestamp("us", "UTC")), ("end", pa.timestamp("us", "UTC"))])
        ),
        pa.field("granularity", pa.string()),
        pa.field("log_type", pa.string()),
        pa.field("slice_key", pa.string()),
        pa.field("slice_value", pa.string()),
        *([pa.field(model_id, pa.string())] if model_id else []),
        pa.field("column_name", pa.string()),
        pa.field("data_type", pa.string()),
        pa.field("count", pa.int64()),
        pa.field("num_nulls", pa.int64()),
        pa.field("percent_null", pa.float64()),
        *(pa.field(name, pa.float64()) for name in ("avg", "min", "max", "stddev")),
    ]
    return pa.Table.from_pylist(rows, schema=pa.schema(fields))


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code = status, code
