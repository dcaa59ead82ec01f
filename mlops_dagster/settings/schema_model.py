"""The model's lifecycle: how it is trained, validated, registered, served and monitored."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from .base import SettingsModel
from .schema_data import LandingFormat


class ModelSpec(SettingsModel):
    """Which scikit-learn estimator is trained, and with what parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    class_path: str = Field(alias="class")
    """The estimator's import path (a classifier with predict_proba, or a regressor)."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Arguments to its constructor; replaced as a whole by an upper layer."""


class TrainingSettings(SettingsModel):
    """How the model is trained."""

    test_size: float = Field(0.2, gt=0, lt=1)
    """The share of labelled rows held out to evaluate and validate on (stratified for a classifier)."""
    seed: int = 42
    """The seed of every split and sample, so a run can be repeated."""
    max_rows: int = Field(1_000_000, ge=100)
    """At most this many rows are trained on (a seeded, stratified sample of the train split); the
    holdout is the test split sampled by the same fraction. Bounds the training step's memory."""
    model: ModelSpec
    """The estimator."""


class Bound(SettingsModel):
    """The range a metric must stay in."""

    min: float | None = None
    """The lowest value allowed (for a metric where higher is better)."""
    max: float | None = None
    """The highest value allowed (for a metric where lower is better)."""


def bound_text(min_value: float | None, max_value: float | None) -> str:
    """``>= 0.75``, ``<= 0.55`` or both, for messages and the UI."""
    parts = [
        f">= {min_value}" if min_value is not None else "",
        f"<= {max_value}" if max_value is not None else "",
    ]
    return " and ".join(p for p in parts if p)


class ValidationSettings(SettingsModel):
    """What a challenger must reach on the holdout before it may become champion."""

    thresholds: dict[str, Bound]
    """Metric name to the range it must be in; replaced as a whole by an upper layer."""
    compare_metric: str = "roc_auc"
    """The metric a challenger is compared with the champion on."""
    max_regression: float = Field(0.0, ge=0)
    """How much worse than the champion's `compare_metric` a challenger may be."""


class InferenceSettings(SettingsModel):
    """How batch predictions are made."""

    decision_threshold: float = Field(0.5, gt=0, lt=1)
    """The positive-class probability at or above which `prediction` is 1."""


class GroundTruthSettings(LandingFormat):
    """Outcomes that arrive after the predictions (the label becomes known weeks after the scoring):
    files with the dataset's key, its label and the time the outcome was observed."""

    time_column: str = "label_time"
    """The outcome files' column saying when the outcome was observed."""
    max_delay_days: float = Field(90, gt=0)
    """An outcome judges the newest prediction made for its key at most this long before it."""
    learn: bool = True
    """Whether retraining learns from outcomes too, each with its key's features as of `time_column`."""


class DatabricksMonitorSettings(SettingsModel):
    """Databricks' own monitors (data profiling) on the prediction log and the inference table."""

    enabled: bool = True
    """On Databricks targets, the performance asset creates each table's monitor when missing,
    starts a refresh and reads its profile metrics back (no effect on `local`)."""
    granularities: list[str] = Field(default_factory=lambda: ["1 day"], min_length=1)
    """The monitors' time windows (Databricks' granularities: "1 hour", "1 day", "1 week", ...)."""
    assets_dir: str = "/Shared/mlops_dagster/monitors"
    """The workspace folder of the monitors' dashboards (one folder per table under it)."""
    wait_seconds: int = Field(0, ge=0)
    """How long the performance asset waits for the refresh it starts (0: it reads the metrics of
    the newest finished refresh, and the new one is read by the next run)."""


class MonitoringSettings(SettingsModel):
    """Drift, decay and fairness: how the champion and its data are watched."""

    drift_share: float = Field(0.5, gt=0, le=1)
    """The dataset drifted when at least this share of the feature columns drifted (Evidently's DataDriftPreset)."""
    sample_rows: int = Field(100_000, ge=100)
    """Reports compare seeded samples of at most this many rows of each side (reference, current)."""
    current: Literal["landing_batch", "inference_table"] = "landing_batch"
    """What "current" data is: the newest landing batch, or what the endpoint was asked to score
    (its inference table) over the last `window_hours`."""
    window_hours: float = Field(24, gt=0)
    """The endpoint's window: how far back the inference table is read when `current` is
    `inference_table`, and the length of the windows whose answers are estimated one by one."""
    ground_truth: GroundTruthSettings = GroundTruthSettings()
    """Outcome files and how they are matched to predictions."""
    max_performance_drop: float = Field(0.05, ge=0)
    """Decay: the champion's `validation.compare_metric` on labelled predictions is worse than on its
    validation holdout by more than this (e.g. 0.05 ROC AUC)."""
    estimation_band: float = Field(3.0, gt=0)
    """Performance estimated before outcomes (CBPE, DLE) is given with a band of this many standard
    errors of sampling around it."""
    max_quality_change: float = Field(0.02, ge=0)
    """Data quality: a column's null share, or a batch's share of rows refused by the contract, may
    rise by at most this much from the previous batch before the warn check fails."""
    max_categories: int = Field(1000, ge=1)
    """Data quality: at most this many distinct values of a categorical column are kept per batch."""
    min_labelled_rows: int = Field(100, ge=1)
    """A model version's figures need at least this many labelled predictions to be judged."""
    performance_rows: int = Field(1_000_000, ge=100)
    """Each figure is computed on a seeded sample of at most this many labelled predictions."""
    performance_window_days: float = Field(30, gt=0)
    """Only outcomes observed in the last this many days are judged: the figures say how models do now."""
    slices: list[str] = Field(default_factory=list)
    """Model features whose groups the champion's figures are also computed for."""
    max_slice_gaps: dict[str, dict[str, float]] = Field(default_factory=dict)
    """Per slice judged for fairness, the largest gap allowed between two of its groups, per metric
    (e.g. gender: {recall: 0.1, positive_rate: 0.1})."""
    databricks_monitor: DatabricksMonitorSettings = DatabricksMonitorSettings()
    """Databricks targets: its monitors on the prediction log and the inference table."""


class ServingSettings(SettingsModel):
    """The model serving endpoint and how a new champion is rolled out to it."""

    endpoint: str
    """The serving endpoint's name."""
    strategy: Literal["blue_green", "canary", "shadow"] = "blue_green"
    """blue_green: the new champion is loaded at 0 %, smoke-tested, shifted to 100 %, the old one
    retired; canary: champion (100 - canary_percent) %, validated challenger canary_percent %;
    shadow: the champion answers and a validated challenger gets a mirror of every request."""
    canary_percent: int = Field(10, ge=1, le=50)
    """The challenger's share of traffic under `canary`."""
    workload_size: str = "Small"
    """Databricks: the endpoint's compute size (Small, Medium, Large)."""
    scale_to_zero: bool = False
    """Databricks: whether the endpoint sleeps when idle."""
    host: str = "127.0.0.1"
    """The address the local gateway listens on."""
    auth: Literal["token", "none"] = "token"
    """token: every call to the local gateway's APIs needs `Authorization: Bearer` (mlops token create); none: no token, allowed only on a loopback host (the gateway refuses to start otherwise)."""
    model_processes: int = Field(1, ge=1, le=64)
    """The local gateway's scoring processes: 1 scores in the gateway's own process; N > 1 spawns N
    worker processes that each hold every served model and score batches at the same time (a core
    each), while the gateway's process parses, routes and captures."""
    port: int = Field(8765, ge=0, le=65535)
    """The local gateway's port; 0: any free port, chosen when it starts."""
    capture_batch_size: int = Field(2000, ge=1)
    """The local gateway appends captured requests to the inference table this many rows at a time ..."""
    capture_flush_seconds: float = Field(1.0, gt=0)
    """... or at least this often."""
    max_body_bytes: int = Field(1 << 20, ge=1024)
    """Larger requests to the local gateway are refused (413)."""
    max_rows: int = Field(10_000, ge=1)
    """The most rows one request to the local gateway may ask to score."""
    max_queued_requests: int = Field(256, ge=1)
    """The most requests one endpoint of the local gateway holds at once, waiting or being scored; past it a request is refused at once with 429 REQUEST_LIMIT_EXCEEDED and a Retry-After, as Databricks refuses an overloaded endpoint. 256 is about 0.2 s of work at the 1,250-1,600 single-row requests/s the gateway scores on 2 cores."""
    ready_timeout_seconds: float = Field(300, gt=0)
    """How long a deployment waits for the endpoint to serve its new config."""


class MlflowSettings(SettingsModel):
    """Where runs are tracked and models registered."""

    tracking_uri: str | None = None
    """The MLflow tracking server (local default: SQLite under `root`)."""
    registry_uri: str | None = None
    """The model registry (local default: the tracking store; databricks-uc: Unity Catalog)."""
    experiment: str
    """The experiment training runs are logged to."""
    model_name: str
    """The registered model's name (three levels in Unity Catalog)."""
    ui_url: str | None = None
    """Where an MLflow UI serves this tracking store (e.g. http://127.0.0.1:5000 for `mlflow ui`): the training run's `mlflow_run` metadata links there; unset, an http(s) tracking server is its own UI, otherwise the run id is shown as text."""
