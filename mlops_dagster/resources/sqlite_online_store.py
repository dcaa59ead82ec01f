"""The embedded online store: one SQLite file under the local root."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import ClassVar

from .sql_online_store import SqlOnlineStore


class SqliteOnlineStore(SqlOnlineStore):
    """The embedded online store: one SQLite file (WAL, so lookups never wait for a publish)."""

    path: str

    sql_types: ClassVar[dict[str, str]] = {
        "string": "TEXT",
        "double": "REAL",
        "long": "INTEGER",
        "boolean": "INTEGER",
    }

    def _connect(self):
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _load(self, conn, staging, columns, batches):
        # Arrow batches go to a child process that loads them with ADBC's SQLite driver (C, no
        # Python value per cell: about 3x sqlite3's executemany). Not in this process: ADBC links
        # its own SQLite, and two SQLite libraries writing one file from one process break each
        # other's locks.
        import pyarrow as pa

        batches = iter(batches)
        first = next(batches, None)
        if first is None:
            return
        with tempfile.TemporaryFile() as errors:
            child = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("sqlite_bulk_load.py")), self.path, staging],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=errors,
            )
            try:
                with pa.ipc.new_stream(child.stdin, first.schema) as stream:
                    stream.write_batch(first)
                    for batch in batches:
                        stream.write_batch(batch)
            except BrokenPipeError:
                pass  # the child stopped reading: its exit code and message say why
            finally:
                with contextlib.suppress(BrokenPipeError):
                    child.stdin.close()
                code = child.wait()
            if code != 0:
                errors.seek(0)
                said = errors.read().decode(errors="replace").strip().splitlines()
                raise RuntimeError(
                    f"loading {staging} into the online store {self.describe()} failed "
                    f"(exit {code}): {said[-1] if said else 'no message'}"
                )

    def _missing_table(self, exc):
        return isinstance(exc, sqlite3.OperationalError) and "no such table" in str(exc)

    def _duplicate_keys(self, exc):
        return isinstance(exc, sqlite3.IntegrityError)

    def describe(self):
        return f"sqlite:{self.path}"
