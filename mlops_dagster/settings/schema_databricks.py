"""Databricks targets: the clusters remote steps run on, how they are launched, what they cost."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from .base import SettingsModel


class ClusterSettings(SettingsModel):
    """The job cluster each remote step runs on (a new one per step, or an existing one)."""

    spark_version: str = "15.4.x-cpu-ml-scala2.12"
    """The Databricks runtime (an ML runtime has scikit-learn and MLflow preinstalled)."""
    node_type_id: str = "i3.xlarge"
    """The cloud's instance type of every node."""
    min_workers: int = Field(1, ge=0)
    """The fewest workers the cluster scales down to."""
    max_workers: int = Field(2, ge=1)
    """The most workers the cluster scales up to."""
    availability: Literal["SPOT_WITH_FALLBACK", "SPOT", "ON_DEMAND"] = "SPOT_WITH_FALLBACK"
    """SPOT_WITH_FALLBACK: spot workers, on-demand when spot is unavailable (AWS attribute)."""
    existing_cluster_id: str | None = None
    """Run every step on this all-purpose cluster instead of a job cluster per step."""
    autotermination_minutes: int = Field(30, ge=10)
    """An existing (all-purpose) cluster must auto-terminate within this many idle minutes: an idle
    cluster is billed like a busy one. Runs on one that does not are warned about."""
    instance_pool_id: str | None = None
    """Take the nodes from this instance pool (warm idle instances: a job cluster starts in seconds,
    not minutes); the pool's own spot policy applies."""
    spark_conf: dict[str, str] = Field(default_factory=dict)
    """Spark configuration of the cluster."""
    custom_tags: dict[str, str] = Field(default_factory=dict)
    """Tags on the cluster, copied onto its usage records (the launcher adds its own)."""


class DbuPrices(SettingsModel):
    """Price of one DBU per compute type a launched step may use, in ``CostSettings.currency``
    (your contract's, or the list price). Serving endpoints are reported from actual usage only."""

    jobs: float = Field(0.15, ge=0)
    """Job clusters (Jobs Compute)."""
    all_purpose: float = Field(0.55, ge=0)
    """An existing all-purpose cluster (`databricks.cluster.existing_cluster_id`)."""


class CostSettings(SettingsModel):
    """What compute costs: rates for the estimate, the budget, and where actual usage is read."""

    currency: str = "USD"
    """The currency of the prices and the budget."""
    dbu_per_node_hour: dict[str, float] = Field(default_factory=dict)
    """Node type to the DBUs one node consumes per hour (the cloud's VM price is billed apart, by the cloud)."""
    dbu_price: DbuPrices = DbuPrices()
    """The price of one DBU per compute type."""
    daily_budget: float | None = Field(None, gt=0)
    """The estimated cost per UTC day above which one `budget` alert goes out (unset: no budget)."""
    report_days: int = Field(30, ge=1)
    """How many days the cost report covers."""
    warehouse_id: str | None = None
    """The SQL warehouse that reads system.billing.usage for the actual figures (Databricks targets)."""


class SecretEnv(SettingsModel):
    """An environment variable of the cluster whose value comes from a Databricks secret."""

    name: str
    """The environment variable on the cluster."""
    scope: str
    """The Databricks secret scope ..."""
    key: str
    """... and the key in it holding the value."""


class DatabricksSettings(SettingsModel):
    """Databricks targets: where remote steps run and how they are launched."""

    host_env: str = "DATABRICKS_HOST"
    """The environment variable holding the workspace URL."""
    token_env: str = "DATABRICKS_TOKEN"
    """The environment variable holding a personal access token."""
    client_id_env: str = "DATABRICKS_CLIENT_ID"
    """The environment variable holding an OAuth service principal's client id (instead of a token)."""
    client_secret_env: str = "DATABRICKS_CLIENT_SECRET"
    """The environment variable holding that service principal's secret."""
    launch: Literal["step_launcher", "pipes", "serverless"] = "step_launcher"
    """How each step that touches data runs on Databricks: ``step_launcher`` (dagster-databricks'
    step launcher), ``pipes`` (a job run on a job cluster submitted through Dagster Pipes, whose entry
    point needs only dagster-pipes and reports logs and events back through Pipes messages) or
    ``serverless`` (the same on serverless jobs compute, our libraries as its environment, messages
    through the io volume). See docs/databricks.md, "Launch modes"."""
    cluster: ClusterSettings = ClusterSettings()
    """The cluster remote steps run on."""
    libraries: list[dict[str, Any]] = Field(default_factory=list)
    """Libraries installed on the cluster, e.g. {pypi: {package: evidently==0.7.23}} (the launcher
    adds dagster, dagster-databricks, dagster-pyspark and databricks-sdk itself)."""
    env_variables: dict[str, str] = Field(default_factory=dict)
    """Environment variables of the remote steps."""
    secrets_to_env_variables: list[SecretEnv] = Field(default_factory=list)
    """Credentials for the cluster's own calls (serving endpoints), from a secret scope, never config."""
    permissions: dict[str, Any] = Field(default_factory=dict)
    """Job and cluster permissions, e.g. {job_permissions: {CAN_VIEW: [{group_name: ml-engineers}]}}."""
    poll_interval_seconds: float = Field(5, gt=0)
    """How often a launched step's run is polled."""
    max_wait_seconds: int = Field(24 * 3600, ge=1)
    """How long a launched step's run is waited for."""
    staging_prefix: str = "/dagster_staging"
    """The DBFS folder for each step's code and events."""
    timeout_seconds: int = Field(0, ge=0)
    """Databricks cancels a launched run after this many seconds; 0: no limit."""

    @model_validator(mode="after")
    def _cluster_permissions_need_a_job_cluster(self) -> DatabricksSettings:
        if self.permissions.get("cluster_permissions") and (
            self.launch == "serverless" or self.cluster.existing_cluster_id
        ):
            what = "serverless compute" if self.launch == "serverless" else "an existing cluster"
            raise ValueError(
                f"databricks.permissions.cluster_permissions apply to the job cluster of each step, but "
                f"steps run on {what}: remove cluster_permissions (job_permissions still apply)"
            )
        return self
