"""A Databricks workspace emulator: the REST subset dagster-databricks and databricks-sdk call,
served on 127.0.0.1 (random port) by a real HTTP server, doing the work for real.

- DBFS 2.0: create / add-block / close / put / read / get-status / mkdirs / delete / list, on a
  local folder (the emulator's DBFS root).
- Jobs 2.1 and 2.2: runs/submit / get / get-output / cancel. A ``spark_python_task`` runs in a
  subprocess (``databricks_runtime``) with local Spark, ``/dbfs/`` mapped to the DBFS root and
  ``spark`` / ``sc`` / ``dbutils`` in the script's globals. Its state moves PENDING -> RUNNING ->
  TERMINATED with SUCCESS / FAILED / CANCELED, or INTERNAL_ERROR when its "cluster" fails.
- Permissions 2.0: PATCH / GET on jobs and clusters; Unity Catalog grants 2.1: GET / PATCH.
- Files 2.0: directory listings of volumes, each volume a local folder (``volumes``).
- Serving endpoints: create / get / update config / delete / invocations, answered by the
  project's serving gateway (the same Databricks serving API), when built with ``project``.
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
from pathlib import Path
from typing import Any

RUNTIME_VERSION = "15.4.x-emulator"


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


class DatabricksEmulator:
    def __init__(self, root: Path, token: str, project=None, run_env: dict[str, str] | None = None,
                 volumes: list[Path] | None = None):
        self.root = Path(root)
        self.dbfs_root = self.root / "dbfs"
        self.dbfs_root.mkdir(parents=True, exist_ok=True)
        self.token = token
        self.project = project
        self.run_env = dict(run_env or {})
        self.volumes = [Path(v).resolve() for v in volumes or []]  # folders the Files API may list
        self.runs: dict[int, EmulatedRun] = {}
        self.secrets: dict[str, dict[str, str]] = {}
        self.permissions: dict[tuple[str, str], list[dict]] = {}
        self.grants: dict[tuple[str, str], dict[str, set[str]]] = {}  # securable -> principal -> privileges
        self.calls: list[tuple[str, str, int]] = []  # method, path, status
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
    def fail_next_calls(self, status: int, count: int, path_prefix: str | None = None,
                        message: str = "Unexpected error: injected by the emulator") -> None:
        """The next ``count`` calls (under ``path_prefix``) answer ``status``."""
        with self._lock:
            self._faults.extend([(status, path_prefix, message)] * count)

    def fail_next_run(self, message: str = "Cluster failed to start: injected by the emulator") -> None:
        self._fail_runs.append(message)

    def slow_runs(self, seconds: float) -> None:
        self._pending_seconds = seconds

    def put_secret(self, scope: str, key: str, value: str) -> None:
        self.secrets.setdefault(scope, {})[key] = value

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "DatabricksEmulator":
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

    def __enter__(self) -> "DatabricksEmulator":
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

        class Guard(BaseHTTPMiddleware):
            """Authentication, then injected faults, then the call; every call is recorded."""

            async def dispatch(self, request: Request, call_next):
                path = request.url.path
                if request.headers.get("authorization") != f"Bearer {emulator.token}":
                    emulator.calls.append((request.method, path, 401))
                    return JSONResponse({"error_code": "UNAUTHENTICATED", "message": "Invalid access token."},
                                        status_code=401)
                fault = emulator._take_fault(path)
                if fault is not None:
                    status, message = fault
                    emulator.calls.append((request.method, path, status))
                    codes = {429: "REQUEST_LIMIT_EXCEEDED", 503: "TEMPORARILY_UNAVAILABLE"}
                    headers = {"Retry-After": "1"} if status in (429, 503) else {}
                    return JSONResponse({"error_code": codes.get(status, "INTERNAL_ERROR"), "message": message},
                                        status_code=status, headers=headers)
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
                payload.update(request.path_params)
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
            Route("/api/2.0/permissions/{object_type}/{object_id}", api(self._permissions),
                  methods=["GET", "PATCH", "PUT"]),
            Route("/api/2.1/unity-catalog/permissions/{securable_type}/{full_name}", api(self._grants),
                  methods=["GET", "PATCH"]),
            Route("/api/2.0/fs/directories/{path:path}", api(self._list_directory), methods=["GET"]),
        ]
        for version in ("2.1", "2.2"):
            routes += [
                Route(f"/api/{version}/jobs/runs/submit", api(self._submit), methods=["POST"]),
                Route(f"/api/{version}/jobs/runs/get", api(self._get_run), methods=["GET"]),
                Route(f"/api/{version}/jobs/runs/get-output", api(self._get_output), methods=["GET"]),
                Route(f"/api/{version}/jobs/runs/cancel", api(self._cancel_run), methods=["POST"]),
            ]
        if self.project is not None:
            from mlops_dagster.serving.server import build_app, build_gateway

            self._gateway = build_gateway(self.project)
            routes.append(Mount("/", app=build_app(self._gateway)))
        return Starlette(routes=routes, middleware=[Middleware(Guard)])

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
                path = path[len(prefix):]
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
            raise ApiError(400, "RESOURCE_ALREADY_EXISTS", f"A file or directory already exists at {p['path']}.")
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
            raise ApiError(400, "RESOURCE_ALREADY_EXISTS", f"A file or directory already exists at {p['path']}.")
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
        return {"path": "/" + str(local.relative_to(self.dbfs_root.resolve())), "is_dir": local.is_dir(),
                "file_size": 0 if local.is_dir() else stat.st_size, "modification_time": int(stat.st_mtime * 1000)}

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
    def _list_directory(self, p):
        folder = Path("/" + p["path"]).resolve()
        if not any(folder == v or v in folder.parents for v in self.volumes) or not folder.is_dir():
            raise ApiError(404, "NOT_FOUND", f"The directory being accessed is not found: /{p['path']}")
        return {"contents": [
            {"path": str(e), "name": e.name, "is_directory": e.is_dir(),
             **({} if e.is_dir() else {"file_size": e.stat().st_size,
                                        "last_modified": int(e.stat().st_mtime * 1000)})}
            for e in sorted(folder.iterdir())]}

    # ---- permissions ---------------------------------------------------------------------------
    def _permissions(self, p):
        key = (p["object_type"], p["object_id"])
        for entry in p.get("access_control_list", []):
            self.permissions.setdefault(key, []).append(entry)
        return {"object_id": f"/{key[0]}/{key[1]}", "object_type": key[0][:-1],
                "access_control_list": self.permissions.get(key, [])}

    def _grants(self, p):
        held = self.grants.setdefault((p["securable_type"], p["full_name"]), {})
        for change in p.get("changes", []):
            privileges = held.setdefault(change["principal"], set())
            privileges.update(change.get("add", []))
            privileges.difference_update(change.get("remove", []))
        wanted = p.get("principal")
        return {"privilege_assignments": [{"principal": who, "privileges": sorted(privs)}
                                          for who, privs in sorted(held.items())
                                          if privs and wanted in (None, who)]}

    # ---- jobs ----------------------------------------------------------------------------------
    def _submit(self, p):
        tasks = p.get("tasks") or [p]
        if len(tasks) != 1 or "spark_python_task" not in tasks[0]:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "the emulator runs one spark_python_task per run")
        task = tasks[0]
        cluster = task.get("new_cluster") or {"existing_cluster_id": task.get("existing_cluster_id")}
        run = EmulatedRun(run_id=next(self._ids), job_id=next(self._ids), run_name=p.get("run_name") or "",
                          task=task, libraries=task.get("libraries", []), cluster=cluster)
        self.runs[run.run_id] = run
        threading.Thread(target=self._execute, args=(run,), name=f"run-{run.run_id}", daemon=True).start()
        return {"run_id": run.run_id}

    def _describe(self, run: EmulatedRun) -> dict[str, Any]:
        state = {"life_cycle_state": run.life_cycle_state, "state_message": run.state_message}
        if run.result_state:
            state["result_state"] = run.result_state
        cluster_id = f"emulated-{run.run_id}"
        return {
            "run_id": run.run_id, "job_id": run.job_id, "run_name": run.run_name,
            "state": state, "start_time": run.start_time, "end_time": run.end_time,
            "run_page_url": f"{self.url}/#job/{run.job_id}/run/{run.run_id}",
            "cluster_instance": {"cluster_id": cluster_id},
            "tasks": [{"task_key": run.task.get("task_key", "task"), "run_id": run.run_id, "state": state,
                       "cluster_instance": {"cluster_id": cluster_id}}],
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
        run.life_cycle_state, run.result_state, run.state_message = life_cycle, result, message
        run.end_time = int(time.time() * 1000)

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
        spec = {"dbfs_root": str(self.dbfs_root), "python_file": str(self.local_path(spark_task["python_file"])),
                "parameters": spark_task.get("parameters", []), "secrets": self.secrets,
                "spark_conf": (run.cluster or {}).get("spark_conf") or {}}
        env = {k: os.environ[k] for k in ("PATH", "HOME", "JAVA_HOME", "LANG", "TMPDIR") if k in os.environ}
        env.update(self.run_env)
        env["DATABRICKS_RUNTIME_VERSION"] = RUNTIME_VERSION
        with open(run.stdout_path, "wb") as out, open(run.stderr_path, "wb") as err:
            process = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("databricks_runtime.py"))],
                stdin=subprocess.PIPE, stdout=out, stderr=err, cwd=workdir, env=env, start_new_session=True,
            )
            run.pid = process.pid
            run.life_cycle_state = "RUNNING"
            process.communicate(json.dumps(spec).encode())  # secrets travel on stdin, never on disk
        if run.cancel_requested:
            self._finish(run, "TERMINATED", "CANCELED", "Run cancelled.")
        elif process.returncode == 0:
            self._finish(run, "TERMINATED", "SUCCESS", "")
        else:
            tail = Path(run.stderr_path).read_text(errors="replace").strip().splitlines()[-1:] or ["no stderr"]
            self._finish(run, "TERMINATED", "FAILED", f"Workload failed: {tail[0]}")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code = status, code
