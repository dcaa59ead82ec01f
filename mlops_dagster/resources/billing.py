"""Actual compute usage: what the workspace billed, read from Databricks' system tables.

``system.billing.usage`` holds one record per hour of compute with the cluster's custom tags (the
launchers tag every cluster with the Dagster run, step and use case), the job run (serverless jobs
compute has no cluster to tag: its records are found by the launched steps' job runs) or the
serving endpoint;
``system.billing.list_prices`` prices each SKU. They are read through the SQL Statement Execution
API (databricks-sdk) on the SQL warehouse named by ``cost.warehouse_id``. On ``local`` there is no
bill: the compute is this machine.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from datetime import date
from typing import TYPE_CHECKING

from dagster import ConfigurableResource

from .databricks import (
    PROJECT,
    PROJECT_TAG,
    RUN_TAG,
    STEP_TAG,
    TARGET_TAG,
    USE_CASE_CLUSTER_TAG,
    DatabricksConfig,
    workspace_client,
)

if TYPE_CHECKING:
    import pandas as pd

# The launched runs' usage (by their cluster tags, or by job run for serverless compute) and the
# endpoints' usage, priced at list price.
USAGE_SQL = f"""
SELECT u.custom_tags['{RUN_TAG}'] AS dagster_run_id,
       u.custom_tags['{STEP_TAG}'] AS step_key,
       u.custom_tags['{USE_CASE_CLUSTER_TAG}'] AS use_case,
       u.usage_metadata.job_run_id AS databricks_run_id,
       u.usage_metadata.endpoint_name AS endpoint_name,
       u.usage_date AS usage_date,
       u.sku_name AS sku_name,
       SUM(u.usage_quantity) AS dbus_actual,
       SUM(u.usage_quantity * p.pricing.default) AS cost_actual
FROM system.billing.usage u
LEFT JOIN system.billing.list_prices p
  ON p.sku_name = u.sku_name AND p.cloud = u.cloud AND p.usage_unit = u.usage_unit
 AND u.usage_start_time >= p.price_start_time
 AND (p.price_end_time IS NULL OR u.usage_start_time < p.price_end_time)
WHERE u.usage_date >= :since
  AND ((u.custom_tags['{PROJECT_TAG}'] = '{PROJECT}' AND u.custom_tags['{TARGET_TAG}'] = :target)
       OR array_contains(split(:endpoints, ','), u.usage_metadata.endpoint_name)
       OR array_contains(split(:job_runs, ','), u.usage_metadata.job_run_id))
GROUP BY ALL
"""
USAGE_COLUMNS = [
    "dagster_run_id",
    "step_key",
    "use_case",
    "databricks_run_id",
    "endpoint_name",
    "usage_date",
    "sku_name",
    "dbus_actual",
    "cost_actual",
]


class BillingError(RuntimeError):
    """The billing tables could not be read (the message says why and what to check)."""


class Billing(ConfigurableResource, ABC):
    @abstractmethod
    def usage(self, since: date, endpoints: list[str], job_runs: list[int]) -> pd.DataFrame | None:
        """Usage records since ``since`` (``USAGE_COLUMNS``) of the project's tagged clusters, the
        ``endpoints`` and the launched steps' ``job_runs``; None where there is no bill."""

    @property
    @abstractmethod
    def source(self) -> str:
        """Where the actual figures come from, in words (for the report)."""


class NoBilling(Billing):
    """``local``: no DBUs are billed."""

    def usage(self, since, endpoints, job_runs):
        return None

    @property
    def source(self) -> str:
        return "none (local target: compute is this machine)"


class DatabricksBilling(Billing):
    """system.billing.usage through the SQL Statement Execution API."""

    databricks: DatabricksConfig
    """The target's Databricks settings: which variables hold the credentials."""
    target: str
    warehouse_id: str | None = None
    wait_seconds: float = 600.0

    @property
    def source(self) -> str:
        if not self.warehouse_id:
            return "none: set cost.warehouse_id to read system.billing.usage"
        return f"system.billing.usage (SQL warehouse {self.warehouse_id})"

    def usage(self, since, endpoints, job_runs):
        if not self.warehouse_id:
            return None
        from databricks.sdk.errors import DatabricksError
        from databricks.sdk.service.sql import StatementParameterListItem, StatementState

        statements = workspace_client(self.databricks).statement_execution
        try:
            response = statements.execute_statement(
                statement=USAGE_SQL,
                warehouse_id=self.warehouse_id,
                wait_timeout="30s",
                parameters=[
                    StatementParameterListItem(name="since", value=since.isoformat(), type="DATE"),
                    StatementParameterListItem(name="target", value=self.target),
                    StatementParameterListItem(name="endpoints", value=",".join(endpoints)),
                    StatementParameterListItem(name="job_runs", value=",".join(map(str, job_runs))),
                ],
            )
        except DatabricksError as exc:
            raise BillingError(
                f"SQL warehouse {self.warehouse_id} (cost.warehouse_id) could not run the usage query: {exc}"
            ) from None
        deadline = time.monotonic() + self.wait_seconds
        while response.status.state in (StatementState.PENDING, StatementState.RUNNING):
            if time.monotonic() > deadline:
                statements.cancel_execution(response.statement_id)
                raise BillingError(
                    f"reading system.billing.usage took over {self.wait_seconds:.0f} s on SQL "
                    f"warehouse {self.warehouse_id}; cancelled"
                )
            time.sleep(2)
            response = statements.get_statement(response.statement_id)
        if response.status.state != StatementState.SUCCEEDED:
            error = response.status.error.message if response.status.error else response.status.state.value
            raise BillingError(
                f"reading system.billing.usage on SQL warehouse {self.warehouse_id} failed: {error} "
                "(the warehouse's owner needs SELECT on system.billing; see docs/cost.md)"
            )
        rows = list(response.result.data_array or []) if response.result else []
        for chunk in range(1, response.manifest.total_chunk_count or 1):
            rows += statements.get_statement_result_chunk_n(response.statement_id, chunk).data_array or []
        return _frame(rows)


def _frame(rows: list[list[str | None]]) -> pd.DataFrame:
    """JSON_ARRAY rows (every value a string) as typed columns."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=USAGE_COLUMNS)
    for column in ("dbus_actual", "cost_actual"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame["usage_date"] = pd.to_datetime(frame["usage_date"]).dt.date
    return frame
