"""A real local HTTP server that receives alert webhooks (JSON POSTs), for the tests."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

CLOSED = "http://127.0.0.1:9/unreachable"  # the discard port: nothing listens


class _Capture(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Capture.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    """(url, the JSON bodies received so far)."""
    server = HTTPServer(("127.0.0.1", 0), _Capture)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Capture.received = []
    yield f"http://127.0.0.1:{server.server_port}/hooks/mlops", _Capture.received
    server.shutdown()
