"""Target configuration: which workspace, which tables, which model, which thresholds.

One module per idea: ``constants`` (names the code and the configuration share), ``base`` (what
every section is built on), ``schema_data`` / ``schema_model`` / ``schema_operations`` /
``schema_databricks`` (the sections), ``schema`` (one use case's settings, complete), ``names``
(every asset and table name), ``loading`` (YAML layers into a ``Project``) and ``reference`` (the
configuration reference, generated from the schema). Callers import from here.

Everything here is plain pydantic: no Dagster, no heavy imports, so the code location loads fast.
"""

from .base import ConfigError
from .constants import (
    CONF_DIR,
    INGESTED_AT,
    LOWER_IS_BETTER,
    PROBLEM_METRICS,
    SETTINGS_JSON_ENV,
    SOURCE_FILE,
    TARGETS,
    USE_CASE_TAG,
    reported_metrics,
)
from .loading import PROJECT_WIDE, Project, deep_merge, load_project, load_settings, load_use_case
from .names import Names, capture_prefix
from .schema import Settings
from .schema_data import (
    ColumnRule,
    CsvOptions,
    DatasetSettings,
    DeltaSourceSettings,
    FeatureLookupSettings,
    FeatureSettings,
    FeatureSpec,
    FeatureStoreSettings,
    FeatureTableSettings,
    LandingFormat,
    OnlineStoreSettings,
    PostgresSourceSettings,
)
from .schema_databricks import (
    ClusterSettings,
    CostSettings,
    DatabricksSettings,
    DbuPrices,
    SecretEnv,
)
from .schema_model import (
    Bound,
    GroundTruthSettings,
    InferenceSettings,
    MlflowSettings,
    ModelSpec,
    MonitoringSettings,
    ServingSettings,
    TrainingSettings,
    ValidationSettings,
    bound_text,
)
from .schema_operations import (
    AccessSettings,
    AutomationSettings,
    FileSensorSettings,
    FreshnessSettings,
    GovernanceSettings,
    NextEnvironment,
    PromotionSettings,
    RetrainSensorSettings,
    RoleRights,
    ScheduleSettings,
)

__all__ = [
    "CONF_DIR",
    "INGESTED_AT",
    "LOWER_IS_BETTER",
    "PROBLEM_METRICS",
    "reported_metrics",
    "SETTINGS_JSON_ENV",
    "SOURCE_FILE",
    "TARGETS",
    "USE_CASE_TAG",
    "AccessSettings",
    "AutomationSettings",
    "Bound",
    "ClusterSettings",
    "ColumnRule",
    "ConfigError",
    "CostSettings",
    "CsvOptions",
    "DatabricksSettings",
    "DatasetSettings",
    "DbuPrices",
    "DeltaSourceSettings",
    "FeatureLookupSettings",
    "FeatureSettings",
    "FeatureSpec",
    "FeatureStoreSettings",
    "FeatureTableSettings",
    "FileSensorSettings",
    "FreshnessSettings",
    "GovernanceSettings",
    "GroundTruthSettings",
    "InferenceSettings",
    "LandingFormat",
    "MlflowSettings",
    "ModelSpec",
    "MonitoringSettings",
    "Names",
    "NextEnvironment",
    "OnlineStoreSettings",
    "PostgresSourceSettings",
    "Project",
    "PromotionSettings",
    "RetrainSensorSettings",
    "RoleRights",
    "ScheduleSettings",
    "SecretEnv",
    "ServingSettings",
    "Settings",
    "TrainingSettings",
    "ValidationSettings",
    "bound_text",
    "capture_prefix",
    "deep_merge",
    "load_project",
    "load_settings",
    "load_use_case",
    "PROJECT_WIDE",
]
