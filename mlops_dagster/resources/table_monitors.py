"""Databricks' monitors (data profiling, formerly Lakehouse Monitoring) on a use case's tables.

``TableMonitors`` is the interface: make sure a table's monitor exists, start a refresh, say where
its metric tables are. ``NoTableMonitors`` is the local target's (its monitor is the Evidently
workspace); ``DatabricksTableMonitors`` calls databricks-sdk's ``quality_monitors``:

- the prediction log gets an inference-log profile: model id ``model_version``, the prediction and
  (classifier) the probability, the problem type, the monitoring slices, the granularities;
- the inference table gets a time-series profile on ``request_time``, sliced by status code and
  served version (its predictions are inside the response: a profile of traffic, latency and errors).

Outcomes arrive in another table, so no label column is given: model quality is the performance
asset's, on outcomes, and its estimates before them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dagster import ConfigurableResource

from .databricks import DatabricksConfig

if TYPE_CHECKING:
    from ..settings import Settings


@dataclass(frozen=True)
class MonitorSpec:
    """What one table's monitor profiles."""

    table: str
    timestamp_col: str
    granularities: list[str]
    slicing_exprs: list[str]
    inference: dict[str, str] = field(
        default_factory=dict
    )  # model_id_col, prediction_col, ...; {}: time series


@dataclass(frozen=True)
class Monitored:
    """A table's monitor after ``refresh``: where its metrics are, and the refresh it started."""

    created: bool
    profile_metrics_table: str
    refresh_id: str | None
    refresh_state: str


def monitor_specs(settings: Settings) -> list[MonitorSpec]:
    """The use case's two monitors: an inference-log profile of its prediction log, a time-series
    profile of its endpoint's inference table."""
    cfg, names = settings.monitoring.databricks_monitor, settings.names
    inference = {
        "model_id_col": "model_version",
        "prediction_col": "prediction",
        "problem_type": f"PROBLEM_TYPE_{settings.problem_type.upper()}",
    }
    if settings.classifies:
        inference["prediction_proba_col"] = settings.score_column
    return [
        MonitorSpec(
            settings.table(names.prediction_log), "scored_at", cfg.granularities, settings.slices, inference
        ),
        MonitorSpec(
            settings.inference_table(), "request_time", cfg.granularities, ["status_code", "model_version"]
        ),
    ]


class TableMonitors(ConfigurableResource, ABC):
    """Monitors on tables, refreshed on demand."""

    @abstractmethod
    def refresh(
        self, spec: MonitorSpec, output_schema: str, assets_dir: str, wait_seconds: float
    ) -> Monitored | None:
        """Create ``spec.table``'s monitor when it has none (metric tables in ``output_schema``,
        dashboard under ``assets_dir``), start a refresh and wait for it up to ``wait_seconds``.
        None where there are no monitors."""


class NoTableMonitors(TableMonitors):
    """The local target: its monitor is the Evidently workspace."""

    def refresh(self, spec, output_schema, assets_dir, wait_seconds):
        return None


class DatabricksTableMonitors(TableMonitors):
    """Databricks' monitors through databricks-sdk's ``quality_monitors``."""

    databricks: DatabricksConfig
    """The target's Databricks settings: which variables hold the credentials."""

    def refresh(self, spec, output_schema, assets_dir, wait_seconds):
        import time

        from databricks.sdk.errors import NotFound
        from databricks.sdk.service.catalog import (
            MonitorInferenceLog,
            MonitorRefreshInfoState,
            MonitorTimeSeries,
        )

        from .databricks import workspace_client

        monitors = workspace_client(self.databricks).quality_monitors
        created = False
        try:
            info = monitors.get(spec.table)
        except NotFound:
            profile = (
                {
                    "inference_log": MonitorInferenceLog.from_dict(
                        {
                            **spec.inference,
                            "timestamp_col": spec.timestamp_col,
                            "granularities": spec.granularities,
                        }
                    )
                }
                if spec.inference
                else {
                    "time_series": MonitorTimeSeries(
                        timestamp_col=spec.timestamp_col, granularities=spec.granularities
                    )
                }
            )
            info = monitors.create(
                table_name=spec.table,
                assets_dir=f"{assets_dir.rstrip('/')}/{spec.table}",
                output_schema_name=output_schema,
                slicing_exprs=spec.slicing_exprs or None,
                **profile,
            )
            created = True
        refresh = monitors.run_refresh(spec.table)
        deadline = time.monotonic() + wait_seconds
        done = (
            MonitorRefreshInfoState.SUCCESS,
            MonitorRefreshInfoState.FAILED,
            MonitorRefreshInfoState.CANCELED,
        )
        while refresh.state not in done and time.monotonic() < deadline:
            time.sleep(min(5.0, max(deadline - time.monotonic(), 0.1)))
            refresh = monitors.get_refresh(spec.table, str(refresh.refresh_id))
        return Monitored(
            created,
            info.profile_metrics_table_name,
            str(refresh.refresh_id) if refresh.refresh_id is not None else None,
            refresh.state.value if refresh.state else "UNKNOWN",
        )
