"""A real PostgreSQL server for tests and benchmarks: Debian's binaries, a temporary data folder,
a random free port on 127.0.0.1, password authentication. PostgreSQL refuses to run as root, so
as root the server runs as the `postgres` user the Debian package creates."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .project import free_port

INSTALL_HINT = "install them with: apt-get install -y postgresql"


def postgres_bin() -> Path | None:
    """The newest installed ``/usr/lib/postgresql/<version>/bin`` with initdb and pg_ctl."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def require_postgres():
    """The binaries' folder; a clear failure in CI (CI must run this test), a visible skip elsewhere."""
    import pytest

    bin_dir = postgres_bin()
    if bin_dir is None:
        message = f"PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: {INSTALL_HINT}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return bin_dir


@contextmanager
def running_postgres(bin_dir: Path, user: str = "mlops"):
    """Start a throwaway server; yields its DSN (with a random password); stops and removes it."""
    as_root = os.geteuid() == 0
    base = Path(tempfile.mkdtemp(prefix="mlops-pg-"))
    data, log, pwfile = base / "data", base / "server.log", base / "password"
    password, port = secrets.token_hex(12), free_port()
    pwfile.write_text(password + "\n")

    def run(*args: str) -> None:
        command = [str(bin_dir / args[0]), *args[1:]]
        if as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            server_log = log.read_text() if log.exists() else ""
            raise RuntimeError(
                f"{' '.join(args[:1])} failed ({done.returncode}): {done.stderr}{done.stdout}{server_log}"
            )

    if as_root:
        shutil.chown(base, "postgres", "postgres")
        shutil.chown(pwfile, "postgres", "postgres")
    try:
        run(
            "initdb",
            "-D",
            str(data),
            "-U",
            user,
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        run(
            "pg_ctl",
            "start",
            "-D",
            str(data),
            "-l",
            str(log),
            "-w",
            "-t",
            "60",
            "-o",
            f"-h 127.0.0.1 -p {port} -k {base} -c fsync=off -c full_page_writes=off",
        )
        try:
            yield f"postgresql://{user}:{password}@127.0.0.1:{port}/postgres"
        finally:
            run("pg_ctl", "stop", "-D", str(data), "-m", "fast", "-w", "-t", "60")
    finally:
        shutil.rmtree(base, ignore_errors=True)
