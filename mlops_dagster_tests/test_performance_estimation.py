"""Performance estimated before outcomes arrive (CBPE for classifiers, DLE for regressors): the
estimators against hand-computed figures, then on the demos as a user runs them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mlops_dagster.ml.estimation import (
    LossModel,
    calibrator,
    cbpe,
    dle,
    estimate_dle,
    expected_roc_auc,
    loss_model,
    roc_auc_error,
)

SCORES = [0.9, 0.8, 0.3, 0.1]


def test_expected_roc_auc_counts_each_pair_by_its_chances():
    # Pairs ranked i above j add p_i (1 - p_j), each row half its own p (1 - p); over P N.
    # P = 2.1, N = 1.9; pairs: .18 + .63 + .81 + .56 + .72 + .27 = 3.17; halves: .275.
    assert expected_roc_auc(SCORES, SCORES) == pytest.approx((3.17 + 0.275) / (2.1 * 1.9))


def test_expected_roc_auc_of_certain_chances_is_the_realized_one():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 300)
    scores = np.round(labels * 0.2 + rng.random(300), 2)  # ties included
    assert expected_roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))


def test_hanley_mcneil_error():
    # AUC .8 on 50 positives and 100 negatives: Q1 = .8/1.2, Q2 = 1.28/1.8,
    # variance = (.16 + 49 (Q1 - .64) + 99 (Q2 - .64)) / 5000 = 8.506667 / 5000.
    assert roc_auc_error(0.8, 50, 100) == pytest.approx(np.sqrt(8.506667 / 5000), rel=1e-6)


def test_cbpe_expected_confusion_matrix_and_bands():
    got = cbpe(SCORES, SCORES, threshold=0.5, z=2)
    # Predicted positive: .9 and .8 -> TP 1.7, FP .3; negative: FN .4, TN 1.6.
    assert got["precision"].value == pytest.approx(0.85)
    assert got["recall"].value == pytest.approx(1.7 / 2.1)
    assert got["accuracy"].value == pytest.approx(3.3 / 4)
    error = np.sqrt(0.85 * 0.15 / 2.0)
    assert (got["precision"].lower, got["precision"].upper) == pytest.approx((0.85 - 2 * error, 1.0))
    auc = cbpe(SCORES, SCORES, threshold=0.5, z=0.1)["roc_auc"]  # a band narrow enough not to be cut at 1
    error = roc_auc_error(3.445 / 3.99, 2.1, 1.9)
    assert (auc.value, auc.lower, auc.upper) == pytest.approx(
        (3.445 / 3.99, 3.445 / 3.99 - 0.1 * error, 3.445 / 3.99 + 0.1 * error)
    )
    assert auc.rows == 4


def test_calibration_maps_scores_to_observed_frequencies():
    # Scores of .9 that are right half the time are worth .5; .2 that never are, 0.
    fitted = calibrator([0.2, 0.2, 0.9, 0.9], [0, 0, 1, 0])
    assert fitted.predict([0.2, 0.9]) == pytest.approx([0.0, 0.5])


def test_dle_means_of_predicted_losses_and_their_bands():
    model = LossModel(None, None, {}, absolute_std=1.0, squared_std=2.0)
    got = dle([1, 2, 3, -1], [1, 4, 9, -2], model, z=2)  # negatives count as 0
    assert got["mae"].value == pytest.approx(1.5)
    assert (got["mae"].lower, got["mae"].upper) == pytest.approx((0.5, 2.5))  # 1.5 -/+ 2 * 1 / sqrt(4)
    rmse = np.sqrt(3.5)
    error = 2.0 / np.sqrt(4) / (2 * rmse)  # MSE's error through d sqrt(x) = dx / (2 sqrt(x))
    assert got["rmse"].value == pytest.approx(rmse)
    assert (got["rmse"].lower, got["rmse"].upper) == pytest.approx((rmse - 2 * error, rmse + 2 * error))


def test_dle_sees_a_batch_move_to_where_the_model_errs_more():
    rng = np.random.default_rng(0)
    n = 4000
    kind = rng.choice(["a", "b"], n)
    area = rng.uniform(50, 150, n)
    prediction = area * 2
    label = prediction + rng.normal(0, np.where(kind == "a", 1.0, 3.0))
    reference = pd.DataFrame({"kind": kind, "area": area})
    model = loss_model(reference, ["kind"], prediction, label, seed=0)
    for group, sigma in (("a", 1.0), ("b", 3.0)):
        batch = pd.DataFrame({"kind": [group] * 500, "area": rng.uniform(50, 150, 500)})
        got = estimate_dle(model, batch, batch["area"] * 2, z=3)
        assert got["rmse"].value == pytest.approx(sigma, rel=0.1)
        assert got["rmse"].holds(sigma)
