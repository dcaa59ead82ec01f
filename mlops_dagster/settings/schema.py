"""One use case's settings, complete: the sections of ``schema_*`` put together, checked against
each other, and the names and paths derived from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from .base import SettingsModel
from .constants import INGESTED_AT, PROBLEM_METRICS
from .names import Names, capture_prefix
from .schema_data import ColumnRule, DatasetSettings, FeatureSettings, FeatureStoreSettings
from .schema_databricks import CostSettings, DatabricksSettings
from .schema_model import (
    InferenceSettings,
    MlflowSettings,
    MonitoringSettings,
    ServingSettings,
    TrainingSettings,
    ValidationSettings,
)
from .schema_operations import AutomationSettings, GovernanceSettings
from .schema_retention import RetentionSettings


class Settings(SettingsModel):
    """One use case's settings, complete: its own sections laid over the project's shared ones."""

    target: Literal["local", "dev", "staging", "prod"]
    """Where the project runs: on this machine, or on a Databricks workspace (set by each target's file)."""
    problem_type: Literal["classification", "regression"] = "classification"
    """What the use case's model predicts: a binary class (with its probability) or a number."""
    demo: Literal["telco", "houses"] | None = None
    """A shipped demo's data generator (`mlops generate`; `mlops run` fills an empty landing folder)."""
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    """The use case (its key under `use_cases`): every asset and table is named from it, and config
    strings may say `{name}` (and `{catalog}`, `{schema}`) to name models, experiments and endpoints."""
    catalog: str
    """The Unity Catalog catalog holding every table of the project (locally, a folder)."""
    schema_: str = Field(alias="schema")
    """The schema in that catalog holding every table of the project (every use case's)."""
    root: Path | None = None
    """Where tables, landing files, reports and MLflow live on `local`. On a Databricks target it is
    unset (Unity Catalog tables and volumes); set it to a path the cluster reaches (/dbfs/...)
    to keep delta-rs tables there instead."""
    landing: str | None = None
    """The use case's landing folder: a path or an object store URI such as s3://bucket/prefix
    (unset: `<name>` in the project's `landing` folder or volume)."""
    mlflow: MlflowSettings
    """MLflow tracking and registry."""
    spark: dict[str, str] = Field(default_factory=dict)
    """Spark configuration of the run's SparkSession."""
    max_concurrent_steps: int = Field(4, ge=1)
    """Steps of a run at once, each in a thread of the run's process (1: one step at a time)."""
    dataset: DatasetSettings
    """The raw data and its contract."""
    features: FeatureSettings
    """The model's inputs."""
    training: TrainingSettings
    """How the model is trained."""
    validation: ValidationSettings
    """What a challenger must reach."""
    inference: InferenceSettings = InferenceSettings()
    """Batch predictions."""
    monitoring: MonitoringSettings = MonitoringSettings()
    """Drift, decay and fairness."""
    automation: AutomationSettings = AutomationSettings()
    """Sensors, schedules and alerts."""
    serving: ServingSettings
    """The serving endpoint."""
    governance: GovernanceSettings = GovernanceSettings()
    """Model cards, approvals, access and promotion."""
    databricks: DatabricksSettings = DatabricksSettings()
    """Databricks targets: clusters and credentials."""
    feature_store: FeatureStoreSettings = FeatureStoreSettings()
    """The feature registry and the online store."""
    cost: CostSettings = CostSettings()
    """What compute costs."""
    retention: RetentionSettings = RetentionSettings()
    """How long rows, table versions, reports, runs and model versions are kept; compaction."""

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
            store["training_lookups"] = [
                {"table": features, "lookup_key": [key], "timestamp_lookup_key": INGESTED_AT}
            ]
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
    def _consistent(self) -> Settings:
        if not (self.mlflow.tracking_uri and self.mlflow.registry_uri):
            raise ValueError("mlflow.tracking_uri and mlflow.registry_uri are required")
        unknown = [
            c
            for c in [*self.features.categorical, *self.features.numerical]
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
        judged = {
            *PROBLEM_METRICS[self.problem_type],
            *(("brier_score", "positive_rate") if self.classifies else ()),
        }
        unknown = sorted({m for gaps in mon.max_slice_gaps.values() for m in gaps if m not in judged})
        if unknown:
            raise ValueError(
                f"monitoring.max_slice_gaps names {unknown}; a {self.problem_type} model's figures are "
                f"{', '.join(sorted(judged))}"
            )
        if mon.ground_truth.time_column in (ds.key, ds.label):
            raise ValueError(
                f"monitoring.ground_truth.time_column {mon.ground_truth.time_column!r} is the dataset's "
                "key or label: name the outcome files' time column"
            )

    def _fits_the_problem_type(self) -> None:
        metrics = PROBLEM_METRICS[self.problem_type]
        ds, val = self.dataset, self.validation
        if self.classifies and ds.positive_label is None:
            raise ValueError(
                f"dataset.positive_label is required for classification: which value of {ds.label} "
                "is the positive class"
            )
        if not self.classifies and ds.columns[ds.label].type not in ("double", "long"):
            raise ValueError(
                f"dataset.columns.{ds.label} is the label of a regression: its type must be double "
                f"or long, not {ds.columns[ds.label].type}"
            )
        unknown = [m for m in [*val.thresholds, val.compare_metric] if m not in metrics]
        if unknown:
            raise ValueError(
                f"validation names {sorted(set(unknown))}, which a {self.problem_type} model does not "
                f"report (it reports {', '.join(metrics)}): set validation.thresholds and "
                "validation.compare_metric for this use case"
            )

    def _feature_table_matches_the_features_asset(self) -> None:
        """``<name>_features`` is written by the features asset: its registry entry must describe it."""
        features = self.names.features
        declared = self.feature_store.tables.get(features)
        if declared is None:
            raise ValueError(
                f"feature_store.tables must declare {features} (the table the features asset writes; "
                "'{name}_features' in the config names it)"
            )
        where = f"feature_store.tables.{features}"
        if declared.keys != [self.dataset.key]:
            raise ValueError(f"{where}.keys must be [{self.dataset.key}] (dataset.key), not {declared.keys}")
        if declared.timestamp_key != INGESTED_AT:
            raise ValueError(
                f"{where}.timestamp_key must be {INGESTED_AT}: each feature row is stamped "
                "with the ingestion time of the raw row it was computed from"
            )
        for name, spec in declared.columns.items():
            # A description of a feature this config does not compute (a lower layer's) is unused.
            if (
                name in self.features.columns
                and spec.dtype is not None
                and spec.dtype != self.feature_dtype(name)
            ):
                raise ValueError(
                    f"{where}.columns.{name}.dtype is {spec.dtype!r} but the features asset "
                    f"writes it as {self.feature_dtype(name)!r}"
                )

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
        return (
            self.features.columns
            if table == self.names.features
            else list(self.feature_store.tables[table].columns)
        )

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
        return {
            ds.key: ds.columns[ds.key],
            ds.label: ds.columns[ds.label],
            self.monitoring.ground_truth.time_column: ColumnRule(type="timestamp"),
        }

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
        return self.table(f"{capture_prefix(endpoint or self.serving.endpoint)}_payload")

    def table(self, name: str) -> str:
        """The three-level Unity Catalog name of one of this project's tables."""
        return f"{self.catalog}.{self.schema_}.{name}"
