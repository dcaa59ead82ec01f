"""The model's lifecycle: how it is trained, validated, registered, served and monitored."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from .base import SettingsModel
from .schema_data import LandingFormat


class ModelSpec(SettingsModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    class_path: str = Field(alias="class")
    params: dict[str, Any] = Field(default_factory=dict)


class TrainingSettings(SettingsModel):
    test_size: float = Field(0.2, gt=0, lt=1)
    seed: int = 42
    # At most this many rows are trained on (a seeded, stratified sample of the train split); the
    # holdout is the test split sampled by the same fraction. Bounds the training step's memory.
    max_rows: int = Field(1_000_000, ge=100)
    model: ModelSpec


class Bound(SettingsModel):
    min: float | None = None
    max: float | None = None


def bound_text(min_value: float | None, max_value: float | None) -> str:
    """``>= 0.75``, ``<= 0.55`` or both, for messages and the UI."""
    parts = [f">= {min_value}" if min_value is not None else "", f"<= {max_value}" if max_value is not None else ""]
    return " and ".join(p for p in parts if p)


class ValidationSettings(SettingsModel):
    thresholds: dict[str, Bound]
    compare_metric: str = "roc_auc"
    max_regression: float = Field(0.0, ge=0)


class InferenceSettings(SettingsModel):
    decision_threshold: float = Field(0.5, gt=0, lt=1)


class GroundTruthSettings(LandingFormat):
    """Outcomes that arrive after the predictions (the label becomes known weeks after the scoring):
    files with the dataset's key, its label and the time the outcome was observed."""

    time_column: str = "label_time"
    # An outcome judges the newest prediction made for its key at most this long before it.
    max_delay_days: float = Field(90, gt=0)
    # Retraining learns from them too, each with its key's features as of `time_column`.
    learn: bool = True


class MonitoringSettings(SettingsModel):
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


class ServingSettings(SettingsModel):
    endpoint: str
    # blue_green: new champion loaded at 0 %, smoke-tested, shifted to 100 %, old one retired.
    # canary: champion (100 - canary_percent) % / validated challenger canary_percent %.
    # shadow: champion answers; a validated challenger gets a mirror of every request (captured only).
    strategy: Literal["blue_green", "canary", "shadow"] = "blue_green"
    canary_percent: int = Field(10, ge=1, le=50)
    workload_size: str = "Small"
    scale_to_zero: bool = False
    host: str = "127.0.0.1"   # local gateway
    port: int = Field(8765, ge=0, le=65535)  # 0: any free port (see LocalServingBackend)
    capture_batch_size: int = Field(2000, ge=1)
    capture_flush_seconds: float = Field(1.0, gt=0)
    max_body_bytes: int = Field(1 << 20, ge=1024)
    max_rows: int = Field(10_000, ge=1)
    ready_timeout_seconds: float = Field(300, gt=0)


class MlflowSettings(SettingsModel):
    tracking_uri: str | None = None  # local default: SQLite under `root`
    registry_uri: str | None = None  # local default: the tracking store
    experiment: str
    model_name: str


