"""Problem types: what a model predicts, and how it is scored, judged and drawn.

``classification``: a binary classifier with ``predict_proba``; its score is the positive class's
probability, and the label is 1 where the label column holds the positive value. ``regression``:
a regressor; its score is the predicted number, and the label is the column itself, as a double.
Pure ML (no Dagster): the stages ask ``problem_type(settings.problem_type)`` what to do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..settings import PROBLEM_METRICS
from .evaluation import evaluate, evaluate_regression, positive_probability, save_plots, save_regression_plots

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

# Regression rows are split and sampled seeded but unstratified: one constant stratum.
_ONE_STRATUM = "_stratum"


@dataclass(frozen=True)
class ProblemType:
    name: str
    predict_method: str  # what serving and batch scoring call on the logged pipeline
    score: Callable[[Any, Any], np.ndarray]  # (model, features) -> one number per row
    _evaluate: Callable[..., dict[str, float]]
    _plots: Callable[..., list[Path]]
    _stratified: bool

    @property
    def metrics(self) -> tuple[str, ...]:
        return PROBLEM_METRICS[self.name]

    @property
    def classifies(self) -> bool:
        return self.name == "classification"

    def label(self, column: Column, positive_label: Any) -> Column:
        """The training target from the raw label column."""
        from pyspark.sql import functions as F

        return (column == F.lit(positive_label)).cast("int") if self.classifies else column.cast("double")

    def evaluate(self, y_true, scores, threshold: float = 0.5) -> dict[str, float]:
        return (
            self._evaluate(y_true, scores, threshold) if self.classifies else self._evaluate(y_true, scores)
        )

    def save_plots(self, y_true, scores, out_dir: str | Path, threshold: float = 0.5) -> list[Path]:
        return (
            self._plots(y_true, scores, out_dir, threshold)
            if self.classifies
            else self._plots(y_true, scores, out_dir)
        )

    def strata(self, frame: DataFrame, label: str) -> tuple[DataFrame, str]:
        """``frame`` and the column its samples and splits are stratified on."""
        if self._stratified:
            return frame, label
        from pyspark.sql import functions as F

        return frame.withColumn(_ONE_STRATUM, F.lit(0)), _ONE_STRATUM

    def check_estimator(self, estimator, class_path: str) -> None:
        """Raise a clear ValueError when ``estimator`` cannot solve this problem."""
        from sklearn.base import is_regressor

        if self.classifies and not hasattr(estimator, "predict_proba"):
            raise ValueError(
                f"training.model.class {class_path!r} has no predict_proba: pick a probabilistic "
                "classifier, or set problem_type: regression for a regressor"
            )
        if not self.classifies and not is_regressor(estimator):
            raise ValueError(
                f"training.model.class {class_path!r} is not a regressor: pick one (e.g. "
                "sklearn.ensemble.HistGradientBoostingRegressor), or set problem_type: classification"
            )


PROBLEM_TYPES = {
    "classification": ProblemType(
        "classification", "predict_proba", positive_probability, evaluate, save_plots, _stratified=True
    ),
    "regression": ProblemType(
        "regression",
        "predict",
        lambda model, frame: np.asarray(model.predict(frame), float),
        evaluate_regression,
        save_regression_plots,
        _stratified=False,
    ),
}


def problem_type(name: str) -> ProblemType:
    return PROBLEM_TYPES[name]
