"""Shared fixtures: every test gets its own local target root, so tests never touch ./.mlops."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@pytest.fixture
def local_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh MLOPS_HOME for the local target."""
    root = tmp_path / "mlops"
    monkeypatch.setenv("MLOPS_HOME", str(root))
    monkeypatch.setenv("MLOPS_TARGET", "local")
    monkeypatch.delenv("MLOPS_CONFIG", raising=False)
    return root


@pytest.fixture(scope="session")
def postgres_dsn():
    """A real PostgreSQL server for the session (fails in CI, skips visibly elsewhere, without binaries)."""
    from .postgres import require_postgres, running_postgres

    with running_postgres(require_postgres()) as dsn:
        yield dsn


@pytest.fixture(scope="session")
def spark():
    """One local SparkSession for the unit tests that compute with Spark (the local target's config)."""
    import yaml

    from mlops_dagster.resources.spark import SparkResource
    from mlops_dagster.settings import CONF_DIR

    config = yaml.safe_load((CONF_DIR / "local.yaml").read_text())["spark"]
    return SparkResource(spark_config=config).session()


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-compatible server (moto's server mode) on 127.0.0.1: its endpoint URL."""
    import logging

    from moto.server import ThreadedMotoServer

    from .project import free_port

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
