"""Model evaluation: metrics, plots, and the validation rules a challenger must pass."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..settings import LOWER_IS_BETTER, PROBLEM_METRICS, bound_text

METRICS = PROBLEM_METRICS["classification"]
REGRESSION_METRICS = PROBLEM_METRICS["regression"]


def positive_probability(model, frame: pd.DataFrame) -> np.ndarray:
    """Probability of the positive class for each row."""
    return model.predict_proba(frame)[:, 1]


def evaluate(y_true, probability, threshold: float = 0.5) -> dict[str, float]:
    """ROC AUC, F1, precision, recall, log loss and accuracy at ``threshold``."""
    from sklearn import metrics

    y_true = np.asarray(y_true).astype(int)
    predicted = (np.asarray(probability) >= threshold).astype(int)
    return {
        "roc_auc": float(metrics.roc_auc_score(y_true, probability)),
        "f1": float(metrics.f1_score(y_true, predicted, zero_division=0)),
        "precision": float(metrics.precision_score(y_true, predicted, zero_division=0)),
        "recall": float(metrics.recall_score(y_true, predicted, zero_division=0)),
        "log_loss": float(metrics.log_loss(y_true, np.clip(probability, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "accuracy": float(metrics.accuracy_score(y_true, predicted)),
    }


def evaluate_regression(y_true, prediction) -> dict[str, float]:
    """RMSE, MAE and R² of a regressor's predictions."""
    from sklearn import metrics

    y_true, prediction = np.asarray(y_true, dtype=float), np.asarray(prediction, dtype=float)
    return {
        "rmse": float(np.sqrt(metrics.mean_squared_error(y_true, prediction))),
        "mae": float(metrics.mean_absolute_error(y_true, prediction)),
        "r2": float(metrics.r2_score(y_true, prediction)),
    }


def save_plots(y_true, probability, out_dir: str | Path, threshold: float = 0.5) -> list[Path]:
    """ROC curve, precision-recall curve and confusion matrix as PNG files."""
    from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

    y_true = np.asarray(y_true).astype(int)
    predicted = (np.asarray(probability) >= threshold).astype(int)
    return _draw(
        out_dir,
        {
            "roc_curve.png": lambda ax: RocCurveDisplay.from_predictions(y_true, probability, ax=ax),
            "precision_recall_curve.png": lambda ax: PrecisionRecallDisplay.from_predictions(
                y_true, probability, ax=ax
            ),
            "confusion_matrix.png": lambda ax: ConfusionMatrixDisplay.from_predictions(
                y_true, predicted, ax=ax
            ),
        },
    )


def save_regression_plots(y_true, prediction, out_dir: str | Path) -> list[Path]:
    """Actual vs predicted, and residuals vs predicted, as PNG files."""
    from sklearn.metrics import PredictionErrorDisplay

    y_true, prediction = np.asarray(y_true, dtype=float), np.asarray(prediction, dtype=float)
    return _draw(
        out_dir,
        {
            f"{kind}.png": lambda ax, kind=kind: PredictionErrorDisplay.from_predictions(
                y_true, prediction, kind=kind, ax=ax, subsample=2000, random_state=0
            )
            for kind in ("actual_vs_predicted", "residual_vs_predicted")
        },
    )


def _draw(out_dir: str | Path, plots: dict) -> list[Path]:
    """Each plot (file name -> a function drawing on an axis) saved as a small PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, draw in plots.items():
        fig, ax = plt.subplots(figsize=(5, 4))
        draw(ax)
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=80)
        plt.close(fig)
        paths.append(out_dir / name)
    return paths


@dataclass(frozen=True)
class ThresholdResult:
    metric: str
    observed: float | None
    min: float | None
    max: float | None

    @property
    def passed(self) -> bool:
        if self.observed is None or np.isnan(self.observed):
            return False
        return (self.min is None or self.observed >= self.min) and (
            self.max is None or self.observed <= self.max
        )

    def describe(self) -> str:
        observed = "missing" if self.observed is None else f"{self.observed:.4f}"
        return f"{self.metric} {observed} (required {bound_text(self.min, self.max)}): {'pass' if self.passed else 'FAIL'}"


def check_thresholds(metrics: dict[str, float], thresholds: dict) -> list[ThresholdResult]:
    """Each configured bound checked against the observed metric; a missing metric fails."""
    return [
        ThresholdResult(name, metrics.get(name), bound.min, bound.max) for name, bound in thresholds.items()
    ]


@dataclass(frozen=True)
class Validation:
    """The outcome of checking a challenger's metrics against every configured threshold."""

    results: list[ThresholdResult]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def status(self) -> str:
        """What the registry records of it: ``passed`` or ``failed``."""
        return "passed" if self.passed else "failed"

    @property
    def summary(self) -> str:
        """Every threshold's verdict, in configuration order."""
        return "; ".join(r.describe() for r in self.results)

    def rows(self) -> list[dict]:
        """One row per threshold (observed rounded to 4 places), for a table beside the bounds."""
        return [
            {
                "metric": r.metric,
                "observed": round(r.observed, 4) if r.observed is not None else None,
                "min": r.min,
                "max": r.max,
                "passed": r.passed,
            }
            for r in self.results
        ]

    def observed(self) -> dict[str, float]:
        """``<metric>_observed`` per threshold, NaN for a missing metric."""
        return {
            f"{r.metric}_observed": r.observed if r.observed is not None else float("nan")
            for r in self.results
        }


def validate(metrics: dict[str, float], thresholds: dict) -> Validation:
    """The challenger's ``metrics`` checked against ``thresholds`` (validation.thresholds)."""
    return Validation(check_thresholds(metrics, thresholds))


def compare_to_champion(
    challenger: dict[str, float], champion: dict[str, float] | None, metric: str, max_regression: float
) -> tuple[bool, str]:
    """Whether the challenger may replace the champion, and why, on the same holdout."""
    if champion is None:
        return True, "there is no champion yet"
    new, old = challenger[metric], champion[metric]
    delta = (old - new) if metric in LOWER_IS_BETTER else (new - old)
    verdict = (
        f"challenger {metric} {new:.4f} vs champion {old:.4f} on the same holdout "
        f"(change {delta:+.4f}, allowed regression {max_regression})"
    )
    if delta >= -max_regression:
        return True, verdict
    return False, verdict


def comparison_rows(
    challenger_version: str,
    challenger: dict[str, float],
    champion_version: str | None,
    champion: dict[str, float] | None,
) -> list[dict]:
    """The challenger's holdout metrics and, when the champion was scored on the same holdout, the
    previous champion's: one row per model, rounded to 4 places."""
    rows = [
        {
            "role": "challenger",
            "version": challenger_version,
            **{k: round(v, 4) for k, v in challenger.items()},
        }
    ]
    if champion is not None:
        rows.append(
            {
                "role": "previous champion",
                "version": champion_version,
                **{k: round(v, 4) for k, v in champion.items()},
            }
        )
    return rows
