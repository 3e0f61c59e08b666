"""What a gate measures beyond ``ws.evaluate`` (see :mod:`loopml.evaluation.gate`): the
latency of single-row predictions, the model's serialized size, and the paired bootstrap
behind ``significantly``."""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from loopml.evaluation._gate_expression import Check, Reference, compute
from loopml.evaluation._metrics import (
    Predictions,
    _auc_from_groups,
    _counts,
    _macro_from_confusion,
    classification_metrics,
    regression_metrics,
)
from loopml.evaluation._robustness import sample_index

__all__ = ["Significance", "compare", "latency", "paired_bootstrap", "size_mb"]

_WARMUP = 3
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    ">=": np.greater_equal,
    "<=": np.less_equal,
    ">": np.greater,
    "<": np.less,
    "==": np.equal,
    "!=": np.not_equal,
}


def compare(left: Any, operator: str, right: Any) -> Any:
    """``left OPERATOR right`` (elementwise for arrays); NaN never satisfies a check."""
    return _COMPARE[operator](left, right)


def latency(model: Any, features: pd.DataFrame, rows: int, seed: int) -> dict[str, float]:
    """Milliseconds per single-row ``predict`` over ``rows`` sampled rows (after a warm-up).

    Each call gets a one-row DataFrame, as a serving request would; slicing happens
    outside the timed part.
    """
    index = sample_index(len(features), rows, seed)
    sample = features.iloc[index]
    singles = [sample.iloc[i : i + 1] for i in range(len(sample))]
    for row in singles[:_WARMUP]:
        model.predict(row)
    timings = np.empty(len(singles))
    for i, row in enumerate(singles):
        started = time.perf_counter()
        model.predict(row)
        timings[i] = (time.perf_counter() - started) * 1000.0
    p50, p90, p95, p99 = np.percentile(timings, [50, 90, 95, 99])
    return {
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "mean_ms": float(timings.mean()),
        "max_ms": float(timings.max()),
        "rows": float(len(singles)),
    }


def size_mb(model: Any) -> float:
    """The model's size serialized with joblib, in megabytes (10^6 bytes)."""
    import joblib

    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return len(buffer.getvalue()) / 1e6


@dataclass(frozen=True)
class Significance:
    """The outcome of a paired bootstrap test of one check."""

    p_value: float
    difference: float  # left - right on all rows
    low: float  # one-sided (1 - alpha) bound of the difference
    high: float
    resamples: int


def paired_bootstrap(
    check: Check,
    predictions: dict[str, Predictions],
    resamples: int,
    alpha: float,
    seed: int,
) -> Significance:
    """How often the check fails when the same rows are resampled for every model.

    Each resample draws n row indices with replacement and scores candidate and champion
    on those same rows, so the noise they share cancels out. The p-value is the share of
    resamples (add-one smoothed) in which the comparison does not hold. A resample is a
    vector of row counts: the common metrics are weighted sums over rows computed once
    (ROC AUC from score ranks grouped once), so each resample costs O(n) without sorting.
    """
    rng = np.random.default_rng(seed)
    needed: dict[str, set[str]] = {}
    for ref in check.references():
        needed.setdefault(ref.side, set()).add(ref.key)
    scorers = {side: _WeightedScorer(predictions[side], keys) for side, keys in needed.items()}
    n = len(next(iter(predictions.values())).y)
    left = np.empty(resamples)
    right = np.empty(resamples)
    for b in range(resamples):
        weights = np.bincount(rng.integers(0, n, size=n), minlength=n).astype(np.float64)
        found = {side: scorer.score(weights) for side, scorer in scorers.items()}

        def lookup(ref: Reference, found: dict[str, dict[str, float]] = found) -> float:
            return found[ref.side].get(ref.key, math.nan)

        left[b] = compute(check.left, lookup)
        right[b] = compute(check.right, lookup)
    holds = compare(left, check.operator, right)
    failures = int(np.sum(~holds))
    differences = left - right
    finite = differences[np.isfinite(differences)]
    if len(finite):
        low, high = np.percentile(finite, [alpha * 100, 100 - alpha * 100])
    else:
        low = high = math.nan
    everything = {side: _metrics(predictions[side]) for side in needed}

    def observed(ref: Reference) -> float:
        return everything[ref.side].get(ref.key, math.nan)

    return Significance(
        p_value=(failures + 1) / (resamples + 1),
        difference=float(compute(check.left, observed) - compute(check.right, observed)),
        low=float(low),
        high=float(high),
        resamples=resamples,
    )


def _metrics(p: Predictions) -> dict[str, float]:
    return regression_metrics(p) if p.task == "regression" else classification_metrics(p)


class _WeightedScorer:
    """Metrics of one model's predictions under row weights (counts of a resample).

    ``score(weights)`` equals the metrics of the rows repeated ``weights`` times; metrics
    without a weighted form here (expected calibration error, multiclass ROC AUC) fall
    back to scoring the repeated rows.
    """

    _FAST = {
        "binary": {"accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "log_loss",
                   "brier_score"},
        "multiclass": {"accuracy", "precision", "recall", "f1", "log_loss"},
        "regression": {"mae", "rmse", "r2", "mape"},
    }  # fmt: skip

    def __init__(self, p: Predictions, keys: set[str]) -> None:
        self.p = p
        self.keys = keys
        self.slow = keys - self._FAST[p.task]
        self.y = np.asarray(p.y)
        self.predicted = np.asarray(p.predicted)
        self.row_loss: Any = None
        self.row_brier: Any = None
        if p.task == "regression":
            self.errors = self.predicted.astype(np.float64) - self.y.astype(np.float64)
            return
        eps = float(np.finfo(np.float64).eps)
        if p.scores is not None and p.probabilistic:
            scores = np.asarray(p.scores, dtype=np.float64)
            if p.task == "binary":
                clipped = np.clip(scores, eps, 1 - eps)
                self.row_loss = -np.where(self.y == 1, np.log(clipped), np.log1p(-clipped))
                self.row_brier = (scores - self.y) ** 2
            elif "log_loss" in keys:
                rows = scores / scores.sum(axis=1, keepdims=True)
                chosen = rows[np.arange(len(self.y)), self.y]
                self.row_loss = -np.log(np.clip(chosen, eps, 1 - eps))

    def score(self, weights: Any) -> dict[str, float]:
        p = self.p
        n = float(weights.sum())
        found: dict[str, float] = {}
        if p.task == "regression":
            found.update(self._regression(weights, n))
        elif p.task == "binary":
            found.update(self._binary(weights, n))
        else:
            k = len(p.classes or [])
            cells = np.bincount(self.y * k + self.predicted, weights=weights, minlength=k * k)
            found.update(_macro_from_confusion(cells.reshape(k, k).astype(np.float64)))
            if self.row_loss is not None and "log_loss" in self.keys:
                found["log_loss"] = float(np.dot(weights, self.row_loss) / n)
        if self.slow:
            repeated = p.subset(np.repeat(np.arange(len(self.y)), weights.astype(np.int64)))
            everything = _metrics(repeated)
            found.update({key: everything[key] for key in self.slow if key in everything})
        return found

    def _binary(self, weights: Any, n: float) -> dict[str, float]:
        tp, fp, fn, tn = _counts(self.y, self.predicted, weights)
        found = {
            "accuracy": _ratio(tp + tn, n),
            "precision": _ratio(tp, tp + fp),
            "recall": _ratio(tp, tp + fn),
            "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        }
        if self.p.scores is None:
            return found
        groups, n_groups = self.p.score_groups()
        positive = weights * self.y
        if "roc_auc" in self.keys:
            found["roc_auc"] = _auc_from_groups(groups, n_groups, positive, weights - positive)
        if "pr_auc" in self.keys:
            pos = np.bincount(groups, weights=positive, minlength=n_groups)[::-1]
            total = np.bincount(groups, weights=weights, minlength=n_groups)[::-1]
            cumulative = np.cumsum(pos)
            if cumulative[-1] > 0:
                with np.errstate(invalid="ignore", divide="ignore"):
                    precision = np.where(total > 0, cumulative / np.cumsum(total), 0.0)
                found["pr_auc"] = float(np.dot(pos / cumulative[-1], precision))
            else:
                found["pr_auc"] = math.nan
        if self.row_loss is not None:
            found["log_loss"] = float(np.dot(weights, self.row_loss) / n)
            found["brier_score"] = float(np.dot(weights, self.row_brier) / n)
        return found

    def _regression(self, weights: Any, n: float) -> dict[str, float]:
        y = self.y.astype(np.float64)
        errors = self.errors
        sse = float(np.dot(weights, errors * errors))
        mean = float(np.dot(weights, y) / n)
        sst = float(np.dot(weights, (y - mean) ** 2))
        eps = float(np.finfo(np.float64).eps)
        return {
            "mae": float(np.dot(weights, np.abs(errors)) / n),
            "rmse": math.sqrt(sse / n),
            "r2": (1.0 - sse / sst) if sst > 0 else math.nan,
            "mape": float(np.dot(weights, np.abs(errors) / np.maximum(np.abs(y), eps)) / n),
        }


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0
