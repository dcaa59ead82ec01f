"""Where a step runs. Every asset, check and op that touches data takes a ``step_launcher``:
None on ``local`` (the step runs in the Dagster process), dagster-databricks' step launcher on
Databricks targets (the step runs on a job cluster, its events and logs streamed back)."""

from typing import Any

from dagster import ResourceParam

StepLauncherParam = ResourceParam[Any]
