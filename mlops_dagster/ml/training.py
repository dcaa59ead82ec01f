"""Training: the bounded rows a model learns from, and the scikit-learn pipeline named by configuration."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pandas as pd

from .problem import PROBLEM_TYPES, ProblemType
from .sampling import SPLIT, stratified_fraction, stratified_sample

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame as SparkDataFrame

LABEL = "label"
__all__ = [
    "LABEL",
    "MODEL_LOADING_MODULES",
    "SPLIT",
    "bounded_frames",
    "bounded_splits",
    "build_pipeline",
    "fit",
    "evaluate_holdout",
    "load_estimator_class",
    "model_requirements",
    "rows_digest",
    "run_params",
    "skops_trusted_types",
    "to_pandas",
]  # SPLIT: the split column, named in sampling.py


def bounded_splits(
    training_set: SparkDataFrame, key: str, max_rows: int, seed: int, total_rows: int, problem: ProblemType
) -> tuple[SparkDataFrame, SparkDataFrame, dict[str, int] | None]:
    """The rows a model learns from and is judged on, bounded whatever the table's size: (train,
    holdout, rows available per split, or None when nothing was sampled).

    Train: the ``train`` split, or a seeded sample of ``max_rows`` of it when it is larger
    (stratified on the label for a classifier). Holdout: the ``test`` split sampled by the same fraction. Both depend only on the table
    version, the seed and ``max_rows``, so every reader (training, the champion comparison) gets
    the same rows. ``total_rows`` (the table's, from the Delta log) spares small tables the jobs
    that count classes for sampling."""
    from pyspark.sql import functions as F

    train_split, test_split = (training_set.where(F.col(SPLIT) == side) for side in ("train", "test"))
    if total_rows <= max_rows:
        return train_split, test_split, None
    train_split, stratum = problem.strata(train_split, LABEL)
    test_split, _ = problem.strata(test_split, LABEL)
    train = stratified_sample(train_split, stratum, max_rows, seed, key)
    holdout = stratified_fraction(
        test_split, stratum, train.used_rows / max(train.available_rows, 1), seed, key
    )
    return train.frame, holdout.frame, {"train": train.available_rows, "test": holdout.available_rows}


def bounded_frames(
    read_arrow: Callable[[list[str]], pa.Table],
    read_spark: Callable[[], SparkDataFrame],
    columns: list[str],
    key: str,
    max_rows: int,
    seed: int,
    total_rows: int,
    problem: ProblemType,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int] | None]:
    """``bounded_splits`` in pandas (``columns`` of each side). A table of at most ``max_rows`` rows
    is read whole as Arrow (``read_arrow(columns)``: locally delta-rs, no Spark job; 1M rows in
    0.3 s instead of 2.3 s through Spark) and split on its ``split`` column: the same rows. Larger
    ones are sampled in Spark (``read_spark()``) and only the samples come back."""
    import pyarrow.compute as pc

    if total_rows <= max_rows:
        table = read_arrow([*columns, SPLIT])
        train, test = (
            table.filter(pc.equal(table[SPLIT], side)).select(columns).to_pandas()
            for side in ("train", "test")
        )
        return train, test, None
    train, test, available = bounded_splits(read_spark(), key, max_rows, seed, total_rows, problem)
    return to_pandas(train, columns), to_pandas(test, columns), available


def to_pandas(frame: SparkDataFrame, columns: list[str]) -> pd.DataFrame:
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
    return cls


def build_pipeline(
    class_path: str,
    params: dict[str, Any],
    categorical: list[str],
    numerical: list[str],
    problem: ProblemType = PROBLEM_TYPES["classification"],
):
    """Impute, one-hot encode categoricals, scale numerics, then the configured estimator (a
    probabilistic classifier or a regressor, as ``problem`` asks).

    The encoded matrix stays sparse for an estimator that takes sparse input (scikit-learn's own
    tags say which): made dense, 800,000 rows cost about 4 s more to fit and 2 s more to score,
    for the same coefficients."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklearn.utils import get_tags

    try:
        estimator = load_estimator_class(class_path)(**params)
    except TypeError as exc:
        raise ValueError(f"training.model.params do not fit {class_path}: {exc}") from None
    problem.check_estimator(estimator, class_path)
    preprocess = ColumnTransformer(
        [
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("encode", OneHotEncoder(handle_unknown="ignore")),
                    ]
                ),
                categorical,
            ),
            (
                "numerical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="median")),
                        ("scale", StandardScaler()),
                    ]
                ),
                numerical,
            ),
        ],
        sparse_threshold=1.0 if get_tags(estimator).input_tags.sparse else 0.0,
    )
    return Pipeline(
        [("preprocess", preprocess), ("classifier" if problem.classifies else "regressor", estimator)]
    )


def fit(pipeline, frame: pd.DataFrame, features: list[str], label: str = LABEL):
    """Fit on the features and the label as it is (0/1 for a classifier, a number for a regressor)."""
    return pipeline.fit(frame[features], frame[label])


def evaluate_holdout(
    problem: ProblemType, model, holdout: pd.DataFrame, features: list[str], threshold: float
) -> tuple[Any, dict[str, float]]:
    """(scores, metrics) of ``model`` on the holdout rows: the challenger's after training, and the
    champion's on the very same rows before promotion."""
    scores = problem.score(model, holdout[features])
    return scores, problem.evaluate(holdout[LABEL], scores, threshold)


def run_params(
    settings,
    training_set: str,
    version: int,
    rows: dict[str, int],
    available: dict[str, int],
    feature_lookups: list[dict[str, Any]],
) -> dict[str, Any]:
    """The parameters a training run logs: the estimator and its parameters, the split and sampling
    settings, the rows used and available per side (``train`` / ``test``), and the data versions."""
    tr = settings.training
    return {
        "model_class": tr.model.class_path,
        **{f"model.{k}": v for k, v in tr.model.params.items()},
        "problem_type": settings.problem_type,
        "test_size": tr.test_size,
        "seed": tr.seed,
        **({"decision_threshold": settings.inference.decision_threshold} if settings.classifies else {}),
        "n_features": len(settings.features.columns),
        "train_rows": rows["train"],
        "test_rows": rows["test"],
        "train_rows_available": available["train"],
        "test_rows_available": available["test"],
        "max_rows": tr.max_rows,
        "training_set": training_set,
        "training_set_version": version,
        "feature_tables": ", ".join(f"{t['table']}@v{t['version']}" for t in feature_lookups),
    }


def rows_digest(training_set: str, version: int, seed: int, max_rows: int, rows: int) -> str:
    """The digest of the rows trained on. They are fixed by the table version, the seed and
    ``max_rows`` (MLflow's own digest maps every value of the frame to its type: 2 s per million rows)."""
    import hashlib

    identity = f"{training_set}@v{version}/seed={seed}/max_rows={max_rows}/rows={rows}"
    return hashlib.sha256(identity.encode()).hexdigest()[:8]


# What a logged model needs to be loaded and scored, pinned to the versions it was trained with.
_MODEL_LIBRARIES = ("mlflow", "scikit-learn", "skops", "numpy", "scipy", "pandas")


def model_requirements(extra: tuple[str, ...] = ()) -> list[str]:
    """The logged model's pip requirements (``extra``: libraries its own code needs besides).
    Declared rather than left to MLflow, which infers them by loading the model in a subprocess
    (about 6 s) and picks up whatever else that imports."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in (*_MODEL_LIBRARIES, *extra)]


# What loading a logged model imports, in another process (MLflow's pyfunc loader, scikit-learn, skops).
MODEL_LOADING_MODULES = ("mlflow.pyfunc", "mlflow.sklearn", "sklearn.pipeline", "skops.io")


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
