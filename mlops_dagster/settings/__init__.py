"""Target configuration, as a package: see ``schema`` for the fields and ``loading`` for how the
YAML layers become a ``Project``. Every caller imports from here."""

from .schema import (  # noqa: F401
    CONF_DIR, INGESTED_AT, LOWER_IS_BETTER, PROBLEM_METRICS, SETTINGS_JSON_ENV, SOURCE_FILE, TARGETS,
    USE_CASE_TAG, AccessSettings, AutomationSettings, Bound, ClusterSettings, ColumnRule, ConfigError,
    CostSettings, CsvOptions, DatabricksSettings, DatasetSettings, DbuPrices, DeltaSourceSettings,
    FeatureLookupSettings, FeatureSettings, FeatureSpec, FeatureStoreSettings, FeatureTableSettings,
    FileSensorSettings, GovernanceSettings, GroundTruthSettings, InferenceSettings, LandingFormat, MlflowSettings,
    ModelSpec, MonitoringSettings, Names, NextEnvironment, OnlineStoreSettings, PostgresSourceSettings, Project,
    PromotionSettings, RetrainSensorSettings, RoleRights, ScheduleSettings, SecretEnv, ServingSettings, Settings,
    TrainingSettings, ValidationSettings, bound_text, deep_merge, load_project, load_settings,
)
