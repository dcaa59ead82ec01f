"""Data drift between a reference (training) set and current data, with Evidently's DataDriftPreset."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    method: str
    score: float
    threshold: float
    drifted: bool


@dataclass
class DriftResult:
    dataset_drift: bool
    drift_share: float          # share of columns that drifted
    drifted_columns: int
    columns: list[ColumnDrift]
    threshold_share: float
    snapshot: Any = field(repr=False)
    # The model's own output (probability or predicted value) on both sides, apart from the features.
    prediction: ColumnDrift | None = None

    def save_html(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.snapshot.save_html(str(path))
        return path


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numerical: list[str],
    categorical: list[str],
    drift_share: float = 0.5,
    metadata: dict[str, str] | None = None,
    prediction: str | None = None,
) -> DriftResult:
    """Run DataDriftPreset on the given columns; per-column verdicts are Evidently's own tests.
    ``metadata`` (e.g. which rows each side sampled) is stored with the report. ``prediction``: a
    numeric column of the model's output on both sides, tested on its own (prediction drift) and
    not counted in the features' drift share."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    if current.empty:
        raise ValueError("no current data to compare with the reference: the current window is empty")
    columns = [*numerical, *categorical]
    extra = [prediction] if prediction else []
    definition = DataDefinition(numerical_columns=[*numerical, *extra], categorical_columns=categorical)
    metrics = [DataDriftPreset(columns=columns, drift_share=drift_share), *(ValueDrift(column=c) for c in extra)]
    snapshot = Report(metrics, include_tests=True).run(
        current_data=Dataset.from_pandas(current[[*columns, *extra]], data_definition=definition),
        reference_data=Dataset.from_pandas(reference[[*columns, *extra]], data_definition=definition),
        metadata=metadata or {},
    )
    result = snapshot.dict()
    failed = {t["metric_config"]["metric_id"] for t in result["tests"] if t["status"] == "FAIL"}
    per_column, share, count, dataset_drift = [], 0.0, 0, False
    for metric in result["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":ValueDrift"):
            per_column.append(ColumnDrift(
                column=config["column"], method=config["method"], score=float(metric["value"]),
                threshold=float(config["threshold"]), drifted=metric["id"] in failed,
            ))
        elif config["type"].endswith(":DriftedColumnsCount"):
            share, count = float(metric["value"]["share"]), int(metric["value"]["count"])
            dataset_drift = metric["id"] in failed
    predicted = next((c for c in per_column if c.column == prediction), None)
    features = [c for c in per_column if c.column != prediction]
    return DriftResult(dataset_drift, share, count, features, drift_share, snapshot, predicted)
