"""What the UI shows of a write or a run: links that open, tables that read."""

from __future__ import annotations

from types import SimpleNamespace

from dagster import MetadataValue

from mlops_dagster.assets.metadata import markdown_table, mlflow_run_metadata


def _settings(tracking_uri: str, ui_url: str | None = None):
    return SimpleNamespace(mlflow=SimpleNamespace(tracking_uri=tracking_uri, ui_url=ui_url))


def test_an_mlflow_run_links_to_the_configured_ui():
    value = mlflow_run_metadata(
        _settings("sqlite:////tmp/mlflow.db", "http://127.0.0.1:5000/"), "7", "abc123"
    )
    assert value == MetadataValue.url("http://127.0.0.1:5000/#/experiments/7/runs/abc123")


def test_an_http_tracking_server_is_its_own_ui():
    value = mlflow_run_metadata(_settings("https://mlflow.example.com"), "3", "r9")
    assert value == MetadataValue.url("https://mlflow.example.com/#/experiments/3/runs/r9")


def test_without_a_ui_the_run_id_is_shown_as_text():
    for tracking in ("sqlite:////tmp/mlflow.db", "databricks"):
        assert mlflow_run_metadata(_settings(tracking), "7", "abc123") == MetadataValue.text("abc123")


def test_a_markdown_table_escapes_pipes_and_newlines():
    assert markdown_table([]).value == "_none_"
    assert markdown_table([{"file": "a|b.csv", "problems": "x\ny"}]).value == (
        "| file | problems |\n|---|---|\n| a\\|b.csv | x y |"
    )
