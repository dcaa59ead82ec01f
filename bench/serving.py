"""Benchmark: our serving gateway against MLflow's scoring server, same model, same machine, one run.

    .venv/bin/python bench/serving.py [--seconds 10] [--soak-seconds 60] [--keep]

1. One fresh temporary project: `mlops run` generates the demo data, trains and registers
   `churn_model` v1 (champion) and starts our gateway in the background (endpoint
   `churn-endpoint`, inference capture on, as always).
2. A load generator in a separate process (aiohttp, N workers sending single-row requests back to
   back; a ~2 s warm-up is not counted) measures req/s, p50/p99 latency and errors at concurrency
   1, 8 and 32 against our gateway (`/serving-endpoints/churn-endpoint/invocations`) and against
   `mlflow models serve` of `models:/churn_model/1` with MLflow's defaults (`/invocations`), and
   against Seldon's MLServer 1.7 serving the same scikit-learn pipeline (exported with joblib) with
   adaptive batching (`max_batch_size` 32, `max_batch_time` 5 ms) and a worker per core, in a
   virtual environment of its own (`bench/results/mlserver-venv`, made on first use, so our pins
   are untouched), sent V2 requests with the pandas codec asking for `predict_proba`; the servers
   are measured back to back at each concurrency. CPU use of the server, the client
   and everything else on the machine is recorded per cell (from /proc), to spot interference.
3. A soak at concurrency 32 against our gateway, then a graceful `mlops stop`; the inference table
   must hold exactly one (non-mirrored) row per response the soak's client received.

Prints Markdown and writes bench/results/serving.json. Every process it starts is stopped, even on
error. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
ENDPOINT = "churn-endpoint"
TABLE = "ml_dev_catalog.mlops.churn_endpoint_payload"
CONCURRENCY = (1, 8, 32)
MAX_REQUESTS = 1_000_000  # per load-generator run: the count bound next to the time bound
REQUEST_TIMEOUT_S = 30.0
# MLServer's own environment. uvloop 0.22 made `asyncio.get_event_loop()` raise where no loop is set,
# which MLServer 1.7.1's inference workers call first: with a newer uvloop its pool dies at start
# ("There is no current event loop in thread 'MainThread'") and only `parallel_workers: 0` runs.
MLSERVER_PINS = ("mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop<0.22")
NUMERIC = ["seniorCitizen", "tenure", "monthlyCharges", "totalCharges", "avgMonthlySpend", "numAddonServices"]
ADDONS = [
    "onlineSecurity",
    "onlineBackup",
    "deviceProtection",
    "techSupport",
    "streamingTV",
    "streamingMovies",
]


# --- the load generator (runs in its own process: `serving.py --client SPEC OUT`) ----------------


async def _load(spec: dict) -> dict:
    import aiohttp

    url, concurrency = spec["url"], spec["concurrency"]
    warmup, seconds, max_requests = spec["warmup"], spec["seconds"], spec["max_requests"]
    bodies = [b.encode() for b in spec["bodies"]]
    records: list[tuple[float, float, object]] = []  # (start, end, status) relative to t0
    failures: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    headers = {"Content-Type": "application/json", **spec.get("headers", {})}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        wall0 = time.time()
        t0 = time.perf_counter()
        end = t0 + warmup + seconds

        async def worker(i: int) -> None:
            k = i
            while len(records) < max_requests:
                start = time.perf_counter()
                if start >= end:
                    return
                body = bodies[k % len(bodies)]
                k += concurrency
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        payload = await response.read()
                        status: object = response.status
                    if status == 200:
                        try:
                            answer = json.loads(payload)
                            if spec.get("expect") == "v2":  # MLServer: one output, [1, 2] probabilities
                                predictions = [answer["outputs"][0]["data"]]
                            else:
                                predictions = answer["predictions"]
                            if len(predictions) != 1 or len(predictions[0]) != 2:
                                status = "bad_body"
                        except (ValueError, KeyError, TypeError):
                            status = "bad_body"
                    elif len(failures) < 5:
                        failures.setdefault(f"{status}: {payload[:300].decode(errors='replace')}", 0)
                except TimeoutError:
                    status = "timeout"
                except aiohttp.ClientError as exc:
                    status = f"client_error:{type(exc).__name__}"
                records.append((start - t0, time.perf_counter() - t0, status))

        await asyncio.wait_for(
            asyncio.gather(*(worker(i) for i in range(concurrency))),
            timeout=warmup + seconds + REQUEST_TIMEOUT_S + 30,
        )
        wall1 = time.time()

    window = [(s, e, st) for s, e, st in records if warmup <= e <= warmup + seconds]
    latencies = sorted((e - s) * 1000 for s, e, st in window if st == 200)
    statuses: dict[str, int] = {}
    for _, _, st in records:
        statuses[str(st)] = statuses.get(str(st), 0) + 1
    return {
        "concurrency": concurrency,
        "seconds": seconds,
        "warmup": warmup,
        "requests": len(window),
        "ok": len(latencies),
        "rps": len(window) / seconds,
        "p50_ms": _percentile(latencies, 50),
        "p99_ms": _percentile(latencies, 99),
        "mean_ms": statistics.fmean(latencies) if latencies else None,
        "errors": sum(1 for *_, st in window if st != 200),
        "errors_all": sum(1 for *_, st in records if st != 200),
        "sent_all": len(records),
        # a response of any HTTP status (what the server must have captured)
        "responses_all": sum(1 for *_, st in records if isinstance(st, int)),
        "statuses_all": statuses,
        "failure_samples": list(failures),
        "wall_start": wall0,
        "wall_end": wall1,
        "client_cpu_s": sum(os.times()[:2]),
    }


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    rank = q / 100 * (len(values) - 1)
    lo = int(rank)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (rank - lo)


def client_main(spec_path: str, out_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(_load(spec))
    Path(out_path).write_text(json.dumps(result))


# --- orchestration ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _is_up(url: str, path: str = "/ping") -> bool:
    try:
        with urllib.request.urlopen(f"{url}{path}", timeout=1.0) as response:
            return response.status == 200
    except OSError:
        return False


def _wait_up(url: str, seconds: float, process: subprocess.Popen | None = None, path: str = "/ping") -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _is_up(url, path):
            return
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {process.returncode}")
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer {path} within {seconds:.0f} s")


def _group_cpu_seconds(pgid: int) -> float:
    """utime + stime of every live process in a process group (from /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:  # fields[0] is state; pgrp is the 5th field overall
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def _machine_busy_seconds() -> float:
    """CPU seconds every process on the machine has used (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _group_cmdlines(pgid: int) -> list[str]:
    out = []
    for entry in sorted(os.listdir("/proc")):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            if int(stat[stat.rindex(")") + 2 :].split()[2]) != pgid:
                continue
            out.append(Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip())
        except OSError:
            continue
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _gateway_info(home: Path) -> Path | None:
    """The state file a running gateway keeps (``serving/gateway.json``)."""
    path = home / "serving" / "gateway.json"
    return path if path.exists() else None


def _my_gateways(tmp: Path) -> list[int]:
    """Gateway processes belonging to this benchmark's temporary project (and nothing else)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
            if "mlops_dagster.serving" not in cmdline:
                continue
            environ = Path(f"/proc/{entry}/environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if str(tmp) in cmdline or f"MLOPS_HOME={tmp}" in environ:
            pids.append(int(entry))
    return pids


def _request_bodies(n: int = 50, seed: int = 2024) -> list[str]:
    """n single-row `dataframe_records` bodies, features derived as the config's `features.derived`."""
    from mlops_dagster.data.telco import generate_customers

    frame = generate_customers(n, seed)
    frame["totalCharges"] = frame["totalCharges"].fillna(0.0)
    frame["avgMonthlySpend"] = frame["totalCharges"] / frame["tenure"].clip(lower=1.0)
    frame["numAddonServices"] = (frame[ADDONS] == "Yes").sum(axis=1).astype(float)
    frame = frame.drop(columns=["customerID", "churnString"])
    for column in NUMERIC:
        frame[column] = frame[column].astype(float)
    return [json.dumps({"dataframe_records": [record]}) for record in frame.to_dict(orient="records")]


def _v2_bodies(bodies: list[str]) -> list[str]:
    """The same rows as V2 inference requests for MLServer: one input per column, the pandas codec
    (the pipeline gets a DataFrame, as ours does), and ``predict_proba`` as the one output."""

    def datatype(value) -> str:
        return "FP64" if isinstance(value, float) else "INT64" if isinstance(value, int) else "BYTES"

    requests = []
    for body in bodies:
        [row] = json.loads(body)["dataframe_records"]
        inputs = [{"name": k, "shape": [1], "datatype": datatype(v), "data": [v]} for k, v in row.items()]
        requests.append(
            json.dumps(
                {
                    "parameters": {"content_type": "pd"},
                    "inputs": inputs,
                    "outputs": [{"name": "predict_proba"}],
                }
            )
        )
    return requests


def _mlserver_venv() -> Path:
    """MLServer's virtual environment (made once, kept under bench/results/): its `bin` folder."""
    from importlib.metadata import version

    venv = REPO / "bench" / "results" / "mlserver-venv"
    if not (venv / "bin" / "mlserver").exists():
        print(f"making MLServer's environment in {venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        pins = [*MLSERVER_PINS, f"scikit-learn=={version('scikit-learn')}"]  # the model's own version
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *pins], check=True, timeout=1200)
    return venv / "bin"


def _start_mlserver(work: Path, tracking_uri: str, log) -> tuple[subprocess.Popen, str]:
    """The champion's pipeline exported with joblib and served by MLServer with adaptive batching and
    a worker per core; returns the process and the V2 inference URL."""
    import joblib

    from mlops_dagster.resources.registry import ModelRegistry

    bin_dir = _mlserver_venv()
    registry = ModelRegistry(tracking_uri=tracking_uri, registry_uri=tracking_uri, model_name="churn_model")
    folder = work / "mlserver"
    (folder / "churn").mkdir(parents=True)
    joblib.dump(registry.load_sklearn(1), folder / "churn" / "model.joblib")
    model = {
        "name": "churn",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "max_batch_size": 32,
        "max_batch_time": 0.005,
        "parameters": {"uri": "./model.joblib"},
    }
    (folder / "churn" / "model-settings.json").write_text(json.dumps(model))
    ports = [_free_port() for _ in range(3)]
    settings = {
        "host": HOST,
        "http_port": ports[0],
        "grpc_port": ports[1],
        "metrics_port": ports[2],
        "parallel_workers": os.cpu_count(),
    }
    (folder / "settings.json").write_text(json.dumps(settings))
    process = subprocess.Popen(
        [str(bin_dir / "mlserver"), "start", str(folder)],
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://{HOST}:{ports[0]}"
    _wait_up(url, 180, process, "/v2/models/churn/ready")
    return process, f"{url}/v2/models/churn/infer"


def _run_client(
    work: Path,
    name: str,
    url: str,
    bodies: list[str],
    concurrency: int,
    seconds: float,
    warmup: float,
    server_pgid: int | None,
    headers: dict | None = None,
    expect: str = "predictions",
) -> dict:
    spec = {
        "expect": expect,
        "url": url,
        "concurrency": concurrency,
        "seconds": seconds,
        "warmup": warmup,
        "max_requests": MAX_REQUESTS,
        "bodies": bodies,
        "headers": headers or {},
    }
    spec_path, out_path = work / f"{name}.spec.json", work / f"{name}.out.json"
    spec_path.write_text(json.dumps(spec))
    cpu0 = _group_cpu_seconds(server_pgid) if server_pgid else None
    machine0 = _machine_busy_seconds()
    subprocess.run(
        [sys.executable, __file__, "--client", str(spec_path), str(out_path)],
        check=True,
        timeout=warmup + seconds + REQUEST_TIMEOUT_S + 90,
        cwd=REPO,
    )
    machine_busy = _machine_busy_seconds() - machine0
    result = json.loads(out_path.read_text())
    result["machine_cores_busy"] = machine_busy / (result["wall_end"] - result["wall_start"])
    if server_pgid:
        # server CPU over the whole client run (warm-up included), as cores busy on average
        busy = _group_cpu_seconds(server_pgid) - cpu0
        result["server_cores_busy"] = busy / (result["wall_end"] - result["wall_start"])
    result["client_cores_busy"] = result["client_cpu_s"] / (result["wall_end"] - result["wall_start"])
    # whatever else ran meanwhile (other processes on the machine): should be ~0 for clean numbers
    result["other_cores_busy"] = max(
        0.0, result["machine_cores_busy"] - result["client_cores_busy"] - result.get("server_cores_busy", 0.0)
    )
    return result


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="measured seconds per (server, concurrency)"
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="uncounted seconds before each measurement")
    parser.add_argument("--soak-seconds", type=float, default=60.0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary project (logs, tables)")
    parser.add_argument(
        "--model-processes",
        type=int,
        default=os.cpu_count() or 1,
        help="our gateway's serving.model_processes (default: a process per core, as MLServer's workers)",
    )
    parser.add_argument("--client", nargs=2, metavar=("SPEC", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(*args.client)
        return

    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="bench_serving_"))
    home, dagster_home, conf = tmp / "mlops", tmp / "dagster_home", tmp / "conf.yaml"
    dagster_home.mkdir()
    gateway_port, mlflow_port = _free_port(), _free_port()
    while mlflow_port == gateway_port:
        mlflow_port = _free_port()
    conf.write_text(
        f"serving:\n  port: {gateway_port}\n  host: {HOST}\n  model_processes: {args.model_processes}\n"
    )
    env = {
        **os.environ,
        "MLOPS_HOME": str(home),
        "DAGSTER_HOME": str(dagster_home),
        "MLOPS_CONFIG": str(conf),
        "MLOPS_TARGET": "local",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    tracking_uri = f"sqlite:///{home}/mlflow/mlflow.db"
    gateway_url, mlflow_url = f"http://{HOST}:{gateway_port}", f"http://{HOST}:{mlflow_port}"
    gateway_pid: int | None = None
    gateway_started = False
    mlflow_proc: subprocess.Popen | None = None
    mlflow_log = None
    mlserver_proc: subprocess.Popen | None = None
    mlserver_log = None
    result: dict = {}
    print(f"work dir {tmp}", flush=True)

    def stop_group(process: subprocess.Popen | None) -> None:
        """Stop a server and every process of its group (uvicorn's or MLServer's workers)."""
        if process is None:
            return
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def stop_gateway() -> float:
        began = time.perf_counter()
        subprocess.run([str(BIN / "mlops"), "stop"], env=env, cwd=REPO, capture_output=True, timeout=120)
        return time.perf_counter() - began

    try:
        # 1. the project: data, model v1 (champion), our gateway in the background
        print("mlops run (generate, train, register, serve) ...", flush=True)
        setup_began = time.perf_counter()
        gateway_started = True  # (possibly) from here on: the finally block looks for it either way
        with (tmp / "mlops_run.log").open("w") as log:
            run = subprocess.Popen(
                [str(BIN / "mlops"), "run", "--use-case", "churn"],
                env=env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                code = run.wait(timeout=600)
            finally:
                try:  # nothing of the run itself (e.g. Spark's JVM) outlives it; the gateway has its own session
                    os.killpg(run.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if code != 0:
            raise RuntimeError(
                f"mlops run failed ({code}); see {tmp / 'mlops_run.log'}:\n"
                + (tmp / "mlops_run.log").read_text()[-3000:]
            )
        _wait_up(gateway_url, 60)
        gateway_info = _gateway_info(home)
        if gateway_info is None:
            raise RuntimeError(
                f"no gateway state file under {home / 'serving'}: {os.listdir(home / 'serving')}"
            )
        gateway_pid = json.loads(gateway_info.read_text())["pid"]
        gateway_pgid = os.getpgid(gateway_pid)
        setup_s = time.perf_counter() - setup_began
        print(f"  done in {setup_s:.0f} s; gateway pid {gateway_pid} on {gateway_url}", flush=True)

        bodies = _request_bodies()
        runs: list[dict] = []

        # 2. MLflow's scoring server with its defaults, up next to ours (an idle server costs nothing);
        #    the two are measured back to back at each concurrency, so a drift of the machine's speed
        #    over the run (this VM shows some) does not favour either.
        mlflow_log = (tmp / "mlflow_serve.log").open("w")
        # `mlflow models serve` execs `uvicorn` by name: the virtualenv's bin must be on PATH
        mlflow_env = {
            **env,
            "MLFLOW_TRACKING_URI": tracking_uri,
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        }
        mlflow_cmd = [
            str(BIN / "mlflow"),
            "models",
            "serve",
            "-m",
            "models:/churn_model/1",
            "--env-manager",
            "local",
            "-h",
            HOST,
            "-p",
            str(mlflow_port),
        ]
        mlflow_proc = subprocess.Popen(
            mlflow_cmd,
            env=mlflow_env,
            cwd=tmp,
            stdout=mlflow_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _wait_up(mlflow_url, 180, mlflow_proc)
        mlflow_processes = _group_cmdlines(mlflow_proc.pid)
        print(f"mlflow models serve up on {mlflow_url}: {mlflow_processes}", flush=True)
        mlserver_log = (tmp / "mlserver.log").open("w")
        mlserver_proc, mlserver_url = _start_mlserver(tmp, tracking_uri, mlserver_log)
        mlserver_processes = _group_cmdlines(mlserver_proc.pid)
        print(f"MLServer up on {mlserver_url}: {len(mlserver_processes)} processes", flush=True)

        from mlops_dagster.serving.tokens import TokenStore

        ours_url = f"{gateway_url}/serving-endpoints/{ENDPOINT}/invocations"
        # Our gateway wants a token (as a Databricks endpoint does); MLflow's scoring server none.
        auth = {"Authorization": f"Bearer {TokenStore(home / 'serving').create('query', 'bench')[1]}"}
        v2 = _v2_bodies(bodies)
        targets = [
            ("ours", ours_url, gateway_pgid, auth, bodies, "predictions"),
            ("mlflow", f"{mlflow_url}/invocations", mlflow_proc.pid, {}, bodies, "predictions"),
            ("mlserver", mlserver_url, mlserver_proc.pid, {}, v2, "v2"),
        ]
        for c in CONCURRENCY:
            for server, url, pgid, headers, sent, expect in targets:
                print(f"{server:<8} c={c:<3} ...", end=" ", flush=True)
                r = _run_client(
                    tmp, f"{server}_c{c}", url, sent, c, args.seconds, args.warmup, pgid, headers, expect
                )
                r["server"] = server
                runs.append(r)
                print(
                    f"{r['rps']:.0f} req/s, p50 {_fmt(r['p50_ms'], 2)} ms, p99 {_fmt(r['p99_ms'], 2)} ms, "
                    f"errors {r['errors']}",
                    flush=True,
                )
        stop_group(mlflow_proc)
        stop_group(mlserver_proc)

        # 3. soak on our gateway, then a graceful stop, then count the inference table
        from mlops_dagster.resources.local_lakehouse import LocalLakehouse

        lakehouse = LocalLakehouse(root=str(home / "lakehouse"))
        time.sleep(3)  # > capture_flush_seconds: everything before the soak is in the table
        rows_before = len(lakehouse.read(TABLE, columns=["request_id"]))
        print(f"soak   c=32  {args.soak_seconds:.0f} s ...", end=" ", flush=True)
        soak = _run_client(tmp, "soak", ours_url, bodies, 32, args.soak_seconds, 0.0, gateway_pgid, auth)
        print(
            f"{soak['rps']:.0f} req/s, {soak['responses_all']} responses, errors {soak['errors_all']}",
            flush=True,
        )
        gateway_alive = _alive(gateway_pid)
        stop_s = stop_gateway()
        for _ in range(50):  # the state file goes at the end of shutdown; the process a moment later
            if not _alive(gateway_pid):
                break
            time.sleep(0.1)
        stopped = not gateway_info.exists() and not _alive(gateway_pid)
        table = lakehouse.read(TABLE, columns=["request_time", "status_code", "mirrored"])
        import pandas as pd

        times = pd.to_datetime(table["request_time"], utc=True)
        epoch = (times - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
        in_window = (
            (epoch >= soak["wall_start"] - 0.5) & (epoch <= soak["wall_end"] + 0.5) & (~table["mirrored"])
        )
        soak_rows = int(in_window.sum())
        rows_after = len(table)
        soak_result = {
            "concurrency": 32,
            "seconds": args.soak_seconds,
            "rps": soak["rps"],
            "p50_ms": soak["p50_ms"],
            "p99_ms": soak["p99_ms"],
            "requests_sent": soak["sent_all"],
            "responses_received": soak["responses_all"],
            "errors": soak["errors_all"],
            "statuses": soak["statuses_all"],
            "failure_samples": soak["failure_samples"],
            "gateway_alive_after_soak": gateway_alive,
            "graceful_stop_s": stop_s,
            "gateway_stopped": stopped,
            "table_rows_in_soak_window_not_mirrored": soak_rows,
            "table_rows_in_soak_window_status_200": int((in_window & (table["status_code"] == 200)).sum()),
            "table_rows_before": rows_before,
            "table_rows_after": rows_after,
            "table_rows_added": rows_after - rows_before,
            "server_cores_busy": soak.get("server_cores_busy"),
            "client_cores_busy": soak.get("client_cores_busy"),
            "other_cores_busy": soak.get("other_cores_busy"),
        }
        soak_result["capture_complete"] = (
            soak_rows == soak["responses_all"] and rows_after - rows_before == soak["responses_all"]
        )
        gateway_started = not stopped

        machine = (
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
        )
        result = {
            "machine": machine,
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "seconds": args.seconds,
            "warmup_seconds": args.warmup,
            "setup_s": round(setup_s, 1),
            "model": "models:/churn_model/1 (sklearn LogisticRegression pipeline, pyfunc predict_proba)",
            "ours": {
                "url": ours_url,
                "capture": True,
                "server": "mlops serve (uvicorn, uvloop, httptools, 1 process)",
                "model_processes": args.model_processes,
            },
            "mlflow": {
                "url": f"{mlflow_url}/invocations",
                "command": " ".join(mlflow_cmd),
                "processes": mlflow_processes,
                "defaults": "--workers 1, --timeout 60 (MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT)",
            },
            "mlserver": {
                "url": mlserver_url,
                "environment": list(MLSERVER_PINS),
                "settings": "SKLearnModel, max_batch_size 32, max_batch_time 5 ms, a worker per core, "
                "V2 requests with the pandas codec, output predict_proba",
                "processes": mlserver_processes,
            },
            "runs": [{k: v for k, v in r.items() if k not in ("wall_start", "wall_end")} for r in runs],
            "soak": soak_result,
        }

        def ratios_against(other: str) -> dict:
            out = {}
            for c in CONCURRENCY:
                o = next(r for r in runs if r["server"] == "ours" and r["concurrency"] == c)
                m = next(r for r in runs if r["server"] == other and r["concurrency"] == c)
                out[c] = {
                    "rps": o["rps"] / m["rps"] if m["rps"] else None,
                    "p50": o["p50_ms"] / m["p50_ms"] if o["p50_ms"] and m["p50_ms"] else None,
                    "p99": o["p99_ms"] / m["p99_ms"] if o["p99_ms"] and m["p99_ms"] else None,
                }
            return out

        ratios = {"MLflow": ratios_against("mlflow"), "MLServer": ratios_against("mlserver")}
        result["ratio_ours_over_mlflow"] = {str(c): v for c, v in ratios["MLflow"].items()}
        result["ratio_ours_over_mlserver"] = {str(c): v for c, v in ratios["MLServer"].items()}
        result["total_s"] = round(time.perf_counter() - started, 1)

        out_dir = REPO / "bench" / "results"
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "serving.json").write_text(json.dumps(result, indent=2))

        lines = [
            "| server | concurrency | req/s | p50 ms | p99 ms | errors | server cores busy | client cores busy | other cores busy |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in sorted(runs, key=lambda r: (r["server"] != "ours", r["concurrency"])):
            lines.append(
                f"| {r['server']} | {r['concurrency']} | {r['rps']:,.0f} | {_fmt(r['p50_ms'], 2)} | "
                f"{_fmt(r['p99_ms'], 2)} | {r['errors']} | {_fmt(r.get('server_cores_busy'), 2)} | "
                f"{_fmt(r.get('client_cores_busy'), 2)} | {_fmt(r.get('other_cores_busy'), 2)} |"
            )
        lines += [
            "",
            "| against | concurrency | ours/it req/s | ours/it p50 | ours/it p99 |",
            "|---|---:|---:|---:|---:|",
        ]
        for other, by_c in ratios.items():
            for c, v in by_c.items():
                lines.append(
                    f"| {other} | {c} | {_fmt(v['rps'], 2)}x | {_fmt(v['p50'], 2)}x | {_fmt(v['p99'], 2)}x |"
                )
        s = soak_result
        lines += [
            "",
            f"Soak: {args.soak_seconds:.0f} s at concurrency 32 against our gateway: "
            f"{s['requests_sent']:,} requests, {s['responses_received']:,} responses, "
            f"{s['errors']} errors ({', '.join(f'{k}: {v:,}' for k, v in s['statuses'].items())}), "
            f"{s['rps']:,.0f} req/s, p50 {_fmt(s['p50_ms'], 2)} ms, p99 {_fmt(s['p99_ms'], 2)} ms "
            f"(cores busy: server {_fmt(s['server_cores_busy'], 2)}, client {_fmt(s['client_cores_busy'], 2)}, "
            f"other {_fmt(s['other_cores_busy'], 2)}).",
            f"Graceful stop (`mlops stop`): {'stopped' if s['gateway_stopped'] else 'NOT stopped'} in "
            f"{s['graceful_stop_s']:.1f} s. Inference table: {s['table_rows_in_soak_window_not_mirrored']:,} "
            f"non-mirrored rows in the soak window (of them {s['table_rows_in_soak_window_status_200']:,} "
            f"with status 200); total rows {s['table_rows_before']:,} -> {s['table_rows_after']:,} "
            f"(+{s['table_rows_added']:,}); client got {s['responses_received']:,} responses: "
            f"{'MATCH' if s['capture_complete'] else 'MISMATCH'}.",
            "",
            f"Machine: {machine}. Each cell: {args.seconds:.0f} s measured after a {args.warmup:.0f} s warm-up; "
            f"load generator: 1 separate process, aiohttp on uvloop, single-row `dataframe_records` "
            f"requests (50 distinct rows), keep-alive connections, one per worker; the servers are "
            f"measured back to back at each concurrency (ours, MLflow, MLServer).",
            f"MLflow: `mlflow models serve -m models:/churn_model/1 --env-manager local` with its defaults "
            f"(--workers 1, --timeout 60) -> {'; '.join(mlflow_processes)}",
            f"MLServer: {', '.join(MLSERVER_PINS)}; {result['mlserver']['settings']}; "
            f"{len(mlserver_processes)} processes.",
            f"Total benchmark time {result['total_s']:.0f} s (setup `mlops run` {setup_s:.0f} s).",
        ]
        for r in runs + [dict(soak, server="soak")]:
            if r.get("failure_samples"):
                lines.append(f"{r['server']} c={r['concurrency']} failures: {r['failure_samples']}")
        print()
        print("\n".join(lines))
    finally:
        stop_group(mlflow_proc)
        stop_group(mlserver_proc)
        for log in (mlflow_log, mlserver_log):
            if log is not None:
                log.close()
        if gateway_started:
            try:
                stop_gateway()
            except Exception as exc:  # noqa: BLE001 - still make sure it is gone
                print(f"mlops stop failed: {exc}", file=sys.stderr)
            time.sleep(0.5)
            for pid in set(_my_gateways(tmp)) | (
                {gateway_pid} if gateway_pid and _alive(gateway_pid) else set()
            ):
                print(f"gateway pid {pid} still running after mlops stop: killing it", file=sys.stderr)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if args.keep:
            print(f"kept {tmp}")
        else:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
