"""Running the lifecycle: sensors, schedules and alerts; ownership, access and promotion."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import SettingsModel


class FileSensorSettings(SettingsModel):
    """The sensor that ingests landing files as they arrive."""

    interval_seconds: int = Field(30, ge=1)
    """How often the landing folder is listed."""
    stable_seconds: int = Field(10, ge=0)
    """A file must keep its size and modification time this long (and across two ticks) before it
    is ingested: a file still being copied is never read half-written."""


class RetrainSensorSettings(SettingsModel):
    """A sensor that requests a retraining (on drift, or on decay)."""

    interval_seconds: int = Field(60, ge=1)
    """How often the sensor looks for a new report."""
    cooldown_minutes: float = Field(360, ge=0)
    """At most one retraining is requested by this sensor in this many minutes."""


class DecaySensorSettings(RetrainSensorSettings):
    """The sensor that requests a retraining when the champion decayed."""

    on_estimates: bool = False
    """Also retrain when the champion's *estimated* performance on the newest batch or the
    endpoint's newest window (CBPE or DLE, before any outcome) fell more than `monitoring.max_performance_drop` below its validation figure
    (a sensor of its own, `estimated_decay_retraining_sensor`, with this cool-down). Off: an estimate
    only warns and alerts, and outcomes decide."""


class ScheduleSettings(SettingsModel):
    """When the jobs run on their own: cron expressions in `automation.timezone`."""

    training: str = "0 3 * * *"
    """When the training job runs."""
    batch_inference: str = "0 * * * *"
    """When the batch inference job runs."""
    monitoring: str = "30 4 * * *"
    """When the monitoring job runs."""
    housekeeping: str = "0 2 * * *"
    """When the housekeeping job runs (retention, compaction, vacuum)."""


class FreshnessSettings(SettingsModel):
    """When an asset is late: its freshness policy, shown in the UI (unset: none)."""

    predictions_hours: float | None = Field(2, gt=0)
    """The batch predictions are late when their newest materialization is older than this (the
    batch inference schedule runs hourly by default)."""
    features_hours: float | None = Field(26, gt=0)
    """The feature table is late when its newest materialization is older than this (it follows new
    landing files, expected at least daily by default)."""


class AutomationSettings(SettingsModel):
    """Sensors, schedules and alerts."""

    default_status: Literal["stopped", "running"] = "stopped"
    """Whether sensors and schedules start `stopped` (switch them on in the UI) or `running`."""
    timezone: str = "UTC"
    """The time zone of the schedules' cron expressions."""
    file_sensor: FileSensorSettings = FileSensorSettings()
    """The landing file sensor."""
    drift_sensor: RetrainSensorSettings = RetrainSensorSettings()
    """The sensor that retrains when the data drifted."""
    decay_sensor: DecaySensorSettings = DecaySensorSettings()
    """The sensor that retrains when the champion's performance decayed."""
    schedules: ScheduleSettings = ScheduleSettings()
    """The jobs' schedules."""
    freshness: FreshnessSettings = FreshnessSettings()
    """When the predictions and the feature table are late."""
    alert_webhook: str | None = None
    """Alerts (drift, decay, failed runs) are POSTed here as JSON (Slack- and Teams-compatible
    `text`) and always appended to the project's `alerts` table."""
    alert_on: list[Literal["drift", "decay", "estimated_decay", "bias", "run_failure", "budget"]] = [
        "drift",
        "decay",
        "estimated_decay",
        "bias",
        "run_failure",
        "budget",
    ]
    """Which kinds of alert are sent to the webhook."""


class RoleRights(SettingsModel):
    """What one role may do."""

    catalogs: dict[str, Literal["NONE", "READ", "READ_WRITE"]] = Field(default_factory=dict)
    """Target to the role's rights on that target's catalog."""
    registry: list[Literal["read", "register", "approve", "promote", "restore", "rollback", "grant"]] = Field(
        default_factory=list
    )
    """The model registry actions the role may take."""


class AccessSettings(SettingsModel):
    """Who may do what: roles, their members and the access-control matrix."""

    enforce: bool = False
    """Off: anyone may act (a laptop). On: approve / promote / restore / rollback check the actor's role."""
    roles: dict[str, list[str]] = Field(default_factory=dict)
    """Role to its members (MLOPS_USER, the OS user or the Databricks identity)."""
    matrix: dict[str, RoleRights] = Field(default_factory=dict)
    """Role to its rights."""
    groups: dict[str, str] = Field(default_factory=dict)
    """Databricks: role to the account group its Unity Catalog grants go to (default: the role name)."""

    def group_of(self, role: str) -> str:
        return self.groups.get(role, role)

    def roles_of(self, actor: str) -> list[str]:
        return sorted(role for role, members in self.roles.items() if actor in members)

    def allowed_roles(self, action: str) -> list[str]:
        return sorted(role for role, rights in self.matrix.items() if action in rights.registry)


class NextEnvironment(SettingsModel):
    """Where `deploy_model` promotion copies the champion to."""

    target: str
    """The next environment's target."""
    model_name: str
    """The registered model there (a three-level name in Unity Catalog)."""
    registry_uri: str | None = None
    """The next environment's registry (default: this target's; one Unity Catalog metastore)."""


class PromotionSettings(SettingsModel):
    """How a model reaches the next environment."""

    pattern: Literal["deploy_code", "deploy_model"] = "deploy_code"
    """deploy_code: each environment retrains from promoted code (the stack's default);
    deploy_model: the validated champion version is copied to the next environment's registry."""
    next: NextEnvironment | None = None
    """The next environment (unset: this is the last)."""


class GovernanceSettings(SettingsModel):
    """The model card's facts, approvals, access control and promotion."""

    owner: str = "unassigned"
    """Who answers for the model, shown on every model card."""
    use_case: str = ""
    """What the model is for, in a sentence, shown on every model card."""
    limitations: list[str] = Field(default_factory=list)
    """What the model cannot be relied on for, shown on every model card."""
    ethical_considerations: list[str] = Field(default_factory=list)
    """How the model's use must be watched, shown on every model card."""
    require_approval: bool = False
    """Promotion to champion needs an approval record for that exact version (on in prod)."""
    access: AccessSettings = AccessSettings()
    """Roles and their rights."""
    promotion: PromotionSettings = PromotionSettings()
    """How models move between environments."""
