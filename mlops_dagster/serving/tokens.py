"""The serving gateway's access tokens, like Databricks personal access tokens: ``Authorization:
Bearer <token>`` on every API call, each token with a scope.

* ``query``: score requests (``/invocations``) and read endpoints (get, list).
* ``manage``: create, update the config of and delete endpoints; implies ``query``.

The gateway keeps only a hash of each token (``tokens.json`` in its state folder, mode 0600); a
token is shown once, when it is created. ``mlops token create | list | revoke`` manage them; the
running gateway sees changes at its next request (the file is re-read when it changes).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path

SCOPES = ("query", "manage")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
OWNER = "owner"  # the manage token the lifecycle's rollout uses (see owner_token)


class TokenError(ValueError):
    """A token command that cannot be done (unknown scope or name, a name taken)."""


@dataclass(frozen=True)
class TokenInfo:
    name: str
    scope: str
    created: str  # ISO 8601, UTC


def allows(scope: str, needed: str) -> bool:
    """Whether a token of ``scope`` may call an API that needs ``needed`` (manage implies query)."""
    return scope == needed or scope == "manage"


def _hash(token: str) -> str:
    # A plain SHA-256 is enough: tokens are 32 random bytes (secrets.token_urlsafe), so there is
    # nothing to guess that a slow, salted password hash would protect.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600), replacing it atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(tmp, 0o600)  # in case the file existed with wider rights
    tmp.replace(path)


class TokenStore:
    """The tokens of one gateway (one state folder): create, list, revoke, verify."""

    def __init__(self, state_dir: str | Path):
        self.dir = Path(state_dir)
        self.file = self.dir / "tokens.json"
        self._seen: tuple[int, int, int] | None = None
        self._entries: list[dict] = []

    # --- the file --------------------------------------------------------------------------------

    def _load(self) -> list[dict]:
        """The stored entries, re-read only when the file changed since the last read."""
        try:
            stat = self.file.stat()
        except FileNotFoundError:
            self._seen, self._entries = None, []
            return self._entries
        seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)  # every write replaces the file: a new inode
        if self._seen != seen:
            self._entries = json.loads(self.file.read_text())["tokens"]
            self._seen = seen
        return self._entries

    @contextlib.contextmanager
    def _editing(self):
        """The entries to change under an exclusive lock (two CLIs, or a CLI and the rollout)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".tokens.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._seen = None
            entries = list(self._load())
            yield entries
            _write_private(self.file, json.dumps({"tokens": entries}, indent=2))
            self._seen = None

    # --- the operations --------------------------------------------------------------------------

    def create(self, scope: str, name: str | None = None) -> tuple[TokenInfo, str]:
        """A new token of ``scope``: its description and the token itself (shown once, never stored)."""
        if scope not in SCOPES:
            raise TokenError(f"unknown scope {scope!r}: use one of {', '.join(SCOPES)}")
        if name is not None and not NAME.match(name):
            raise TokenError(f"token name {name!r}: use 1 to 64 letters, digits, '.', '_' or '-'")
        token = secrets.token_urlsafe(32)
        with self._editing() as entries:
            taken = {e["name"] for e in entries}
            if name is None:
                name = next(f"{scope}-{i}" for i in range(1, len(taken) + 2) if f"{scope}-{i}" not in taken)
            elif name in taken:
                raise TokenError(
                    f"a token named {name!r} exists: revoke it first (mlops token revoke {name}) "
                    "or choose another --name"
                )
            info = TokenInfo(name, scope, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            entries.append({**asdict(info), "sha256": _hash(token)})
        return info, token

    def list(self) -> list[TokenInfo]:
        return [TokenInfo(e["name"], e["scope"], e["created"]) for e in self._load()]

    def revoke(self, name: str) -> None:
        with self._editing() as entries:
            kept = [e for e in entries if e["name"] != name]
            if len(kept) == len(entries):
                known = ", ".join(e["name"] for e in entries) or "none"
                raise TokenError(f"no token named {name!r} (tokens: {known})")
            entries[:] = kept

    def verify(self, token: str) -> TokenInfo | None:
        """The token's description if it is one of ours, else None. Every stored hash is compared,
        in constant time, so the answer's timing says nothing about how close a guess was."""
        given = _hash(token)
        found = None
        for entry in self._load():
            if hmac.compare_digest(given, entry["sha256"]):
                found = entry
        return None if found is None else TokenInfo(found["name"], found["scope"], found["created"])

    def __bool__(self) -> bool:
        return bool(self._load())


def owner_token(state_dir: str | Path) -> str:
    """The manage token of the gateway's owner (the lifecycle's rollout uses it): kept in the state
    folder (``owner-token``, mode 0600, like an SSH key) and made on first use, or again when it
    was revoked, so ``make run`` needs no extra step."""
    store, path = TokenStore(state_dir), Path(state_dir, "owner-token")
    store.dir.mkdir(parents=True, exist_ok=True)
    with open(store.dir / ".owner.lock", "a") as lock:  # two runs starting at once make one token
        fcntl.flock(lock, fcntl.LOCK_EX)
        with contextlib.suppress(FileNotFoundError):
            token = path.read_text().strip()
            if store.verify(token) is not None:
                return token
        with contextlib.suppress(TokenError):
            store.revoke(OWNER)  # a stale entry whose token file was lost
        _, token = store.create("manage", OWNER)
        _write_private(path, token + "\n")
        return token
