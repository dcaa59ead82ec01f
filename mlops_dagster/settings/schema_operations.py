"""Running the lifecycle: sensors, schedules and alerts; ownership, access and promotion."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import SettingsModel


class FileSensorSettings(SettingsModel):
    interval_seconds: int = Field(30, ge=1)
    # A file must keep its size and modification time this long (and across two ticks) before
    # it is ingested: a file still being copied is never read half-written.
    stable_seconds: int = Field(10, ge=0)


class RetrainSensorSettings(SettingsModel):
    interval_seconds: int = Field(60, ge=1)
    cooldown_minutes: float = Field(360, ge=0)


class ScheduleSettings(SettingsModel):
    training: str = "0 3 * * *"
    batch_inference: str = "0 * * * *"
    monitoring: str = "30 4 * * *"


class AutomationSettings(SettingsModel):
    # Sensors and schedules start `stopped` (switch them on in the UI) or `running`.
    default_status: Literal["stopped", "running"] = "stopped"
    timezone: str = "UTC"
    file_sensor: FileSensorSettings = FileSensorSettings()
    drift_sensor: RetrainSensorSettings = RetrainSensorSettings()
    decay_sensor: RetrainSensorSettings = RetrainSensorSettings()
    schedules: ScheduleSettings = ScheduleSettings()
    # Alerts (drift, decay, failed runs) are POSTed here as JSON (Slack- and Teams-compatible
    # `text`) and always appended to the project's `alerts` table.
    alert_webhook: str | None = None
    alert_on: list[Literal["drift", "decay", "bias", "run_failure", "budget"]] = [
        "drift", "decay", "bias", "run_failure", "budget"]


class RoleRights(SettingsModel):
    catalogs: dict[str, Literal["NONE", "READ", "READ_WRITE"]] = Field(default_factory=dict)
    registry: list[Literal["read", "register", "approve", "promote", "restore", "rollback", "grant"]] = Field(
        default_factory=list)


class AccessSettings(SettingsModel):
    # Off: anyone may act (a laptop). On: approve / promote / restore / rollback check the actor.
    enforce: bool = False
    roles: dict[str, list[str]] = Field(default_factory=dict)     # role -> members
    matrix: dict[str, RoleRights] = Field(default_factory=dict)   # role -> rights
    # Databricks: role -> the account group its Unity Catalog grants go to (default: the role name).
    groups: dict[str, str] = Field(default_factory=dict)

    def group_of(self, role: str) -> str:
        return self.groups.get(role, role)

    def roles_of(self, actor: str) -> list[str]:
        return sorted(role for role, members in self.roles.items() if actor in members)

    def allowed_roles(self, action: str) -> list[str]:
        return sorted(role for role, rights in self.matrix.items() if action in rights.registry)


class NextEnvironment(SettingsModel):
    target: str
    model_name: str                 # the registered model there (three-level name in Unity Catalog)
    registry_uri: str | None = None  # default: this target's registry (one Unity Catalog metastore)


class PromotionSettings(SettingsModel):
    # deploy_code: each environment retrains from promoted code (the stack's default);
    # deploy_model: the validated champion version is copied to the next environment's registry.
    pattern: Literal["deploy_code", "deploy_model"] = "deploy_code"
    next: NextEnvironment | None = None


class GovernanceSettings(SettingsModel):
    owner: str = "unassigned"
    use_case: str = ""
    limitations: list[str] = Field(default_factory=list)
    ethical_considerations: list[str] = Field(default_factory=list)
    # Promotion to champion needs an approval record for that exact version (on in prod).
    require_approval: bool = False
    access: AccessSettings = AccessSettings()
    promotion: PromotionSettings = PromotionSettings()


