"""Metric computations agree with scikit-learn; bootstrap intervals behave."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk

from loopml.evaluation._metrics import (
    Predictions,
    binary_curves,
    bootstrap_intervals,
    classification_metrics,
    regression_metrics,
)


def _binary(n: int = 2000, seed: int = 0, ties: bool = False) -> Predictions:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    scores = np.clip(0.35 * y + 0.65 * rng.random(n), 0, 1)
    if ties:
        scores = np.round(scores, 1)
    predicted = (scores > 0.5).astype(np.int64)
    return Predictions("binary", y, predicted, scores, [0, 1], True)


@pytest.mark.parametrize("ties", [False, True])
def test_binary_metrics_match_scikit_learn(ties: bool) -> None:
    p = _binary(ties=ties)
    found = classification_metrics(p)
    y, scores, predicted = p.y, p.scores, p.predicted
    assert found["accuracy"] == pytest.approx(sk.accuracy_score(y, predicted))
    assert found["precision"] == pytest.approx(sk.precision_score(y, predicted))
    assert found["recall"] == pytest.approx(sk.recall_score(y, predicted))
    assert found["f1"] == pytest.approx(sk.f1_score(y, predicted))
    assert found["roc_auc"] == pytest.approx(sk.roc_auc_score(y, scores))
    assert found["pr_auc"] == pytest.approx(sk.average_precision_score(y, scores))
    assert found["log_loss"] == pytest.approx(sk.log_loss(y, scores))
    assert found["brier_score"] == pytest.approx(sk.brier_score_loss(y, scores))


def test_expected_calibration_error_is_zero_for_calibrated_bins_and_large_when_overconfident() -> (
    None
):
    y = np.array([0, 1] * 50)
    calibrated = Predictions(
        "binary", y, np.zeros(100, dtype=np.int64), np.full(100, 0.5), [0, 1], True
    )
    overconfident = Predictions(
        "binary", y, np.ones(100, dtype=np.int64), np.full(100, 0.99), [0, 1], True
    )
    assert classification_metrics(calibrated)["expected_calibration_error"] == pytest.approx(0)
    assert classification_metrics(overconfident)["expected_calibration_error"] == pytest.approx(
        0.49
    )


def test_multiclass_metrics_match_scikit_learn_macro_averages() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 600)
    probabilities = rng.dirichlet([1, 1, 1], 600)
    probabilities[np.arange(600), y] += 0.5
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    predicted = probabilities.argmax(axis=1)
    found = classification_metrics(
        Predictions("multiclass", y, predicted, probabilities, [0, 1, 2], True)
    )
    assert found["accuracy"] == pytest.approx(sk.accuracy_score(y, predicted))
    assert found["f1"] == pytest.approx(sk.f1_score(y, predicted, average="macro"))
    assert found["precision"] == pytest.approx(sk.precision_score(y, predicted, average="macro"))
    assert found["roc_auc"] == pytest.approx(sk.roc_auc_score(y, probabilities, multi_class="ovr"))


def test_regression_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(size=500) * 3
    predicted = y + rng.normal(size=500)
    found = regression_metrics(Predictions("regression", y, predicted))
    assert found["mae"] == pytest.approx(sk.mean_absolute_error(y, predicted))
    assert found["rmse"] == pytest.approx(np.sqrt(sk.mean_squared_error(y, predicted)))
    assert found["r2"] == pytest.approx(sk.r2_score(y, predicted))
    assert found["mape"] == pytest.approx(sk.mean_absolute_percentage_error(y, predicted))


def test_bootstrap_intervals_contain_the_estimate_and_match_a_naive_bootstrap() -> None:
    p = _binary(n=1500)
    found = bootstrap_intervals(p, 400, seed=0)
    metrics = classification_metrics(p)
    rng = np.random.default_rng(9)
    naive = []
    for _ in range(400):
        rows = rng.integers(0, 1500, 1500)
        naive.append(sk.roc_auc_score(p.y[rows], p.scores[rows]))
    naive_low, naive_high = np.percentile(naive, [2.5, 97.5])
    for name in ("roc_auc", "f1", "accuracy"):
        low, high = found[name]
        assert low < metrics[name] < high
    assert found["roc_auc"][0] == pytest.approx(naive_low, abs=0.01)
    assert found["roc_auc"][1] == pytest.approx(naive_high, abs=0.01)


def test_bootstrap_is_seeded_and_narrows_with_more_rows() -> None:
    small, large = _binary(n=300), _binary(n=30_000)
    assert bootstrap_intervals(small, 50, seed=3) == bootstrap_intervals(small, 50, seed=3)
    assert bootstrap_intervals(small, 50, seed=3) != bootstrap_intervals(small, 50, seed=4)
    width = {k: b - a for k, (a, b) in bootstrap_intervals(small, 100, 0).items()}
    narrow = {k: b - a for k, (a, b) in bootstrap_intervals(large, 100, 0).items()}
    assert all(narrow[k] < width[k] / 3 for k in width)


def test_bootstrap_auc_on_many_distinct_scores_stays_close_to_exact_resampling() -> None:
    p = _binary(n=20_000, seed=5)  # more distinct scores than the 8,192 rank bins
    low, high = bootstrap_intervals(p, 200, seed=0)["roc_auc"]
    exact = sk.roc_auc_score(p.y, p.scores)
    assert low < exact < high
    assert high - low < 0.03


def test_regression_intervals_cover_rmse_and_r2() -> None:
    rng = np.random.default_rng(4)
    y = rng.normal(size=1000)
    p = Predictions("regression", y, y + 0.3 * rng.normal(size=1000))
    found = bootstrap_intervals(p, 100, seed=0)
    metrics = regression_metrics(p)
    assert found["rmse"][0] < metrics["rmse"] < found["rmse"][1]
    assert found["r2"][0] < metrics["r2"] < found["r2"][1]


def test_curves_are_capped_to_a_thousand_points() -> None:
    curves = binary_curves(_binary(n=50_000))
    assert len(curves["roc"]["fpr"]) <= 1001
    assert len(curves["pr"]["precision"]) <= 1000
    assert curves["roc"]["tpr"][-1] == pytest.approx(1.0)
    assert sum(curves["calibration"]["count"]) == 50_000
