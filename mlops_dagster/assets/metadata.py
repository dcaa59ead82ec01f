"""Metadata shown in the Dagster UI for what assets write (one shape for every table), and when an
asset is late."""

from datetime import timedelta
from typing import Any

from dagster import FreshnessPolicy, MetadataValue, TableColumn, TableSchema

from ..governance.audit import AuditLog
from ..resources.lakehouse import TableInfo


def freshness(hours: float | None) -> FreshnessPolicy | None:
    """An asset is late (failing its freshness policy, in the UI) when older than ``hours``."""
    return None if hours is None else FreshnessPolicy.time_window(fail_window=timedelta(hours=hours))


def table_metadata(info: TableInfo, **extra: Any) -> dict[str, Any]:
    """Table name, Delta version, row count, schema and location of a table write."""
    return {
        "dagster/table_name": info.name,
        "dagster/row_count": info.num_rows,
        "dagster/uri": MetadataValue.path(info.location),
        "dagster/column_schema": TableSchema(columns=[TableColumn(n, t) for n, t in info.columns]),
        "delta_version": info.version,
        "delta_operation": info.operation,
        **extra,
    }


def markdown_table(rows: list[dict[str, Any]]) -> MetadataValue:
    """A list of records as a Markdown table (for per-file or per-column reports)."""
    if not rows:
        return MetadataValue.md("_none_")
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [str(row[h]).replace("|", "\\|").replace("\n", " ") for h in header]
        lines.append("| " + " | ".join(cells) + " |")
    return MetadataValue.md("\n".join(lines))


def commit_info(context) -> dict[str, str]:
    """Stamped on every Delta commit: which Dagster run and asset wrote it."""
    return {"dagster_run_id": context.run.run_id, "dagster_job": context.run.job_name}


def audit_log(context, settings) -> AuditLog:
    """The audit log of this asset's or op's run (its target and run id said once)."""
    return AuditLog.of_run(context.resources.lakehouse, settings, context.run.run_id)


def mlflow_run_metadata(settings, experiment_id: str, run_id: str) -> MetadataValue:
    """An MLflow run as a link that opens it: in the UI at ``mlflow.ui_url``, else in the tracking
    server when it is one (an http(s) tracking URI serves the UI too); else the run id."""
    tracking = settings.mlflow.tracking_uri
    ui = settings.mlflow.ui_url or (tracking if tracking.startswith(("http://", "https://")) else "")
    if not ui:
        return MetadataValue.text(run_id)
    return MetadataValue.url(f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}")
