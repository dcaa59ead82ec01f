"""Databricks targets: the clusters remote steps run on, how they are launched, what they cost."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .base import SettingsModel


class ClusterSettings(SettingsModel):
    """The job cluster each remote step runs on (a new one per step, or an existing one)."""

    spark_version: str = "15.4.x-cpu-ml-scala2.12"
    node_type_id: str = "i3.xlarge"
    min_workers: int = Field(1, ge=0)
    max_workers: int = Field(2, ge=1)
    # SPOT_WITH_FALLBACK: spot workers, on-demand when spot is unavailable (AWS attribute).
    availability: Literal["SPOT_WITH_FALLBACK", "SPOT", "ON_DEMAND"] = "SPOT_WITH_FALLBACK"
    existing_cluster_id: str | None = None  # run on this all-purpose cluster instead
    # An existing (all-purpose) cluster must auto-terminate within this many idle minutes: an idle
    # cluster is billed like a busy one. Runs on one that does not are warned about.
    autotermination_minutes: int = Field(30, ge=10)
    # Take the nodes from this instance pool (warm idle instances: a job cluster starts in seconds,
    # not minutes); the pool's own spot policy applies.
    instance_pool_id: str | None = None
    spark_conf: dict[str, str] = Field(default_factory=dict)
    custom_tags: dict[str, str] = Field(default_factory=dict)


class DbuPrices(SettingsModel):
    """Price of one DBU per compute type a launched step may use, in ``CostSettings.currency``
    (your contract's, or the list price). Serving endpoints are reported from actual usage only."""

    jobs: float = Field(0.15, ge=0)               # job clusters (Jobs Compute)
    all_purpose: float = Field(0.55, ge=0)        # an existing all-purpose cluster


class CostSettings(SettingsModel):
    """What compute costs: rates for the estimate, the budget, and where actual usage is read."""

    currency: str = "USD"
    # DBUs one node of a type consumes per hour (the cloud's VM price is billed apart, by the cloud).
    dbu_per_node_hour: dict[str, float] = Field(default_factory=dict)
    dbu_price: DbuPrices = DbuPrices()
    daily_budget: float | None = Field(None, gt=0)  # estimated cost per UTC day; crossing it alerts once
    report_days: int = Field(30, ge=1)              # the report's window
    # SQL warehouse that reads system.billing.usage for the actual figures (Databricks targets).
    warehouse_id: str | None = None


class SecretEnv(SettingsModel):
    name: str   # environment variable on the cluster
    scope: str  # Databricks secret scope ...
    key: str    # ... and key holding the value


class DatabricksSettings(SettingsModel):
    """Databricks targets: where remote steps run and how they are launched."""

    host_env: str = "DATABRICKS_HOST"    # names of the variables holding the credentials
    token_env: str = "DATABRICKS_TOKEN"
    client_id_env: str = "DATABRICKS_CLIENT_ID"
    client_secret_env: str = "DATABRICKS_CLIENT_SECRET"
    cluster: ClusterSettings = ClusterSettings()
    libraries: list[dict[str, Any]] = Field(default_factory=list)  # e.g. {pypi: {package: evidently==0.7.23}}
    env_variables: dict[str, str] = Field(default_factory=dict)
    # Credentials for the cluster's own calls (serving endpoints): from a secret scope, never config.
    secrets_to_env_variables: list[SecretEnv] = Field(default_factory=list)
    permissions: dict[str, Any] = Field(default_factory=dict)       # job / cluster permissions
    poll_interval_seconds: float = Field(5, gt=0)
    max_wait_seconds: int = Field(24 * 3600, ge=1)
    staging_prefix: str = "/dagster_staging"                        # DBFS folder for step code
    timeout_seconds: int = Field(0, ge=0)                           # per remote run; 0 = none


