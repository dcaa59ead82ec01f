"""Benchmark: the local gateway under overload (issue 37, item 2), bounded, on 127.0.0.1 only.

    .venv/bin/python bench/overload.py [--requests 20000] [--seconds 15]

Each cell starts a fresh gateway process (uvicorn with uvloop and httptools, as `mlops serve`
runs it; inference capture on, to a Delta table in a temporary folder) serving the project's own
training pipeline fitted here on synthetic rows shaped like the demo's churn data (no `mlops run`
needed), with `serving.max_queued_requests` set to the cell's bound. A load generator in this
process (aiohttp, single-row requests) sends at most ``--requests`` requests in at most
``--seconds`` s, then the gateway is stopped gracefully (SIGTERM: it flushes the capture) and its
inference table is read: it must hold one row per request sent, with that request's status code.

Cells (``CELLS``), with the default bound 256 and without one (1,000,000: the gateway before the
bound): with a fast model (a logistic regression), 64 clients back to back (under the bound:
nothing may be refused), 512 clients back to back that send again at once after a 429 (the worst
case: the gateway spends time refusing) and 2,000 requests a second offered whatever the
answers; with a slow model (k nearest neighbours, where each row costs milliseconds), 600 a
second offered, more than it scores. Latency is measured twice: by the client (including the time a request waits
in the socket and the event loop before the gateway reads it, which no bound inside the gateway
shortens) and by the gateway (``latency_ms`` in the inference table). Prints Markdown; every
process it starts is stopped, even on error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
TABLE = "bench.serving.overload_payload"
STRINGS, NUMBERS = [f"s{i}" for i in range(15)], [f"n{i}" for i in range(6)]  # the churn model's shape


@dataclass(frozen=True)
class Load:
    """``connections`` clients sending back to back (``waits``: a 429 makes a client wait its
    Retry-After, as databricks-sdk does), or with ``rate``: that many requests a second offered
    whatever the answers, at most ``connections`` open at once."""

    connections: int
    waits: bool = True
    rate: int = 0

    def __str__(self) -> str:
        if self.rate:
            return f"{self.rate:,} requests/s offered (at most {self.connections:,} open)"
        return f"{self.connections} clients back to back{'' if self.waits else ', no wait after a 429'}"


# The estimators: "fast", a logistic regression (one call scores hundreds of rows in about the time
# of one: the event loop's HTTP work is the limit); "slow", k nearest neighbours among 20,000 rows
# (each row costs a few ms: the model is the limit, and its queue is what the bound holds).
MODELS = {
    "fast": ("sklearn.linear_model.LogisticRegression", 2000),
    "slow": ("sklearn.neighbors.KNeighborsClassifier", 20_000),
}
CELLS = (  # (model, max_queued_requests, load)
    ("fast", 256, Load(64)),
    ("fast", 256, Load(512, waits=False)),
    ("fast", 256, Load(2000, rate=2000)),
    ("fast", 1_000_000, Load(2000, rate=2000)),
    ("slow", 256, Load(2000, rate=600)),
    ("slow", 1_000_000, Load(2000, rate=600)),
)
CATEGORIES = ["a", "b", "c", "d"]
REQUEST_TIMEOUT_S = 30.0


# --- the gateway process (`overload.py --serve PORT ROOT BOUND`) ------------------------------------


def _model(kind: str):
    """The project's training pipeline (``ml.training.build_pipeline``: impute, one-hot, scale,
    logistic regression) fitted on synthetic rows of 15 string and 6 numeric columns, as the demo's
    churn model has; and its signature's columns and input example."""
    import numpy as np
    import pandas as pd

    from mlops_dagster.ml.training import build_pipeline
    from mlops_dagster.serving.payload import Column

    rng = np.random.default_rng(0)
    estimator, rows = MODELS[kind]
    frame = pd.DataFrame(
        {**{c: rng.choice(CATEGORIES, rows) for c in STRINGS}, **{c: rng.normal(size=rows) for c in NUMBERS}}
    )
    label = (frame["n0"] + (frame["s0"] == "a") > 0.5).astype(int)
    model = build_pipeline(estimator, {}, STRINGS, NUMBERS).fit(frame, label)
    columns = [Column(c, "string") for c in STRINGS] + [Column(c, "double") for c in NUMBERS]
    return model, columns, frame.head(2).values.tolist()


def serve(port: int, root: str, bound: int, kind: str) -> None:
    import pandas as pd
    import uvicorn

    from mlops_dagster.resources.local_lakehouse import LocalLakehouse
    from mlops_dagster.serving.batching import LoadedModel
    from mlops_dagster.serving.capture import InferenceCapture
    from mlops_dagster.serving.gateway import Gateway
    from mlops_dagster.serving.guard import Guard
    from mlops_dagster.serving.server import build_app

    model, columns, example = _model(kind)
    lakehouse = LocalLakehouse(root=str(Path(root, "lakehouse")))
    capture = InferenceCapture(
        lambda rows, once: lakehouse.write(TABLE, pd.DataFrame(rows), "append", once=once),
        journal=Path(root, "capture"),
    ).start()
    gateway = Gateway(
        lambda name, version: LoadedModel(model, columns, example),
        capture,
        lambda name: TABLE,
        max_queued_requests=bound,
    )
    uvicorn.run(
        build_app(gateway, Guard(None, HOST)),
        host=HOST,
        port=port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=30,
    )


# --- the load generator --------------------------------------------------------------------------


def _bodies() -> list[bytes]:
    rows = [
        {
            **{c: CATEGORIES[(k + i) % 4] for i, c in enumerate(STRINGS)},
            **{c: (k % 7 - 3) / 3 for c in NUMBERS},
        }
        for k in range(50)
    ]
    return [json.dumps({"dataframe_records": [row]}).encode() for row in rows]


async def _send(session, url: str, body: bytes, answers: list) -> dict:
    """One request; appends (status, seconds, {request id, Retry-After, error code}) to ``answers``."""
    import aiohttp

    started = time.perf_counter()
    try:
        async with session.post(url, data=body) as response:
            payload = await response.read()
            status: int | str = response.status
            kept = {
                "id": response.headers.get("x-request-id"),
                "retry": response.headers.get("retry-after"),
                "code": json.loads(payload).get("error_code") if status != 200 else None,
            }
    except (TimeoutError, aiohttp.ClientError) as exc:
        status, kept = type(exc).__name__, {}
    answers.append((status, time.perf_counter() - started, kept))
    return kept


async def _load(url: str, load: Load, requests: int, seconds: float) -> list[tuple[int | str, float, dict]]:
    """The answers to at most ``requests`` requests sent in at most ``seconds`` s as ``load`` says."""
    import aiohttp

    bodies, answers, end = _bodies(), [], time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=load.connections)
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
        headers={"Content-Type": "application/json"},
    ) as session:

        async def client(i: int) -> None:  # back to back
            while len(answers) < requests and time.perf_counter() < end:
                kept = await _send(session, url, bodies[i % len(bodies)], answers)
                if load.waits and kept.get("code") == "REQUEST_LIMIT_EXCEEDED":
                    await asyncio.sleep(max(0.0, min(int(kept["retry"]), end - time.perf_counter())))

        async def offered() -> None:  # at a fixed rate, whatever the answers, at most `connections` open
            open_, started, tasks = asyncio.Semaphore(load.connections), time.perf_counter(), []

            async def one(k: int) -> None:
                try:
                    await _send(session, url, bodies[k % len(bodies)], answers)
                finally:
                    open_.release()

            for k in range(requests):
                delay = started + k / load.rate - time.perf_counter()
                if time.perf_counter() + max(delay, 0) >= end:
                    break
                await asyncio.sleep(max(delay, 0))
                await open_.acquire()
                tasks.append(asyncio.create_task(one(k)))
            await asyncio.gather(*tasks)

        await (offered() if load.rate else asyncio.gather(*(client(i) for i in range(load.connections))))
    return answers


# --- orchestration -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _call(url: str, method: str = "GET", body: dict | None = None) -> dict:
    request = urllib.request.Request(
        url,
        method=method,
        data=json.dumps(body).encode() if body else None,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"{}")


def _start(port: int, root: Path, bound: int, kind: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), str(root), str(bound), kind],
        env=env,
        start_new_session=True,
    )
    url, deadline = f"http://{HOST}:{port}", time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the gateway exited with {process.returncode}")
        try:
            urllib.request.urlopen(f"{url}/ping", timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    _call(
        f"{url}/api/2.0/serving-endpoints",
        "POST",
        {"name": "ep", "config": {"served_entities": [{"entity_name": "m", "entity_version": "1"}]}},
    )
    while _call(f"{url}/api/2.0/serving-endpoints/ep")["state"]["config_update"] == "IN_PROGRESS":
        if time.monotonic() > deadline:
            raise TimeoutError("the endpoint did not become ready")
        time.sleep(0.1)
    return process


def _stop(process: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 60), (signal.SIGKILL, 10)):
        if process.poll() is not None:
            return
        os.killpg(process.pid, sig)
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            continue


def _percentile(values: list[float], q: float) -> float | None:
    values = sorted(values)
    return values[min(len(values) - 1, int(q / 100 * len(values)))] if values else None


def cell(work: Path, kind: str, bound: int, load: Load, requests: int, seconds: float) -> dict:
    """One gateway, one load, one graceful stop, and the inference table compared with the answers."""
    from mlops_dagster.resources.local_lakehouse import LocalLakehouse

    root, port = work / f"{kind}-b{bound}-c{load.connections}-{load.waits}-{load.rate}", _free_port()
    process = _start(port, root, bound, kind)
    try:
        started = time.perf_counter()
        answers = asyncio.run(
            _load(f"http://{HOST}:{port}/serving-endpoints/ep/invocations", load, requests, seconds)
        )
        took = time.perf_counter() - started
    finally:
        _stop(process)
    statuses = Counter(status for status, _, _ in answers)
    refused = [a for a in answers if a[0] == 429]
    captured = LocalLakehouse(root=str(root / "lakehouse")).read(TABLE)
    sent = {kept["id"]: status for status, _, kept in answers if kept.get("id")}
    inside = {
        code: captured.loc[captured["status_code"] == code, "latency_ms"].tolist() for code in (200, 429)
    }
    return {
        "bound": bound,
        "load": str(load),
        "sent": len(answers),
        "seconds": took,
        "gateway_p99_200_ms": _percentile(inside[200], 99),
        "gateway_p99_429_ms": _percentile(inside[429], 99),
        "statuses": dict(statuses),
        "refusals_well_formed": all(
            k["retry"] and k["retry"].isdigit() and k["code"] == "REQUEST_LIMIT_EXCEEDED"
            for _, _, k in refused
        ),
        "p50_200_ms": _percentile([s * 1000 for st, s, _ in answers if st == 200], 50),
        "p99_200_ms": _percentile([s * 1000 for st, s, _ in answers if st == 200], 99),
        "p99_429_ms": _percentile([s * 1000 for st, s, _ in refused], 99),
        "captured": len(captured),
        "captured_statuses": dict(Counter(int(s) for s in captured["status_code"])),
        "captured_matches": dict(zip(captured["request_id"], captured["status_code"].astype(int))) == sent,
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000, help="at most this many requests per cell")
    parser.add_argument("--seconds", type=float, default=10.0, help="at most this long per cell")
    args = parser.parse_args()
    print(
        f"machine: {os.cpu_count()} cores; at most {args.requests} requests or {args.seconds:.0f} s per cell\n"
    )
    print(
        "| model | max_queued_requests | load | sent | s | 200 | 429 | other | 200/s | client: 200 p50 / p99 ms | "
        "client: 429 p99 ms | gateway: 200 / 429 p99 ms | 429s well formed | inference table rows | "
        "rows = answers, per request |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="overload-") as work:
        for kind, bound, load in CELLS:
            r = cell(Path(work), kind, bound, load, args.requests, args.seconds)
            st = r["statuses"]
            other = r["sent"] - st.get(200, 0) - st.get(429, 0)
            print(
                f"| {kind} | {bound:,} | {load} | {r['sent']:,} | {r['seconds']:.1f} | {st.get(200, 0):,} "
                f"| {st.get(429, 0):,} | {other} | {st.get(200, 0) / r['seconds']:,.0f} "
                f"| {_ms(r['p50_200_ms'])} / {_ms(r['p99_200_ms'])} | {_ms(r['p99_429_ms'])} "
                f"| {_ms(r['gateway_p99_200_ms'])} / {_ms(r['gateway_p99_429_ms'])} "
                f"| {'yes' if r['refusals_well_formed'] else 'NO'} | {r['captured']:,} {r['captured_statuses']} "
                f"| {'yes' if r['captured_matches'] else 'NO'} |",
                flush=True,
            )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5])
    else:
        main()
