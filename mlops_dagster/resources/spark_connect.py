"""A local Spark Connect server: one Spark JVM that outlives runs, so a run that needs Spark
connects to it (``spark.remote``) instead of starting a JVM of its own.

Started from the pyspark distribution the project installs (its ``spark-submit`` and the Spark
Connect server jar it ships), in local mode on this machine's cores, with the project's Java
options and this virtualenv's Python for its Python workers (they import this package). It binds
to loopback only. It belongs to an ``MLOPS_HOME``, like the serving gateway: its pid, address and
log are in ``<home>/spark-connect/``, and ``mlops spark-connect stop`` (or ``mlops stop``) ends it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
DEFAULT_PORT = 15002


class SparkConnectError(RuntimeError):
    """The server could not be started or reached."""


def _state(home: Path) -> Path:
    return Path(home, "spark-connect", "server.json")


def running(home: Path) -> dict | None:
    """The server this home started, if it still runs: ``{"pid", "url", "ui", "log"}``."""
    state = _state(home)
    if not state.is_file():
        return None
    info = json.loads(state.read_text())
    try:
        os.kill(info["pid"], 0)
    except ProcessLookupError:
        state.unlink(missing_ok=True)
        return None
    return info


def start(home: Path, port: int = DEFAULT_PORT, ui_port: int = 0, timeout: float = 180) -> dict:
    """Start this home's server, or find it running; its ``sc://`` URL is ``info["url"]``."""
    import pyspark

    from .spark_jvm import java_options

    found = running(home)
    if found:
        return found
    if _answers(port):
        raise SparkConnectError(
            f"port {port} is taken by another process: stop it, or start the server on another port "
            "(mlops spark-connect start --port N) and set spark.remote to match"
        )
    folder = _state(home).parent
    folder.mkdir(parents=True, exist_ok=True)
    spark_home = Path(pyspark.__file__).parent
    conf = {
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port),
        "spark.driver.host": "127.0.0.1",
        "spark.driver.extraJavaOptions": java_options(),
        "spark.pyspark.python": sys.executable,
        "spark.ui.port": str(ui_port or _free_port()),
        "spark.sql.session.timeZone": "UTC",
        # Tables made through the server without a path belong to the home, not to whatever folder
        # the process that started it ran in.
        "spark.sql.warehouse.dir": str(folder / "warehouse"),
    }
    command = [str(spark_home / "bin" / "spark-submit"), "--class", SERVER_CLASS, "--master", "local[*]"]
    command += ["--name", f"mlops Spark Connect ({home})"]
    for key, value in conf.items():
        command += ["--conf", f"{key}={value}"]
    command.append("spark-internal")
    # The server outlives the process that starts it and serves every run of the home: no run's
    # MLflow URIs (dagster-mlflow exports them into its process) may become the workers' defaults.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(SPARK_HOME=str(spark_home), PYSPARK_PYTHON=sys.executable)
    env["SPARK_LOCAL_IP"] = "127.0.0.1"
    log = folder / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=folder, start_new_session=True
        )
    deadline = time.monotonic() + timeout
    while not _answers(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            what = "exited" if process.returncode is not None else f"did not start within {timeout:.0f} s"
            raise SparkConnectError(f"the Spark Connect server {what} (log {log}): " + " | ".join(tail))
        time.sleep(0.25)
    info = {
        "pid": process.pid,
        "url": f"sc://127.0.0.1:{port}",
        "ui": f"http://127.0.0.1:{conf['spark.ui.port']}",
        "log": str(log),
    }
    _state(home).write_text(json.dumps(info))
    return info


def stop(home: Path, timeout: float = 30) -> bool:
    """Stop this home's server; whether one was running."""
    info = running(home)
    if info is None:
        return False
    os.killpg(info["pid"], signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _ended(info["pid"]):
            break
        time.sleep(0.2)
    else:
        os.killpg(info["pid"], signal.SIGKILL)
    _state(home).unlink(missing_ok=True)
    return True


def _ended(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG)[0]:  # this process started it: reaped
            return True
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _answers(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
