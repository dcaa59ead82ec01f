"""Training (configured pipeline, skops trust) and evaluation (metrics, thresholds, champion).
The train / test split and samples are tested in test_sampling.py."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.model_selection import train_test_split

from mlops_dagster.data.telco import generate_customers
from mlops_dagster.ml.evaluation import (
    METRICS,
    REGRESSION_METRICS,
    ThresholdResult,
    check_thresholds,
    compare_to_champion,
    evaluate,
    evaluate_regression,
    positive_probability,
    save_plots,
)
from mlops_dagster.ml.problem import problem_type
from mlops_dagster.ml.training import LABEL, build_pipeline, fit, load_estimator_class, skops_trusted_types
from mlops_dagster.settings import Bound, load_settings

ADDONS = [
    "onlineSecurity",
    "onlineBackup",
    "deviceProtection",
    "techSupport",
    "streamingTV",
    "streamingMovies",
]


# --- load_estimator_class / build_pipeline -------------------------------------------------------


def test_load_estimator_class():
    from sklearn.ensemble import RandomForestClassifier

    assert load_estimator_class("sklearn.ensemble.RandomForestClassifier") is RandomForestClassifier


@pytest.mark.parametrize(
    "path",
    [
        "sklearn.linear_model.NoSuchClassifier",
        "no_such_package.Model",
        "LogisticRegression",
        "",
    ],
)
def test_load_estimator_class_bad_path(path):
    with pytest.raises(ValueError, match="is not an importable class"):
        load_estimator_class(path)


def test_a_classifier_without_predict_proba_is_refused():
    with pytest.raises(ValueError, match=r"'sklearn.svm.LinearSVC' has no predict_proba"):
        build_pipeline("sklearn.svm.LinearSVC", {}, ["a"], ["b"])


def test_a_regression_needs_a_regressor_and_gets_one_in_the_pipeline():
    regression = problem_type("regression")
    with pytest.raises(ValueError, match=r"'sklearn.linear_model.LogisticRegression' is not a regressor"):
        build_pipeline("sklearn.linear_model.LogisticRegression", {}, ["a"], ["b"], regression)
    pipeline = build_pipeline("sklearn.linear_model.Ridge", {"alpha": 2.0}, ["a"], ["b"], regression)
    assert pipeline.named_steps["regressor"].alpha == 2.0
    frame = pd.DataFrame(
        {"a": ["x", "y", "x", "y"] * 10, "b": np.arange(40.0), LABEL: np.arange(40.0) * 2 + 1}
    )
    fitted = fit(pipeline, frame, ["a", "b"])
    scores = regression.score(fitted, frame[["a", "b"]])
    assert scores.dtype == float and regression.evaluate(frame[LABEL], scores)["r2"] > 0.99


def test_regression_metrics_and_plots(tmp_path):
    metrics = evaluate_regression([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 6.0])
    assert metrics == {"rmse": pytest.approx(1.0), "mae": pytest.approx(0.5), "r2": pytest.approx(1 - 4 / 5)}
    assert list(metrics) == list(REGRESSION_METRICS)
    paths = problem_type("regression").save_plots(
        [1.0, 2.0, 3.0, 4.0], [1.1, 1.9, 3.2, 3.8], tmp_path / "plots"
    )
    assert sorted(p.name for p in paths) == ["actual_vs_predicted.png", "residual_vs_predicted.png"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_lower_error_is_better_in_the_champion_comparison():
    ok, reason = compare_to_champion({"rmse": 10.5}, {"rmse": 10.0}, "rmse", 1.0)
    assert ok and "change -0.5000" in reason  # worse by 0.5, within the allowed 1.0
    ok, _ = compare_to_champion({"rmse": 12.0}, {"rmse": 10.0}, "rmse", 1.0)
    assert not ok
    ok, _ = compare_to_champion({"r2": 0.91}, {"r2": 0.90}, "r2", 0.0)
    assert ok


def test_build_pipeline_with_bad_params_names_the_class():
    with pytest.raises(ValueError, match=r"do not fit sklearn\.linear_model\.LogisticRegression.*bogus"):
        build_pipeline("sklearn.linear_model.LogisticRegression", {"bogus": 1}, ["a"], ["b"])


def test_build_pipeline_passes_params_to_the_classifier():
    pipeline = build_pipeline(
        "sklearn.linear_model.LogisticRegression", {"C": 0.25, "max_iter": 50}, ["a"], ["b"]
    )
    classifier = pipeline.named_steps["classifier"]
    assert (classifier.C, classifier.max_iter) == (0.25, 50)
    transformers = {name: cols for name, _, cols in pipeline.named_steps["preprocess"].transformers}
    assert transformers == {"categorical": ["a"], "numerical": ["b"]}


def test_the_encoded_matrix_stays_sparse_only_for_an_estimator_that_takes_it():
    import scipy.sparse

    frame = pd.DataFrame({"a": ["x", "y", "z", "y"] * 10, "b": np.arange(40.0), LABEL: [0, 1] * 20})
    sparse = fit(
        build_pipeline("sklearn.linear_model.LogisticRegression", {}, ["a"], ["b"]), frame, ["a", "b"]
    )
    assert scipy.sparse.issparse(sparse.named_steps["preprocess"].transform(frame[["a", "b"]]))
    regression = problem_type("regression")
    # HistGradientBoosting refuses sparse input: it gets the dense matrix and fits.
    dense = fit(
        build_pipeline(
            "sklearn.ensemble.HistGradientBoostingRegressor", {"max_iter": 5}, ["a"], ["b"], regression
        ),
        frame,
        ["a", "b"],
    )
    assert isinstance(dense.named_steps["preprocess"].transform(frame[["a", "b"]]), np.ndarray)
    assert regression.score(dense, frame[["a", "b"]]).shape == (40,)


def telco_features(rows: int, seed: int, features) -> pd.DataFrame:
    """The configured features computed in pandas (the asset computes them with Spark)."""
    raw = generate_customers(rows, seed=seed)
    frame = raw[["customerID", *features.categorical, *features.numerical]].copy()
    frame["totalCharges"] = raw["totalCharges"].fillna(0.0)
    frame["avgMonthlySpend"] = raw["totalCharges"].fillna(0.0) / raw["tenure"].clip(lower=1.0)
    frame["numAddonServices"] = sum((raw[c] == "Yes").astype(float) for c in ADDONS)
    frame[LABEL] = (raw["churnString"] == "Yes").astype(int)
    return frame


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The configured pipeline fitted on generated telco features, with its holdout predictions."""
    mp = pytest.MonkeyPatch()
    mp.setenv("MLOPS_HOME", str(tmp_path_factory.mktemp("mlops")))
    try:
        settings = load_settings("local")
    finally:
        mp.undo()
    fs, tr = settings.features, settings.training
    assert set(fs.derived) == {"totalCharges", "avgMonthlySpend", "numAddonServices"}
    frame = telco_features(7043, 42, fs)
    train, test = train_test_split(frame, test_size=tr.test_size, random_state=tr.seed, stratify=frame[LABEL])
    pipeline = fit(
        build_pipeline(tr.model.class_path, tr.model.params, fs.categorical, fs.numeric_columns),
        train,
        fs.columns,
    )
    return pipeline, test, fs.columns


def test_configured_pipeline_reaches_a_good_roc_auc(trained):
    pipeline, test, columns = trained
    probability = positive_probability(pipeline, test[columns])
    assert probability.shape == (len(test),)
    assert ((probability >= 0) & (probability <= 1)).all()
    scores = evaluate(test[LABEL], probability)
    assert scores["roc_auc"] > 0.8, scores


def _double(x):
    """A function from outside scikit-learn / NumPy / SciPy: skops must not be told to trust it."""
    return x * 2


def test_skops_trusted_types_only_vouches_for_sklearn_numpy_scipy(trained):
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    pipeline, test, columns = trained
    trusted = skops_trusted_types(pipeline)
    assert all(t.split(".", 1)[0] in {"sklearn", "numpy", "scipy"} for t in trusted)
    reloaded = sio.loads(sio.dumps(pipeline), trusted=trusted)
    np.testing.assert_array_equal(
        reloaded.predict_proba(test[columns]), pipeline.predict_proba(test[columns])
    )

    X, y = np.arange(20.0).reshape(10, 2), np.array([0, 1] * 5)
    custom = make_pipeline(
        FunctionTransformer(np.log1p), FunctionTransformer(_double), LogisticRegression()
    ).fit(X, y)
    untrusted = sio.get_untrusted_types(data=sio.dumps(custom))
    own = f"{__name__}._double"
    assert own in untrusted
    trusted = skops_trusted_types(custom)
    assert own not in trusted
    assert set(untrusted) - set(trusted) == {own}  # everything else skops asked about is vouched for
    assert all(t.split(".", 1)[0] in {"sklearn", "numpy", "scipy"} for t in trusted)
    with pytest.raises(Exception, match="_double"):
        sio.loads(sio.dumps(custom), trusted=trusted)


# --- evaluate --------------------------------------------------------------------------------------

Y_TRUE = [0, 0, 1, 1, 1, 0]
PROBABILITY = [0.1, 0.6, 0.8, 0.4, 0.9, 0.2]


def test_evaluate_on_a_hand_made_example():
    scores = evaluate(Y_TRUE, PROBABILITY)
    assert list(scores) == list(METRICS)
    assert all(isinstance(v, float) for v in scores.values())
    # predicted at 0.5: [0, 1, 1, 0, 1, 0] -> TP 2, FP 1, FN 1, TN 2; 8 of 9 positive/negative pairs ordered.
    assert scores["precision"] == pytest.approx(2 / 3)
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 / 3)
    assert scores["accuracy"] == pytest.approx(4 / 6)
    assert scores["roc_auc"] == pytest.approx(8 / 9)
    expected_log_loss = -np.mean(
        [np.log(0.9), np.log(0.4), np.log(0.8), np.log(0.4), np.log(0.9), np.log(0.8)]
    )
    assert scores["log_loss"] == pytest.approx(expected_log_loss)
    for name, value in scores.items():
        assert value >= 0, name
        if name != "log_loss":
            assert value <= 1, name


def test_evaluate_matches_sklearn():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 300)
    p = np.clip(0.3 * y + rng.random(300) * 0.7, 0, 1)
    scores = evaluate(pd.Series(y.astype(bool)), p, threshold=0.6)
    predicted = (p >= 0.6).astype(int)
    assert scores == pytest.approx(
        {
            "roc_auc": skm.roc_auc_score(y, p),
            "f1": skm.f1_score(y, predicted),
            "precision": skm.precision_score(y, predicted),
            "recall": skm.recall_score(y, predicted),
            "log_loss": skm.log_loss(y, p),
            "accuracy": skm.accuracy_score(y, predicted),
        }
    )


def test_evaluate_threshold_and_extreme_probabilities():
    high = evaluate(Y_TRUE, PROBABILITY, threshold=0.7)  # predicted [0, 0, 1, 0, 1, 0]
    assert high["precision"] == pytest.approx(1.0)
    assert high["recall"] == pytest.approx(2 / 3)
    # Confidently wrong 0/1 probabilities give a large but finite log loss.
    wrong = evaluate([0, 1], [1.0, 0.0])
    assert math.isfinite(wrong["log_loss"]) and wrong["log_loss"] > 10
    assert wrong["accuracy"] == 0.0
    # Nothing predicted positive: precision is 0, not an error.
    assert evaluate([0, 1, 1], [0.1, 0.2, 0.3])["precision"] == 0.0


# --- thresholds ------------------------------------------------------------------------------------


def test_check_thresholds_pass_and_fail():
    thresholds = {
        "roc_auc": Bound(min=0.75),
        "f1": Bound(min=0.45),
        "log_loss": Bound(max=0.55),
        "accuracy": Bound(min=0.5, max=0.99),
    }
    results = check_thresholds({"roc_auc": 0.8, "f1": 0.40, "log_loss": 0.55, "accuracy": 0.995}, thresholds)
    assert [r.metric for r in results] == ["roc_auc", "f1", "log_loss", "accuracy"]
    assert [r.passed for r in results] == [True, False, True, False]
    by_name = {r.metric: r for r in results}
    assert by_name["roc_auc"].describe() == "roc_auc 0.8000 (required >= 0.75): pass"
    assert by_name["f1"].describe() == "f1 0.4000 (required >= 0.45): FAIL"
    assert by_name["log_loss"].describe() == "log_loss 0.5500 (required <= 0.55): pass"
    assert by_name["accuracy"].describe() == "accuracy 0.9950 (required >= 0.5 and <= 0.99): FAIL"


def test_missing_or_nan_metric_fails():
    [missing] = check_thresholds({"roc_auc": 0.9}, {"f1": Bound(min=0.45)})
    assert missing.observed is None
    assert not missing.passed
    assert missing.describe() == "f1 missing (required >= 0.45): FAIL"
    assert not ThresholdResult("roc_auc", float("nan"), 0.5, None).passed


def test_configured_thresholds(local_root):
    thresholds = load_settings("local").validation.thresholds
    good = {"roc_auc": 0.84, "f1": 0.6, "log_loss": 0.42}
    assert all(r.passed for r in check_thresholds(good, thresholds))
    bad = {"roc_auc": 0.84, "f1": 0.6, "log_loss": 0.7}
    assert [r.metric for r in check_thresholds(bad, thresholds) if not r.passed] == ["log_loss"]


# --- champion comparison ---------------------------------------------------------------------------


def test_no_champion_promotes():
    ok, reason = compare_to_champion({"roc_auc": 0.5}, None, "roc_auc", 0.0)
    assert ok
    assert "no champion" in reason


def test_better_challenger_promotes():
    ok, reason = compare_to_champion({"roc_auc": 0.85}, {"roc_auc": 0.83}, "roc_auc", 0.0)
    assert ok
    assert "0.8500" in reason and "0.8300" in reason and "+0.0200" in reason


def test_slightly_worse_within_max_regression_promotes():
    ok, _ = compare_to_champion({"roc_auc": 0.838}, {"roc_auc": 0.840}, "roc_auc", 0.005)
    assert ok
    # The allowed regression is inclusive (values exact in binary).
    ok, _ = compare_to_champion({"roc_auc": 0.75}, {"roc_auc": 0.875}, "roc_auc", 0.125)
    assert ok


def test_worse_beyond_max_regression_is_refused():
    ok, reason = compare_to_champion({"roc_auc": 0.80}, {"roc_auc": 0.81}, "roc_auc", 0.005)
    assert not ok
    assert "0.8000" in reason and "0.8100" in reason
    assert "-0.0100" in reason


def test_log_loss_is_lower_is_better():
    ok, reason = compare_to_champion({"log_loss": 0.40}, {"log_loss": 0.45}, "log_loss", 0.0)
    assert ok
    assert "+0.0500" in reason
    ok, reason = compare_to_champion({"log_loss": 0.47}, {"log_loss": 0.45}, "log_loss", 0.005)
    assert not ok
    assert "0.4700" in reason and "0.4500" in reason
    ok, _ = compare_to_champion({"log_loss": 0.452}, {"log_loss": 0.45}, "log_loss", 0.005)
    assert ok


# --- plots -------------------------------------------------------------------------------------------


def test_save_plots_writes_three_pngs(tmp_path):
    out = tmp_path / "plots" / "nested"
    paths = save_plots(Y_TRUE, PROBABILITY, out)
    assert sorted(p.name for p in paths) == [
        "confusion_matrix.png",
        "precision_recall_curve.png",
        "roc_curve.png",
    ]
    for path in paths:
        assert path.parent == out
        data = path.read_bytes()
        assert len(data) > 1000
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
