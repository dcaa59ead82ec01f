"""Target configuration: which workspace, which tables, which model, which thresholds.

One setting picks the target: ``MLOPS_TARGET`` (``local`` by default, or ``dev`` / ``staging`` /
``prod``). Its file ``conf/<target>.yaml`` is laid over ``conf/base.yaml``; ``MLOPS_CONFIG``
may name one more YAML file laid over both (your own data, your own model). Values may use
``${VAR}`` or ``${VAR:-default}`` to read the environment.

Everything here is plain pydantic: no Dagster, no heavy imports, so the code location loads fast.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

CONF_DIR = Path(__file__).parent / "conf"
TARGETS = ("local", "dev", "staging", "prod")
# When a raw row was ingested: a column of the raw table, and the feature table's timestamp key.
INGESTED_AT = "_ingested_at"
# Which landing file a raw row came from.
SOURCE_FILE = "_source_file"
# The run tag naming the use case a run works for (set on every use case job).
USE_CASE_TAG = "mlops/use_case"
# What a model predicts, and the metrics it is judged by on its holdout (ml/ computes them).
PROBLEM_METRICS = {
    "classification": ("roc_auc", "f1", "precision", "recall", "log_loss", "accuracy"),
    "regression": ("rmse", "mae", "r2"),
}
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    """The target configuration is missing or invalid; the message says which file and field."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnRule(_Model):
    type: Literal["string", "double", "long", "boolean", "timestamp"]
    nullable: bool = False
    allowed: list[Any] | None = None
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _timestamps_are_only_parsed(self) -> "ColumnRule":
        if self.type == "timestamp" and (self.allowed is not None or self.min is not None or self.max is not None):
            raise ValueError("a timestamp column takes no allowed, min or max (only nullable)")
        return self


class CsvOptions(_Model):
    """How a CSV landing file is written (like Auto Loader's CSV options)."""

    delimiter: str = Field(",", min_length=1, max_length=1)
    quote: str = Field('"', min_length=1, max_length=1)
    # Any Python codec name (utf-8, latin-1, cp1252, utf-16, ...). Other than UTF-8, each file is
    # decoded as it is read (streamed, never whole in memory); a byte the codec refuses refuses the
    # file, naming its line.
    encoding: str = "utf-8"
    # Without a header, the fields of a row are the contract's columns (`columns`) in their order.
    header: bool = True

    @model_validator(mode="after")
    def _known_encoding(self) -> "CsvOptions":
        import codecs

        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ValueError(f"csv.encoding {self.encoding!r} is not a codec Python knows "
                             "(e.g. utf-8, latin-1, cp1252, utf-16)") from None
        if self.delimiter == self.quote or "\n" in (self.delimiter, self.quote):
            raise ValueError("csv.delimiter and csv.quote must be two different characters, neither a line break")
        return self


class LandingFormat(_Model):
    """Which landing files a source takes and how they are read. The format of a file follows its
    extension (.csv, .csv.gz, .parquet, .json, .jsonl, .json.gz ...) unless `format` names one, so
    one `file_pattern` may match several formats."""

    file_pattern: str = "*.csv"
    format: Literal["auto", "csv", "parquet", "json"] = "auto"
    csv: CsvOptions = CsvOptions()


class DeltaSourceSettings(_Model):
    """Another team's Delta table feeding the raw table instead of landing files: each run reads only
    what changed since the version it read last (recorded), the whole table when that cannot be
    told (the table was overwritten, restored or rows were deleted since)."""

    kind: Literal["delta"]
    # catalog.schema.table (Unity Catalog on Databricks; locally <root>/<catalog>/<schema>/<table>),
    # or the path of a Delta table.
    table: str = Field(min_length=1)


class PostgresSourceSettings(_Model):
    """A PostgreSQL table or query feeding the raw table: each run reads the rows whose `watermark`
    is greater than the greatest one read last (recorded), `batch_rows` at a time. The watermark
    must grow with every new or changed row (a sequence, or a commit time set by the writer)."""

    kind: Literal["postgres"]
    # The environment variable holding the DSN (postgresql://user:password@host:5432/db): the
    # password never sits in config.
    dsn_env: str = "MLOPS_SOURCE_DSN"
    table: str | None = None        # schema.table, or:
    query: str | None = None        # any SELECT (read as a subquery)
    watermark: str = Field(min_length=1)
    batch_rows: int = Field(50_000, ge=1)

    @model_validator(mode="after")
    def _table_or_query(self) -> "PostgresSourceSettings":
        if (self.table is None) == (self.query is None):
            raise ValueError("a postgres source names exactly one of `table` or `query`")
        return self


class DatasetSettings(LandingFormat):
    name: str
    # Where rows come from: landing files in the use case's landing folder (unset), a Delta table
    # or a PostgreSQL table or query.
    source: DeltaSourceSettings | PostgresSourceSettings | None = Field(None, discriminator="kind")
    key: str
    label: str
    positive_label: Any = None  # classification: the label's positive value (its score's class)
    columns: dict[str, ColumnRule]

    @model_validator(mode="after")
    def _key_and_label_are_columns(self) -> "DatasetSettings":
        for role, column in (("key", self.key), ("label", self.label)):
            if column not in self.columns:
                raise ValueError(f"dataset.{role} {column!r} is not one of dataset.columns")
        return self


class FeatureSettings(_Model):
    categorical: list[str]
    numerical: list[str]
    derived: dict[str, str] = Field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        """Model inputs in a stable order: categorical, numerical, then new derived columns."""
        ordered = [*self.categorical, *self.numerical, *self.derived]
        return list(dict.fromkeys(ordered))

    @property
    def numeric_columns(self) -> list[str]:
        return [c for c in self.columns if c not in self.categorical]


class ModelSpec(_Model):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    class_path: str = Field(alias="class")
    params: dict[str, Any] = Field(default_factory=dict)


class TrainingSettings(_Model):
    test_size: float = Field(0.2, gt=0, lt=1)
    seed: int = 42
    # At most this many rows are trained on (a seeded, stratified sample of the train split); the
    # holdout is the test split sampled by the same fraction. Bounds the training step's memory.
    max_rows: int = Field(1_000_000, ge=100)
    model: ModelSpec


class Bound(_Model):
    min: float | None = None
    max: float | None = None


def bound_text(min_value: float | None, max_value: float | None) -> str:
    """``>= 0.75``, ``<= 0.55`` or both, for messages and the UI."""
    parts = [f">= {min_value}" if min_value is not None else "", f"<= {max_value}" if max_value is not None else ""]
    return " and ".join(p for p in parts if p)


class ValidationSettings(_Model):
    thresholds: dict[str, Bound]
    compare_metric: str = "roc_auc"
    max_regression: float = Field(0.0, ge=0)


class InferenceSettings(_Model):
    decision_threshold: float = Field(0.5, gt=0, lt=1)


class GroundTruthSettings(LandingFormat):
    """Outcomes that arrive after the predictions (the label becomes known weeks after the scoring):
    files with the dataset's key, its label and the time the outcome was observed."""

    time_column: str = "label_time"
    # An outcome judges the newest prediction made for its key at most this long before it.
    max_delay_days: float = Field(90, gt=0)
    # Retraining learns from them too, each with its key's features as of `time_column`.
    learn: bool = True


class MonitoringSettings(_Model):
    drift_share: float = Field(0.5, gt=0, le=1)
    # Reports compare seeded samples of at most this many rows of each side (reference, current).
    sample_rows: int = Field(100_000, ge=100)
    # What "current" data is: the newest landing batch, or what the endpoint was asked to score
    # (its inference table) over the last `window_hours`.
    current: Literal["landing_batch", "inference_table"] = "landing_batch"
    window_hours: float = Field(24, gt=0)
    ground_truth: GroundTruthSettings = GroundTruthSettings()
    # Decay: the champion's `validation.compare_metric` on labelled predictions is worse than on its
    # validation holdout by more than this (e.g. 0.05 ROC AUC).
    max_performance_drop: float = Field(0.05, ge=0)
    # A model version's figures need at least this many labelled predictions to be judged.
    min_labelled_rows: int = Field(100, ge=1)
    # Each figure is computed on a seeded sample of at most this many labelled predictions.
    performance_rows: int = Field(1_000_000, ge=100)
    # Only outcomes observed in the last this many days are judged: the figures say how models do now.
    performance_window_days: float = Field(30, gt=0)
    # Slices: model features whose groups the champion's figures are also computed for; and per
    # slice to judge for fairness, the largest gap allowed between two of its groups, per metric
    # (e.g. gender: {recall: 0.1, positive_rate: 0.1}).
    slices: list[str] = Field(default_factory=list)
    max_slice_gaps: dict[str, dict[str, float]] = Field(default_factory=dict)


class FileSensorSettings(_Model):
    interval_seconds: int = Field(30, ge=1)
    # A file must keep its size and modification time this long (and across two ticks) before
    # it is ingested: a file still being copied is never read half-written.
    stable_seconds: int = Field(10, ge=0)


class RetrainSensorSettings(_Model):
    interval_seconds: int = Field(60, ge=1)
    cooldown_minutes: float = Field(360, ge=0)


class ScheduleSettings(_Model):
    training: str = "0 3 * * *"
    batch_inference: str = "0 * * * *"
    monitoring: str = "30 4 * * *"


class ServingSettings(_Model):
    endpoint: str
    # blue_green: new champion loaded at 0 %, smoke-tested, shifted to 100 %, old one retired.
    # canary: champion (100 - canary_percent) % / validated challenger canary_percent %.
    # shadow: champion answers; a validated challenger gets a mirror of every request (captured only).
    strategy: Literal["blue_green", "canary", "shadow"] = "blue_green"
    canary_percent: int = Field(10, ge=1, le=50)
    workload_size: str = "Small"
    scale_to_zero: bool = False
    host: str = "127.0.0.1"   # local gateway
    # token: every API call needs `Authorization: Bearer` (mlops token create); none: no token,
    # allowed only when host is loopback (the gateway refuses to start otherwise).
    auth: Literal["token", "none"] = "token"
    port: int = Field(8765, ge=0, le=65535)  # 0: any free port (see LocalServingBackend)
    capture_batch_size: int = Field(2000, ge=1)
    capture_flush_seconds: float = Field(1.0, gt=0)
    max_body_bytes: int = Field(1 << 20, ge=1024)
    max_rows: int = Field(10_000, ge=1)
    ready_timeout_seconds: float = Field(300, gt=0)


class AutomationSettings(_Model):
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


class FeatureSpec(_Model):
    description: str = ""
    dtype: Literal["string", "double", "long", "boolean", "timestamp"] | None = None


class FeatureTableSettings(_Model):
    """A feature table in the registry: what identifies a row, who owns it, what each feature means."""

    keys: list[str] = Field(min_length=1)   # entity keys (the primary key without the timestamp)
    timestamp_key: str | None = None        # with it, the table keeps history: one row per keys + time
    description: str
    owner: str
    tags: dict[str, str] = Field(default_factory=dict)
    # Feature name -> description and dtype. Replaced as a whole by an upper config layer.
    columns: dict[str, FeatureSpec] = Field(default_factory=dict)
    online: bool = False                    # publish the latest values per key to the online store


class FeatureLookupSettings(_Model):
    """Like Databricks' ``FeatureLookup``: which features to join to the labels, by which columns."""

    table: str                                # a feature table of ``feature_store.tables``
    lookup_key: list[str] = Field(min_length=1)  # label columns matched to the table's keys, in order
    timestamp_lookup_key: str | None = None   # label event time: features as of then (point in time)
    feature_names: list[str] | None = None    # default: every feature of the table


class OnlineStoreSettings(_Model):
    # sqlite: embedded, a file under `root` (or `path`); postgres: a server named by the DSN in the
    # environment variable `dsn_env` (the DSN holds the password, so it never sits in config).
    kind: Literal["sqlite", "postgres"] = "sqlite"
    path: str | None = None
    dsn_env: str = "MLOPS_ONLINE_STORE_DSN"


class FeatureStoreSettings(_Model):
    tables: dict[str, FeatureTableSettings] = Field(default_factory=dict)
    training_lookups: list[FeatureLookupSettings] = Field(default_factory=list)
    online_store: OnlineStoreSettings = OnlineStoreSettings()

    @model_validator(mode="after")
    def _lookups_name_declared_features(self) -> "FeatureStoreSettings":
        for i, lookup in enumerate(self.training_lookups):
            table = self.tables.get(lookup.table)
            where = f"feature_store.training_lookups[{i}]"
            if table is None:
                raise ValueError(f"{where}.table {lookup.table!r} is not declared in feature_store.tables "
                                 f"(declared: {sorted(self.tables)})")
            if len(lookup.lookup_key) != len(table.keys):
                raise ValueError(f"{where}.lookup_key {lookup.lookup_key} must name one label column per key "
                                 f"of {lookup.table} {table.keys}")
            if lookup.timestamp_lookup_key and not table.timestamp_key:
                raise ValueError(f"{where} has a timestamp_lookup_key but {lookup.table} has no timestamp_key: "
                                 "a table without history has no point in time to look up")
            unknown = [f for f in lookup.feature_names or [] if f not in table.columns]
            if unknown:
                raise ValueError(f"{where}.feature_names {unknown} are not features of {lookup.table} "
                                 f"(declared: {sorted(table.columns)})")
        return self


class MlflowSettings(_Model):
    tracking_uri: str | None = None  # local default: SQLite under `root`
    registry_uri: str | None = None  # local default: the tracking store
    experiment: str
    model_name: str


class RoleRights(_Model):
    catalogs: dict[str, Literal["NONE", "READ", "READ_WRITE"]] = Field(default_factory=dict)
    registry: list[Literal["read", "register", "approve", "promote", "restore", "rollback", "grant"]] = Field(
        default_factory=list)


class AccessSettings(_Model):
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


class NextEnvironment(_Model):
    target: str
    model_name: str                 # the registered model there (three-level name in Unity Catalog)
    registry_uri: str | None = None  # default: this target's registry (one Unity Catalog metastore)


class PromotionSettings(_Model):
    # deploy_code: each environment retrains from promoted code (the stack's default);
    # deploy_model: the validated champion version is copied to the next environment's registry.
    pattern: Literal["deploy_code", "deploy_model"] = "deploy_code"
    next: NextEnvironment | None = None


class GovernanceSettings(_Model):
    owner: str = "unassigned"
    use_case: str = ""
    limitations: list[str] = Field(default_factory=list)
    ethical_considerations: list[str] = Field(default_factory=list)
    # Promotion to champion needs an approval record for that exact version (on in prod).
    require_approval: bool = False
    access: AccessSettings = AccessSettings()
    promotion: PromotionSettings = PromotionSettings()


class ClusterSettings(_Model):
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


class DbuPrices(_Model):
    """Price of one DBU per compute type a launched step may use, in ``CostSettings.currency``
    (your contract's, or the list price). Serving endpoints are reported from actual usage only."""

    jobs: float = Field(0.15, ge=0)               # job clusters (Jobs Compute)
    all_purpose: float = Field(0.55, ge=0)        # an existing all-purpose cluster


class CostSettings(_Model):
    """What compute costs: rates for the estimate, the budget, and where actual usage is read."""

    currency: str = "USD"
    # DBUs one node of a type consumes per hour (the cloud's VM price is billed apart, by the cloud).
    dbu_per_node_hour: dict[str, float] = Field(default_factory=dict)
    dbu_price: DbuPrices = DbuPrices()
    daily_budget: float | None = Field(None, gt=0)  # estimated cost per UTC day; crossing it alerts once
    report_days: int = Field(30, ge=1)              # the report's window
    # SQL warehouse that reads system.billing.usage for the actual figures (Databricks targets).
    warehouse_id: str | None = None


class SecretEnv(_Model):
    name: str   # environment variable on the cluster
    scope: str  # Databricks secret scope ...
    key: str    # ... and key holding the value


class DatabricksSettings(_Model):
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


@dataclass(frozen=True)
class Names:
    """Every asset, table and check name of one use case, made here from its config (``name`` and
    ``dataset.name``) and nowhere else."""

    use_case: str
    dataset: str

    @property
    def prefix(self) -> list[str]:
        """The key prefix of every asset of the use case (``sales``: ``sales/sales_features``)."""
        return [self.use_case]

    def key(self, asset: str) -> list[str]:
        """An asset's full key path (wrap it in ``dagster.AssetKey``)."""
        return [*self.prefix, asset]

    def group(self, stage: str) -> str:
        """The UI group of a lifecycle stage: ``sales_training``, one set of groups per use case."""
        return f"{self.use_case}_{stage}"

    def op(self, name: str) -> str:
        """A step (op) name, unique in a code location holding several use cases."""
        return f"{self.use_case}__{name}"

    def job(self, kind: str) -> str:
        """``sales_lifecycle_job``, ``sales_training_job``, ..."""
        return f"{self.use_case}_{kind}_job"

    def automation(self, name: str) -> str:
        """A sensor or schedule of the use case: ``sales_landing_file_sensor``, ..."""
        return f"{self.use_case}_{name}"

    def ingest(self, loaded: str) -> str:
        """The op that ingests landing files into ``loaded`` (the raw table or the outcomes)."""
        return self.op("ingest_landing_files" if loaded == self.raw else f"ingest_{loaded}")

    @property
    def raw(self) -> str:
        return f"raw_{self.dataset}"

    @property
    def quarantine(self) -> str:
        return f"raw_{self.dataset}_quarantine"

    @property
    def features(self) -> str:
        """The features asset and its Delta table (and its feature-registry entry)."""
        return f"{self.use_case}_features"

    @property
    def labels(self) -> str:
        return f"{self.use_case}_labels"

    @property
    def features_online(self) -> str:
        return f"{self.use_case}_features_online"

    @property
    def training_set(self) -> str:
        return f"{self.use_case}_training_set"

    @property
    def model(self) -> str:
        """The trained-model asset (the registered model's name is ``mlflow.model_name``)."""
        return f"{self.use_case}_model"

    @property
    def endpoint(self) -> str:
        """The serving-endpoint asset (the endpoint's own name is ``serving.endpoint``)."""
        return f"{self.use_case}_endpoint"

    @property
    def predictions(self) -> str:
        return f"{self.use_case}_predictions"

    @property
    def probability(self) -> str:
        """The predictions' column with the positive class's probability."""
        return f"{self.use_case}_probability"

    @property
    def drift_report(self) -> str:
        return f"{self.use_case}_drift_report"

    @property
    def drift_metrics(self) -> str:
        return f"{self.use_case}_drift_metrics"

    @property
    def ground_truth(self) -> str:
        """Outcomes that arrived after the predictions (asset and table)."""
        return f"{self.use_case}_ground_truth"

    @property
    def ground_truth_quarantine(self) -> str:
        return f"{self.use_case}_ground_truth_quarantine"

    @property
    def prediction_log(self) -> str:
        """Every batch prediction ever made (append-only), for judging them when outcomes arrive."""
        return f"{self.use_case}_prediction_log"

    @property
    def model_performance(self) -> str:
        """The performance asset and its history table."""
        return f"{self.use_case}_model_performance"


class Settings(_Model):
    target: Literal["local", "dev", "staging", "prod"]
    # What the use case's model predicts: a binary class (with its probability) or a number.
    problem_type: Literal["classification", "regression"] = "classification"
    # A shipped demo's data generator (`mlops generate`; `mlops run` fills an empty landing folder).
    demo: Literal["telco", "houses"] | None = None
    # The use case: every asset and table is named from it (see ``Names``), and config strings may
    # say ``{name}`` (and ``{catalog}``, ``{schema}``) to name models, experiments and endpoints.
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    catalog: str
    schema_: str = Field(alias="schema")
    # Where tables, landing files, reports and MLflow live on `local`. On a Databricks target it is
    # unset (Unity Catalog tables and volumes); set it to a path the cluster reaches (/dbfs/...)
    # to keep delta-rs tables there instead, as the workspace-emulator tests do.
    root: Path | None = None
    landing: str | None = None
    mlflow: MlflowSettings
    spark: dict[str, str] = Field(default_factory=dict)
    # Steps of a run at once, each in a thread of the run's process (1: one step at a time).
    max_concurrent_steps: int = Field(4, ge=1)
    dataset: DatasetSettings
    features: FeatureSettings
    training: TrainingSettings
    validation: ValidationSettings
    inference: InferenceSettings = InferenceSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    automation: AutomationSettings = AutomationSettings()
    serving: ServingSettings
    governance: GovernanceSettings = GovernanceSettings()
    databricks: DatabricksSettings = DatabricksSettings()
    feature_store: FeatureStoreSettings = FeatureStoreSettings()
    cost: CostSettings = CostSettings()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _feature_store_defaults(cls, raw: Any) -> Any:
        """The features asset's table is keyed by ``dataset.key`` and stamped with the ingestion
        time; by default the model's features are looked up from it as of each label's time."""
        if not isinstance(raw, dict) or not isinstance(raw.get("dataset"), dict):
            return raw
        key = raw["dataset"].get("key")
        features = Names(str(raw.get("name")), str(raw["dataset"].get("name"))).features
        store = dict(raw.get("feature_store") or {})
        tables = dict(store.get("tables") or {})
        if isinstance(tables.get(features), dict):
            tables[features] = {"keys": [key], "timestamp_key": INGESTED_AT, **tables[features]}
        store["tables"] = tables
        if not store.get("training_lookups"):
            store["training_lookups"] = [{"table": features, "lookup_key": [key], "timestamp_lookup_key": INGESTED_AT}]
        return {**raw, "feature_store": store}

    @model_validator(mode="before")
    @classmethod
    def _local_defaults(cls, raw: Any) -> Any:
        """Locally, resolve `root` once and keep MLflow's SQLite store under it."""
        if not isinstance(raw, dict) or raw.get("target") != "local":
            return raw
        if not raw.get("root"):
            raise ValueError("the local target needs `root` (where its lakehouse lives)")
        root = Path(raw["root"]).expanduser().resolve()
        mlflow = dict(raw.get("mlflow") or {})
        mlflow.setdefault("tracking_uri", f"sqlite:///{root}/mlflow/mlflow.db")
        mlflow.setdefault("registry_uri", mlflow["tracking_uri"])
        return {**raw, "root": str(root), "mlflow": mlflow}

    @model_validator(mode="after")
    def _consistent(self) -> "Settings":
        if not (self.mlflow.tracking_uri and self.mlflow.registry_uri):
            raise ValueError("mlflow.tracking_uri and mlflow.registry_uri are required")
        unknown = [
            c for c in [*self.features.categorical, *self.features.numerical]
            if c not in self.dataset.columns and c not in self.features.derived
        ]
        if unknown:
            raise ValueError(f"features name columns that are not in dataset.columns: {unknown}")
        self._fits_the_problem_type()
        self._feature_table_matches_the_features_asset()
        self._monitoring_names_known_columns()
        return self

    def _monitoring_names_known_columns(self) -> None:
        mon, ds = self.monitoring, self.dataset
        unknown = [c for c in mon.max_slice_gaps if c not in mon.slices]
        if unknown:
            raise ValueError(f"monitoring.max_slice_gaps names {unknown}, which are not in monitoring.slices")
        judged = {*PROBLEM_METRICS[self.problem_type], *(("brier_score", "positive_rate") if self.classifies else ())}
        unknown = sorted({m for gaps in mon.max_slice_gaps.values() for m in gaps if m not in judged})
        if unknown:
            raise ValueError(f"monitoring.max_slice_gaps names {unknown}; a {self.problem_type} model's figures are "
                             f"{', '.join(sorted(judged))}")
        if mon.ground_truth.time_column in (ds.key, ds.label):
            raise ValueError(f"monitoring.ground_truth.time_column {mon.ground_truth.time_column!r} is the dataset's "
                             "key or label: name the outcome files' time column")

    def _fits_the_problem_type(self) -> None:
        metrics = PROBLEM_METRICS[self.problem_type]
        ds, val = self.dataset, self.validation
        if self.classifies and ds.positive_label is None:
            raise ValueError(f"dataset.positive_label is required for classification: which value of {ds.label} "
                             "is the positive class")
        if not self.classifies and ds.columns[ds.label].type not in ("double", "long"):
            raise ValueError(f"dataset.columns.{ds.label} is the label of a regression: its type must be double "
                             f"or long, not {ds.columns[ds.label].type}")
        unknown = [m for m in [*val.thresholds, val.compare_metric] if m not in metrics]
        if unknown:
            raise ValueError(f"validation names {sorted(set(unknown))}, which a {self.problem_type} model does not "
                             f"report (it reports {', '.join(metrics)}): set validation.thresholds and "
                             "validation.compare_metric for this use case")

    def _feature_table_matches_the_features_asset(self) -> None:
        """``<name>_features`` is written by the features asset: its registry entry must describe it."""
        features = self.names.features
        declared = self.feature_store.tables.get(features)
        if declared is None:
            raise ValueError(f"feature_store.tables must declare {features} (the table the features asset writes; "
                             "'{name}_features' in the config names it)")
        where = f"feature_store.tables.{features}"
        if declared.keys != [self.dataset.key]:
            raise ValueError(f"{where}.keys must be [{self.dataset.key}] (dataset.key), not {declared.keys}")
        if declared.timestamp_key != INGESTED_AT:
            raise ValueError(f"{where}.timestamp_key must be {INGESTED_AT}: each feature row is stamped "
                             "with the ingestion time of the raw row it was computed from")
        for name, spec in declared.columns.items():
            # A description of a feature this config does not compute (a lower layer's) is unused.
            if name in self.features.columns and spec.dtype is not None and spec.dtype != self.feature_dtype(name):
                raise ValueError(f"{where}.columns.{name}.dtype is {spec.dtype!r} but the features asset "
                                 f"writes it as {self.feature_dtype(name)!r}")

    @property
    def classifies(self) -> bool:
        """A binary classifier (else a regression)."""
        return self.problem_type == "classification"

    @property
    def slices(self) -> list[str]:
        """The monitoring slices this use case can compute: those that are model features (a slice a
        lower config layer named for features this config does not compute is unused, and said so)."""
        return [c for c in self.monitoring.slices if c in self.features.columns]

    @property
    def score_column(self) -> str:
        """The model's output column in predictions and reports: the positive class's probability,
        or a regressor's predicted value."""
        return self.names.probability if self.classifies else "prediction"

    @property
    def label_meaning(self) -> str:
        """What the training target ``label`` is, for descriptions and messages."""
        ds = self.dataset
        if self.classifies:
            return f"`label` = 1 where `{ds.label}` is {ds.positive_label!r}, else 0"
        return f"`label` = `{ds.label}` as a number"

    def feature_dtype(self, name: str) -> str:
        """How the features asset writes a model feature: categoricals as strings, the rest as doubles."""
        return "string" if name in self.features.categorical else "double"

    @property
    def names(self) -> Names:
        return Names(self.name, self.dataset.name)

    def feature_names(self, table: str) -> list[str]:
        """The features of a registry table: the model's for the features asset's, else those declared."""
        return self.features.columns if table == self.names.features else list(self.feature_store.tables[table].columns)

    def feature_table(self, name: str) -> str:
        """A registry table's three-level name: short names live in this catalog and schema."""
        return name if name.count(".") == 2 else self.table(name)

    @property
    def landing_path(self) -> str:
        """The use case's landing folder: ``landing`` if set, else ``<name>`` in the project's
        ``landing`` folder / volume (each use case has its own, so their files never mix)."""
        return self.landing or f"{self.volume_path('landing')}/{self.name}"

    def volume_path(self, name: str) -> str:
        """A folder of this project's files: under `root` when set, else the UC volume ``name``."""
        if self.root is not None:
            return str(self.root / name)
        return f"/Volumes/{self.catalog}/{self.schema_}/{name}"

    @property
    def ground_truth_path(self) -> str:
        """Where outcome files land: ``ground_truth`` in the use case's landing folder."""
        return f"{self.landing_path}/ground_truth"

    def ground_truth_rules(self) -> dict[str, ColumnRule]:
        """The outcome files' contract: the dataset's key and label rules, and the outcome's time."""
        ds = self.dataset
        return {ds.key: ds.columns[ds.key], ds.label: ds.columns[ds.label],
                self.monitoring.ground_truth.time_column: ColumnRule(type="timestamp")}

    @property
    def evidently_path(self) -> str:
        """The Evidently workspace every report is added to (``evidently ui --workspace`` it)."""
        return self.volume_path("evidently")

    @property
    def reports_path(self) -> str:
        """Where HTML reports are written."""
        return self.volume_path("reports")

    @property
    def io_path(self) -> str:
        """Where step outputs handed between steps are stored (both ends must reach it: on a
        Databricks target, steps run on different clusters)."""
        return self.volume_path("io")

    def inference_table(self, endpoint: str | None = None) -> str:
        """An endpoint's auto-capture table (Databricks names it ``<prefix>_payload``)."""
        return self.table(f"{(endpoint or self.serving.endpoint).replace('-', '_')}_payload")

    def table(self, name: str) -> str:
        """The three-level Unity Catalog name of one of this project's tables."""
        return f"{self.catalog}.{self.schema_}.{name}"


_NAME_REF = re.compile(r"\{(name|catalog|schema)\}")


def _expand_names(value: Any, names: dict[str, str]) -> Any:
    """``{name}``, ``{catalog}`` and ``{schema}`` in config strings and keys, from the config itself."""
    if isinstance(value, str):
        return _NAME_REF.sub(lambda m: names[m.group(1)], value)
    if isinstance(value, dict):
        return {_expand_names(k, names): _expand_names(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_names(v, names) for v in value]
    return value


def _expand_env(value: Any) -> Any:
    if isinstance(value, str):
        return _ENV_REF.sub(lambda m: os.environ.get(m.group(1)) or (m.group(2) or ""), value)
    if isinstance(value, dict):
        return {k: _expand_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v) for v in value]
    return value


# Mappings that describe one thing as a whole: an override replaces them instead of merging into
# them (a new model class must not inherit the old one's params, a new dataset the old columns).
_REPLACED_WHOLE = {"params", "columns", "derived", "thresholds"}


def deep_merge(base: dict, over: dict) -> dict:
    """``over`` laid over ``base`` (how configuration layers combine)."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key not in _REPLACED_WHOLE:
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path) -> dict:
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"configuration file {path} is not valid YAML: {exc}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"configuration file {path} must hold a mapping at the top level")
    return loaded


SETTINGS_JSON_ENV = "MLOPS_SETTINGS_JSON"
# Settings one project shares: a use case may not set these (one workspace, one store, one gateway).
_PROJECT_WIDE = {
    "target": None, "root": None, "catalog": None, "schema": None, "spark": None, "databricks": None,
    "mlflow": ("tracking_uri", "registry_uri"), "serving": ("host", "port"), "feature_store": ("online_store",),
    "cost": None,
}


class Project(_Model):
    """Every use case of the code location, each one's settings complete (shared parts included)."""

    use_cases: list[Settings] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_project(self) -> "Project":
        names = [u.name for u in self.use_cases]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"use case names must be unique: {duplicated}")
        return self

    @property
    def default(self) -> Settings:
        """The first use case: the one commands act on when not told which."""
        return self.use_cases[0]

    @property
    def names(self) -> list[str]:
        return [u.name for u in self.use_cases]

    def use_case(self, name: str | None = None) -> Settings:
        if name is None:
            return self.default
        for use_case in self.use_cases:
            if use_case.name == name:
                return use_case
        raise ConfigError(f"there is no use case {name!r}; this project has {', '.join(self.names)}")

    def select(self, name: str | None = None) -> list[Settings]:
        """One use case, or every one when ``name`` is None."""
        return self.use_cases if name is None else [self.use_case(name)]

    def owner_of_step(self, step_key: str, run_tags: dict[str, str]) -> str:
        """The use case a step works for: its run's tag, else (an ad-hoc materialization) the use
        case whose name prefixes the step key (``sales__sales_model``, ``sales_features_checks``)."""
        if run_tags.get(USE_CASE_TAG):
            return run_tags[USE_CASE_TAG]
        owners = [n for n in self.names if step_key.startswith(f"{n}_")]
        return max(owners, key=len, default="")

    def by_endpoint(self, endpoint: str) -> Settings | None:
        """The use case serving ``endpoint`` (None: no use case names it)."""
        return next((u for u in self.use_cases if u.serving.endpoint == endpoint), None)


def load_settings(target: str | None = None, extra_file: str | Path | None = None,
                  use_case: str | None = None) -> Settings:
    """One use case's settings (default: the first) for ``target``; see ``load_project``."""
    return load_project(target, extra_file).use_case(use_case)


def _project_wide_keys_in(section: dict) -> list[str]:
    """The project-wide settings ``section`` sets, as dotted names (``serving.port``)."""
    shared, _ = _split_project_wide(section)
    return [key if _PROJECT_WIDE[key] is None else f"{key}.{sub}" for key, value in shared.items()
            for sub in ([None] if _PROJECT_WIDE[key] is None else value)]


def _check_use_case_sections(path: Path, layer: dict) -> None:
    sections = layer.get("use_cases")
    if sections is None:
        return
    if "name" in layer:
        raise ConfigError(f"{path}: `name` belongs to a use case; with `use_cases`, each entry's key is its name")
    if not isinstance(sections, dict) or not all(isinstance(v, dict | None) for v in sections.values()):
        raise ConfigError(f"{path}: `use_cases` must map each use case's name to its settings")
    for use_case, section in sections.items():
        shared = _project_wide_keys_in(section or {})
        if shared:
            raise ConfigError(f"{path}: use case {use_case!r} sets {', '.join(shared)}, which the whole project "
                              "shares: set it at the top level")


def _split_project_wide(own: dict) -> tuple[dict, dict]:
    """A file's settings as (what the project shares, what belongs to its use case)."""
    shared, use_case = {}, {}
    for key, value in own.items():
        sub = _PROJECT_WIDE.get(key, ())
        if key in _PROJECT_WIDE and sub is None:
            shared[key] = value
        elif sub and isinstance(value, dict):
            if any(k in value for k in sub):
                shared[key] = {k: v for k, v in value.items() if k in sub}
            if any(k not in sub for k in value):
                use_case[key] = {k: v for k, v in value.items() if k not in sub}
        else:
            use_case[key] = value
    return shared, use_case


def _single_use_case(layers: list[dict]) -> list[dict]:
    """Layers for a last file in today's single-use-case format (no ``use_cases``): it describes the
    project's only use case. With a dataset of its own (another ``dataset.name``) it replaces the
    shipped use cases whole, named by its ``name`` or else ``dataset.name``; otherwise it adjusts
    (and may rename) the first one, the demo, as such a file always did. What the project shares
    (``catalog``, ``serving.port``, ...) stays shared."""
    own, shipped = layers[-1], layers[:-1]
    sections: dict = {}
    for layer in shipped:
        sections = deep_merge(sections, layer.get("use_cases") or {})
    first = next(iter(sections))
    dataset = (own.get("dataset") or {}).get("name")
    replaced = dataset is not None and dataset != ((sections[first] or {}).get("dataset") or {}).get("name")
    name = str(own["name"]) if "name" in own else (str(dataset) if replaced else first)
    kept = () if replaced else (first,)
    shipped = [{**{k: v for k, v in layer.items() if k != "use_cases"},
                "use_cases": {name: section for u, section in (layer.get("use_cases") or {}).items() if u in kept}}
               for layer in shipped]
    shared, use_case = _split_project_wide({k: v for k, v in own.items() if k != "name"})
    return [*shipped, {**shared, "use_cases": {name: use_case}}]


def load_project(target: str | None = None, extra_file: str | Path | None = None) -> Project:
    """Every use case of the project for ``target`` (default: ``MLOPS_TARGET`` or ``local``).

    ``conf/base.yaml``, ``conf/<target>.yaml`` and the ``MLOPS_CONFIG`` file are layered in that
    order; in each, the top level holds defaults every use case shares and ``use_cases.<name>`` one
    use case's own settings, which win over the defaults. A ``MLOPS_CONFIG`` file without
    ``use_cases`` is in today's single-use-case format: it describes the only use case (see
    ``_single_use_case``).

    A remote step (on a Databricks cluster) gets the launching process's project, resolved, in
    ``MLOPS_SETTINGS_JSON``: it runs with exactly the configuration its run was launched with."""
    shipped = os.environ.get(SETTINGS_JSON_ENV)
    if shipped and target is None and extra_file is None:
        return Project.model_validate_json(shipped)
    target = target or os.environ.get("MLOPS_TARGET") or "local"
    if target not in TARGETS:
        raise ConfigError(f"MLOPS_TARGET={target!r} is not a target; choose one of {', '.join(TARGETS)}")
    extra_file = extra_file or os.environ.get("MLOPS_CONFIG") or None
    files = [CONF_DIR / "base.yaml", CONF_DIR / f"{target}.yaml"]
    if extra_file:
        files.append(Path(extra_file))
    layers = [_expand_env(_read_yaml(path)) for path in files]
    sources = " + ".join(str(f) for f in files)
    for path, layer in zip(files, layers):
        _check_use_case_sections(path, layer)
    if extra_file and "use_cases" not in layers[-1]:
        layers = _single_use_case(layers)
    top: dict = {}
    for layer in layers:
        top = deep_merge(top, {k: v for k, v in layer.items() if k != "use_cases"})
    missing = [k for k in ("catalog", "schema") if not isinstance(top.get(k), str)]
    if missing:
        raise ConfigError(f"invalid configuration for target {target!r} ({sources}): {', '.join(missing)} "
                          "must be set, as text")
    use_case_names = list(dict.fromkeys(n for layer in layers for n in (layer.get("use_cases") or {})))
    if not use_case_names:
        raise ConfigError(f"invalid configuration for target {target!r} ({sources}): no use case; add one "
                          "under `use_cases`")
    use_cases = []
    for name in use_case_names:
        # The shared top level of every layer, then this use case's section of every layer: the
        # use case's own settings win over the shared defaults, and within each an upper layer (a
        # target, your file) wins over a lower one. Each part gets the final names before it is
        # merged, so a key written `{name}_features` in one and `sales_features` in another (use
        # case sales) is one key.
        names = {"name": str(name), "catalog": top["catalog"], "schema": top["schema"]}
        parts = [*({k: v for k, v in layer.items() if k != "use_cases"} for layer in layers),
                 *((layer.get("use_cases") or {}).get(name) or {} for layer in layers)]
        raw: dict = {}
        for part in parts:
            raw = deep_merge(raw, _expand_names(part, names))
        try:
            use_cases.append(Settings.model_validate({**raw, "name": name}))
        except ValidationError as exc:
            raise ConfigError(f"invalid configuration for target {target!r}, use case {name!r} "
                              f"({sources}):\n{exc}") from None
    return Project(use_cases=use_cases)
