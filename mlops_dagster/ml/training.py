"""Training: the stratified split and the scikit-learn pipeline named by configuration."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pandas as pd

LABEL = "label"
SPLIT = "split"


def stratified_split(frame: pd.DataFrame, key: str, test_size: float, seed: int, label: str = LABEL) -> pd.DataFrame:
    """``frame`` with a ``split`` column (``train`` / ``test``), stratified on ``label``, seeded.

    Rows are ordered by the unique ``key`` first, so the split does not depend on the order in
    which the table happened to be read.
    """
    from sklearn.model_selection import train_test_split

    if frame[label].nunique() < 2:
        raise ValueError(
            f"the training set has a single class in {label!r} ({len(frame)} rows): "
            "a classifier needs examples of both outcomes"
        )
    if frame[key].duplicated().any():
        raise ValueError(f"the training set has duplicated {key!r} values: the key must be unique")
    ordered = frame.sort_values(key).reset_index(drop=True)
    _, test_idx = train_test_split(
        np.arange(len(ordered)), test_size=test_size, random_state=seed, stratify=ordered[label]
    )
    split = np.full(len(ordered), "train", dtype=object)
    split[test_idx] = "test"
    return ordered.assign(**{SPLIT: split})


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
