"""Capture the Dagster UI's global asset graph into docs/images/asset-graph.png (`make screenshot`).

Starts dagster-webserver for this repository's code location (workspace.yaml) on a free loopback
port with a throwaway DAGSTER_HOME (the repository's dagster.yaml, whose `nux: enabled: false`
keeps the first-visit modal away), waits until the code location has loaded, has headless
Chromium render /asset-groups (the global asset lineage page) and stops the server.

Needs Chromium on PATH (`chromium`, `chromium-browser` or `google-chrome`; Debian: apt-get
install chromium). Run from anywhere with the project's virtualenv:
    .venv/bin/python docs/screenshot.py [--out PATH] [--size 1800,1200] [--budget-ms 15000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# The global asset lineage page (/asset-groups), filtered to the demo's churn use case (the asset
# selection follows `~` in the path) with its stage groups expanded (`expanded` takes the UI's group
# ids; without it every group is one collapsed box).
STAGES = ("ingestion", "features", "training", "registry", "serving", "inference", "monitoring")
DEFAULT_PATH = (
    "/asset-groups~"
    + urllib.parse.quote('key:"churn/*"', safe="")
    + "/?"
    + urllib.parse.urlencode({"expanded": ",".join(f"global@global:churn_{s}" for s in STAGES)})
)
LOCATIONS_QUERY = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(base: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{base}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def wait_until_loaded(base: str, server: subprocess.Popen, timeout: float) -> None:
    """Until the webserver answers and every code location in the workspace has loaded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"dagster-webserver exited with {server.returncode} before it served the UI")
        try:
            entries = graphql(base, LOCATIONS_QUERY)["data"]["workspaceOrError"]["locationEntries"]
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError, KeyError, TypeError):
            pass
        time.sleep(1)
    sys.exit(f"the UI at {base} did not load the code location within {timeout:.0f} s")


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if found := shutil.which(name):
            return found
    sys.exit("no Chromium on PATH (Debian: apt-get install chromium)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "asset-graph.png")
    parser.add_argument("--size", default="1800,1200", help="window size in CSS pixels: W,H")
    parser.add_argument(
        "--budget-ms",
        type=int,
        default=15000,
        help="virtual time Chromium gives the page to render before the capture",
    )
    parser.add_argument("--path", default=DEFAULT_PATH, help="the UI page to capture")
    parser.add_argument("--timeout", type=float, default=180, help="seconds to wait for the code location")
    args = parser.parse_args()
    chromium = find_chromium()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="mlops-screenshot-") as tmp:
        home = Path(tmp) / "dagster_home"
        home.mkdir()
        shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            "MLOPS_HOME": str(Path(tmp) / "mlops"),
        }
        log = open(Path(tmp) / "webserver.log", "w")
        server = subprocess.Popen(
            [str(BIN / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_until_loaded(base, server, args.timeout)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [
                    chromium,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--hide-scrollbars",
                    f"--user-data-dir={Path(tmp) / 'chromium'}",
                    f"--window-size={args.size}",
                    f"--virtual-time-budget={args.budget_ms}",
                    f"--screenshot={args.out}",
                    f"{base}{args.path}",
                ],
                check=True,
                timeout=300,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
            log.close()
    print(f"{args.out}: {args.out.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
