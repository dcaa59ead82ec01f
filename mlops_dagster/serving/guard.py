"""Who may call the gateway, and from where.

* Tokens: every API needs ``Authorization: Bearer <token>`` of the right scope (see ``tokens``);
  only ``/ping`` and ``/health`` (liveness probes, which a load balancer or ``mlops`` itself calls
  without credentials) and ``/openapi.json`` (the API's description) are open. Missing or wrong
  token: 401 ``UNAUTHENTICATED``; a query token on a manage API: 403 ``PERMISSION_DENIED``.
* Browsers: a web page the user visits must not drive the gateway on their machine. A foreign
  ``Origin`` is refused (403); POST and PUT must say ``Content-Type: application/json`` (415), which
  a page cannot send cross-origin without a preflight the gateway never grants; and a gateway
  bound on loopback answers only to loopback ``Host`` names (421), which defeats DNS rebinding.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse as _StarletteJSON

from .tokens import TokenStore, allows

log = logging.getLogger(__name__)

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


class JSONResponse(_StarletteJSON):
    """JSON with non-ASCII escaped: a client's lone surrogate (valid JSON, not valid UTF-8) echoed
    back in an error or a config cannot break the response."""

    def render(self, content) -> bytes:
        return json.dumps(content, allow_nan=False, separators=(",", ":")).encode("ascii")


def error(status: int, error_code: str, message: str, headers: dict | None = None) -> JSONResponse:
    """Databricks' error shape: ``{"error_code": ..., "message": ...}``."""
    return JSONResponse({"error_code": error_code, "message": message}, status_code=status, headers=headers)


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (a name or an address, possibly in brackets) is this machine only."""
    if not host:
        return False
    host = host.strip("[]").rstrip(".").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _hostname(netloc: str) -> str:
    """The host of a ``Host`` header value: ``[::1]:8765`` -> ``::1``, ``a.b:80`` -> ``a.b``."""
    if netloc.startswith("["):
        return netloc[1:].partition("]")[0]
    return netloc.rpartition(":")[0] if netloc.count(":") == 1 else netloc


@dataclass(frozen=True)
class Guard:
    """The checks of one gateway. ``tokens`` None: no token is needed (``serving.auth: none`` on
    loopback, or a server in front of the gateway authenticates, as the Databricks emulator does).
    ``bound_host`` None: any Host header (the address is not known)."""

    tokens: TokenStore | None
    bound_host: str | None

    def refuse_browser(self, headers: Headers) -> JSONResponse | None:
        """421 for a foreign Host on a loopback gateway, 403 for a foreign Origin; else None."""
        host = headers.get("host")
        if self.bound_host is not None and is_loopback(self.bound_host) and host is not None:
            name = _hostname(host)
            if not (is_loopback(name) or name == self.bound_host):
                return error(
                    421,
                    "BAD_REQUEST",
                    f"this gateway serves on {self.bound_host} and answers only to "
                    f"loopback host names, not {host[:100]!r}",
                )
        origin = headers.get("origin")
        if origin is not None:
            try:
                parts = urlsplit(origin)
                own = is_loopback(parts.hostname) or (host is not None and parts.netloc == host)
            except ValueError:
                own = False
            if not own:
                return error(
                    403,
                    "PERMISSION_DENIED",
                    f"requests from web pages of {origin[:100]!r} are refused: "
                    "call the gateway from a program, not a browser",
                )
        return None

    def refuse_caller(self, headers: Headers, needs: str) -> JSONResponse | None:
        """401 without a valid bearer token, 403 when its scope is not ``needs``; else None."""
        if self.tokens is None:
            return None
        scheme, _, token = headers.get("authorization", "").partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="mlops serving gateway"'}
        if scheme.lower() != "bearer" or not token.strip():
            return error(
                401,
                "UNAUTHENTICATED",
                "send a token: Authorization: Bearer <token> (create one with "
                "`mlops token create --scope query`)",
                challenge,
            )
        found = self.tokens.verify(token.strip())
        if found is None:
            log.info("refused a request with an unknown or revoked token")  # never the token itself
            return error(401, "UNAUTHENTICATED", "Invalid access token.", challenge)
        if not allows(found.scope, needs):
            return error(
                403,
                "PERMISSION_DENIED",
                f"token {found.name!r} has scope {found.scope}; this API needs "
                f"a {needs} token (mlops token create --scope {needs})",
            )
        return None


class BrowserGuard:
    """ASGI middleware: the Host and Origin checks, before any route (a 404 included)."""

    def __init__(self, app, guard: Guard):
        self.app, self.guard = app, guard

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            refusal = self.guard.refuse_browser(Headers(scope=scope))
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)
