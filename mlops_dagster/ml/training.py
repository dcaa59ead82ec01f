"""Training: the bounded rows a model learns from, and the scikit-learn pipeline named by configuration."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import pandas as pd

from .sampling import SPLIT, Sample, stratified_fraction, stratified_sample

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkDataFrame

LABEL = "label"
__all__ = ["LABEL", "SPLIT", "bounded_splits", "build_pipeline", "fit", "load_estimator_class",
           "skops_trusted_types", "to_pandas"]  # SPLIT: the split column, named in sampling.py


def bounded_splits(training_set: "SparkDataFrame", key: str, max_rows: int, seed: int) -> tuple[Sample, Sample]:
    """The rows a model learns from and is judged on, bounded whatever the table's size.

    Train: the ``train`` split, or a seeded, stratified sample of ``max_rows`` of it when it is
    larger. Holdout: the ``test`` split sampled by the same fraction. Both depend only on the table
    version, the seed and ``max_rows``, so every reader (training, the champion comparison) gets
    the same rows."""
    from pyspark.sql import functions as F

    train = stratified_sample(training_set.where(F.col(SPLIT) == "train"), LABEL, max_rows, seed, key)
    holdout = stratified_fraction(training_set.where(F.col(SPLIT) == "test"), LABEL,
                                  train.used_rows / max(train.available_rows, 1), seed, key)
    return train, holdout


def to_pandas(frame: "SparkDataFrame", columns: list[str]) -> pd.DataFrame:
    """A bounded Spark frame in pandas, through Arrow (each distinct string stored once)."""
    return frame.select(*columns).toArrow().to_pandas()


def load_estimator_class(class_path: str) -> type:
    """The estimator class from its import path, with a clear error when it cannot be found."""
    module_name, _, class_name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError):
        raise ValueError(
            f"training.model.class {class_path!r} is not an importable class "
            "(e.g. sklearn.linear_model.LogisticRegression)"
        ) from None
    if not hasattr(cls, "predict_proba"):
        raise ValueError(f"training.model.class {class_path!r} has no predict_proba: pick a probabilistic classifier")
    return cls


def build_pipeline(class_path: str, params: dict[str, Any], categorical: list[str], numerical: list[str]):
    """Impute, one-hot encode categoricals, scale numerics, then the configured classifier."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    try:
        classifier = load_estimator_class(class_path)(**params)
    except TypeError as exc:
        raise ValueError(f"training.model.params do not fit {class_path}: {exc}") from None
    preprocess = ColumnTransformer(
        [
            ("categorical", Pipeline([
                ("impute", SimpleImputer(strategy="most_frequent")),
                ("encode", OneHotEncoder(handle_unknown="ignore")),
            ]), categorical),
            ("numerical", Pipeline([
                ("impute", SimpleImputer(strategy="median")),
                ("scale", StandardScaler()),
            ]), numerical),
        ]
    )
    return Pipeline([("preprocess", preprocess), ("classifier", classifier)])


def fit(pipeline, frame: pd.DataFrame, features: list[str], label: str = LABEL):
    return pipeline.fit(frame[features], frame[label].astype(int))


# Libraries whose types we trust in a model this process just trained (never in one we load).
_TRUSTED_LIBRARIES = {"sklearn", "numpy", "scipy"}


def skops_trusted_types(model) -> list[str]:
    """Types of ``model`` that skops (MLflow's safe sklearn format) must be told to trust.

    skops refuses to reload types it does not know; for a model trained here, the types that come
    from scikit-learn, NumPy and SciPy are ours to vouch for. Anything else stays untrusted, so
    saving such a model fails loudly instead of trusting arbitrary code.
    """
    import skops.io as sio

    untrusted = sio.get_untrusted_types(data=sio.dumps(model))
    return [t for t in untrusted if t.split(".", 1)[0] in _TRUSTED_LIBRARIES]
