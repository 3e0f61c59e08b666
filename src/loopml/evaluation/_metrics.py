"""Vectorized metric computations over one set of predictions (see ``loopml.evaluation``).

Everything here works on numpy arrays computed once: predictions are never recomputed,
bootstrap resamples are row weights (multinomial counts) applied to sums, and ROC AUC
comes from score ranks grouped once, so 200 resamples of 1M rows cost O(n) each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "HIGHER_IS_BETTER",
    "Predictions",
    "binary_curves",
    "bootstrap_intervals",
    "classification_metrics",
    "regression_metrics",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

# Metrics where a lower value is better; everything else is higher-is-better.
LOWER_IS_BETTER = frozenset(
    {"log_loss", "brier_score", "expected_calibration_error", "mae", "rmse", "mape"}
)
HIGHER_IS_BETTER = frozenset(
    {"accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "r2", "selection_rate"}
)
_EPSILON = float(np.finfo(np.float64).eps)
_CALIBRATION_BINS = 10


@dataclass
class Predictions:
    """What the model said, encoded once.

    For classification ``y`` and ``predicted`` are class indices into ``classes``;
    ``scores`` is the positive-class probability (binary) or the probability matrix
    (multiclass), and ``probabilistic`` says whether scores are probabilities (else
    decision-function values, good for ranking metrics only).
    """

    task: str  # "binary", "multiclass" or "regression"
    y: Any
    predicted: Any
    scores: Any = None
    classes: list[Any] | None = None
    probabilistic: bool = False

    def score_groups(self) -> tuple[IntArray, int]:
        """Each row's rank among the distinct scores, computed once per Predictions."""
        cached: tuple[IntArray, int] | None = self.__dict__.get("_groups")
        if cached is None:
            cached = _score_groups(np.asarray(self.scores, dtype=np.float64))
            self.__dict__["_groups"] = cached
        return cached

    def subset(self, index: Any) -> Predictions:
        scores = None if self.scores is None else self.scores[index]
        return Predictions(
            self.task, self.y[index], self.predicted[index], scores, self.classes,
            self.probabilistic,
        )  # fmt: skip


# -- binary ---------------------------------------------------------------------------
def _score_groups(scores: FloatArray) -> tuple[IntArray, int]:
    """Each row's rank among the distinct scores (ascending), and how many there are."""
    unique, inverse = np.unique(scores, return_inverse=True)
    return inverse.astype(np.int64, copy=False), len(unique)


def _auc_from_groups(
    groups: IntArray, n_groups: int, positive: FloatArray, negative: FloatArray
) -> float:
    """ROC AUC from per-row positive/negative weights; ties count one half."""
    pos = np.bincount(groups, weights=positive, minlength=n_groups)
    neg = np.bincount(groups, weights=negative, minlength=n_groups)
    total_pos, total_neg = pos.sum(), neg.sum()
    if total_pos == 0 or total_neg == 0:
        return float("nan")
    below = np.cumsum(neg) - neg
    return float(np.dot(pos, below + 0.5 * neg) / (total_pos * total_neg))


def _counts(y: IntArray, predicted: IntArray, weights: FloatArray | None = None) -> FloatArray:
    """tp, fp, fn, tn of a binary problem (optionally weighted)."""
    cells = np.bincount(y * 2 + predicted, weights=weights, minlength=4)
    tn, fp, fn, tp = cells
    return np.array([tp, fp, fn, tn], dtype=np.float64)


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def _f1(tp: float, fp: float, fn: float) -> float:
    return _ratio(2 * tp, 2 * tp + fp + fn)


def classification_metrics(p: Predictions) -> dict[str, float]:
    """Accuracy, precision, recall, F1, ROC AUC, PR AUC, log loss, Brier, ECE."""
    if p.task == "multiclass":
        return _multiclass_metrics(p)
    y = np.asarray(p.y, dtype=np.int64)
    predicted = np.asarray(p.predicted, dtype=np.int64)
    tp, fp, fn, tn = _counts(y, predicted)
    metrics = {
        "accuracy": _ratio(tp + tn, len(y)),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _f1(tp, fp, fn),
    }
    if p.scores is None:
        return metrics
    scores = np.asarray(p.scores, dtype=np.float64)
    rank_groups, n_groups = p.score_groups()
    yf = y.astype(np.float64)
    metrics["roc_auc"] = _auc_from_groups(rank_groups, n_groups, yf, 1.0 - yf)
    metrics["pr_auc"] = _average_precision(rank_groups, n_groups, yf)
    if p.probabilistic:
        clipped = np.clip(scores, _EPSILON, 1 - _EPSILON)
        metrics["log_loss"] = float(-np.mean(np.where(y == 1, np.log(clipped), np.log1p(-clipped))))
        metrics["brier_score"] = float(np.mean((scores - yf) ** 2))
        counts, mean_score, mean_label = _calibration_bins(scores, yf)
        metrics["expected_calibration_error"] = float(
            np.sum(counts * np.abs(mean_score - mean_label)) / len(y)
        )
    return metrics


def _average_precision(groups: IntArray, n_groups: int, y: FloatArray) -> float:
    """Average precision as scikit-learn defines it: sum over thresholds of ΔR · P."""
    pos = np.bincount(groups, weights=y, minlength=n_groups)[::-1]
    total = np.bincount(groups, minlength=n_groups)[::-1].astype(np.float64)
    tp = np.cumsum(pos)
    if tp[-1] == 0:
        return float("nan")
    precision = tp / np.cumsum(total)
    recall_step = pos / tp[-1]
    return float(np.dot(recall_step, precision))


def _calibration_bins(
    scores: FloatArray, y: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    bins = np.minimum((scores * _CALIBRATION_BINS).astype(np.int64), _CALIBRATION_BINS - 1)
    bins = np.clip(bins, 0, _CALIBRATION_BINS - 1)
    counts = np.bincount(bins, minlength=_CALIBRATION_BINS).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_score = np.bincount(bins, weights=scores, minlength=_CALIBRATION_BINS) / counts
        mean_label = np.bincount(bins, weights=y, minlength=_CALIBRATION_BINS) / counts
    return counts, np.nan_to_num(mean_score), np.nan_to_num(mean_label)


def _multiclass_metrics(p: Predictions) -> dict[str, float]:
    from sklearn.metrics import log_loss, roc_auc_score

    y = np.asarray(p.y, dtype=np.int64)
    k = len(p.classes or [])
    confusion = np.bincount(y * k + np.asarray(p.predicted), minlength=k * k).reshape(k, k)
    metrics = _macro_from_confusion(confusion.astype(np.float64))
    if p.scores is not None and p.probabilistic and len(np.unique(y)) == k:
        labels = list(range(k))
        metrics["roc_auc"] = float(
            roc_auc_score(y, p.scores, multi_class="ovr", average="macro", labels=labels)
        )
        metrics["log_loss"] = float(log_loss(y, p.scores, labels=labels))
    return metrics


def _macro_from_confusion(confusion: FloatArray) -> dict[str, float]:
    tp = np.diag(confusion)
    predicted = confusion.sum(axis=0)
    actual = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(actual > 0, tp / actual, 0.0)
        f1 = np.where(predicted + actual > 0, 2 * tp / (predicted + actual), 0.0)
    return {
        "accuracy": _ratio(tp.sum(), confusion.sum()),
        "precision": float(precision.mean()),
        "recall": float(recall.mean()),
        "f1": float(f1.mean()),
    }


def confusion_matrix(p: Predictions) -> list[list[int]]:
    k = len(p.classes or [])
    cells = np.bincount(np.asarray(p.y) * k + np.asarray(p.predicted), minlength=k * k)
    return [[int(v) for v in row] for row in cells.reshape(k, k)]


# -- regression -----------------------------------------------------------------------
def regression_metrics(p: Predictions) -> dict[str, float]:
    y = np.asarray(p.y, dtype=np.float64)
    errors = np.asarray(p.predicted, dtype=np.float64) - y
    squared = float(np.dot(errors, errors))
    total = float(np.sum((y - y.mean()) ** 2))
    return {
        "mae": float(np.mean(np.abs(errors))),
        "rmse": float(np.sqrt(squared / len(y))),
        "r2": (1.0 - squared / total) if total > 0 else float("nan"),
        "mape": float(np.mean(np.abs(errors) / np.maximum(np.abs(y), _EPSILON))),
    }


# -- bootstrap ------------------------------------------------------------------------
_BOOTSTRAP_SCORE_BINS = 8192
_BOOTSTRAP_CHUNK = 25


def bootstrap_intervals(
    p: Predictions, resamples: int, seed: int, level: float = 0.95
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of the headline metrics over ``resamples`` resamples of rows.

    Classification metrics depend on the rows only through counts per cell (true class,
    predicted class, score rank), so a resample of n rows is drawn as one multinomial
    over the cells, exactly as drawing rows would give, at a cost independent of n.
    Scores are grouped into at most 8,192 rank bins for the resampled ROC AUC (ties
    within a bin count one half); the draws are shifted by the binning's effect on the
    full data, leaving an error far below the interval's width. Regression resamples
    are row counts applied to three weighted sums.
    """
    if resamples <= 0 or len(p.y) == 0:
        return {}
    rng = np.random.default_rng(seed)
    if p.task == "regression":
        draws = _regression_draws(p, resamples, rng)
    elif p.task == "multiclass":
        draws = _multiclass_draws(p, resamples, rng)
    else:
        draws = _binary_draws(p, resamples, rng)
    tail = (1 - level) / 2 * 100
    intervals = {}
    for key, values in draws.items():
        finite = values[np.isfinite(values)]
        if len(finite):
            low, high = np.percentile(finite, [tail, 100 - tail])
            intervals[key] = (float(low), float(high))
    return intervals


def _multinomial_cells(
    cells: IntArray, n_cells: int, resamples: int, rng: np.random.Generator
) -> Any:
    """Yields chunks of resampled cell counts, shape (chunk, n_cells)."""
    counts = np.bincount(cells, minlength=n_cells)
    used = np.flatnonzero(counts)
    n = int(counts.sum())
    probabilities = counts[used] / n
    done = 0
    while done < resamples:
        size = min(_BOOTSTRAP_CHUNK, resamples - done)
        drawn = np.zeros((size, n_cells))
        drawn[:, used] = rng.multinomial(n, probabilities, size=size)
        done += size
        yield drawn


def _binary_draws(p: Predictions, resamples: int, rng: np.random.Generator) -> dict[str, Any]:
    y = np.asarray(p.y, dtype=np.int64)
    predicted = np.asarray(p.predicted, dtype=np.int64)
    bins, n_bins = np.zeros(len(y), dtype=np.int64), 1
    shift = 0.0
    if p.scores is not None:
        groups, n_groups = p.score_groups()
        bins, n_bins = groups, n_groups
        if n_groups > _BOOTSTRAP_SCORE_BINS:
            bins = groups * _BOOTSTRAP_SCORE_BINS // n_groups
            n_bins = _BOOTSTRAP_SCORE_BINS
            yf = y.astype(np.float64)
            exact = _auc_from_groups(groups, n_groups, yf, 1.0 - yf)
            shift = exact - _auc_from_groups(bins, n_bins, yf, 1.0 - yf)
    cells = (bins * 2 + y) * 2 + predicted
    found: dict[str, list[Any]] = {"accuracy": [], "f1": [], "roc_auc": []}
    for drawn in _multinomial_cells(cells, n_bins * 4, resamples, rng):
        table = drawn.reshape(len(drawn), n_bins, 2, 2)  # resample, bin, true, predicted
        totals = table.sum(axis=1)
        tn, fp, fn, tp = totals[:, 0, 0], totals[:, 0, 1], totals[:, 1, 0], totals[:, 1, 1]
        found["accuracy"].append((tp + tn) / totals.sum(axis=(1, 2)))
        with np.errstate(invalid="ignore", divide="ignore"):
            found["f1"].append(np.nan_to_num(2 * tp / (2 * tp + fp + fn)))
        if p.scores is not None:
            positive = table[:, :, 1, :].sum(axis=2)
            negative = table[:, :, 0, :].sum(axis=2)
            below = np.cumsum(negative, axis=1) - negative
            with np.errstate(invalid="ignore", divide="ignore"):
                auc = np.sum(positive * (below + 0.5 * negative), axis=1) / (
                    positive.sum(axis=1) * negative.sum(axis=1)
                )
            found["roc_auc"].append(auc + shift)
    return {k: np.concatenate(v) for k, v in found.items() if v}


def _multiclass_draws(p: Predictions, resamples: int, rng: np.random.Generator) -> dict[str, Any]:
    k = len(p.classes or [])
    cells = np.asarray(p.y, dtype=np.int64) * k + np.asarray(p.predicted, dtype=np.int64)
    accuracy: list[float] = []
    f1: list[float] = []
    for drawn in _multinomial_cells(cells, k * k, resamples, rng):
        for row in drawn:
            macro = _macro_from_confusion(row.reshape(k, k))
            accuracy.append(macro["accuracy"])
            f1.append(macro["f1"])
    return {"accuracy": np.asarray(accuracy), "f1": np.asarray(f1)}


def _regression_draws(p: Predictions, resamples: int, rng: np.random.Generator) -> dict[str, Any]:
    y = np.asarray(p.y, dtype=np.float64)
    errors = np.asarray(p.predicted, dtype=np.float64) - y
    sums = np.vstack([errors * errors, y, y * y])  # weighted by row counts per resample
    n = len(y)
    rmse = np.empty(resamples)
    r2 = np.empty(resamples)
    for i in range(resamples):
        weights = np.bincount(rng.integers(0, n, size=n), minlength=n).astype(np.float64)
        sse, total, squares = sums @ weights
        rmse[i] = np.sqrt(sse / n)
        sst = squares - total * total / n
        r2[i] = 1.0 - sse / sst if sst > 0 else np.nan
    return {"rmse": rmse, "r2": r2}


# -- curves (pre-aggregated for plots) --------------------------------------------------
def binary_curves(p: Predictions, max_points: int = 1000) -> dict[str, Any]:
    """ROC and PR curves (at most ``max_points`` thresholds) and calibration bins."""
    scores = np.asarray(p.scores, dtype=np.float64)
    y = np.asarray(p.y, dtype=np.float64)
    groups, n_groups = p.score_groups()
    pos = np.bincount(groups, weights=y, minlength=n_groups)[::-1]
    total = np.bincount(groups, minlength=n_groups)[::-1].astype(np.float64)
    tp = np.cumsum(pos)
    fp = np.cumsum(total - pos)
    keep = np.unique(np.linspace(0, n_groups - 1, min(max_points, n_groups)).astype(np.int64))
    tp, fp = tp[keep], fp[keep]
    tpr = tp / tp[-1] if tp[-1] else np.zeros_like(tp)
    fpr = fp / fp[-1] if fp[-1] else np.zeros_like(fp)
    precision = tp / np.maximum(tp + fp, 1)
    curves: dict[str, Any] = {
        "roc": {"fpr": [0.0, *fpr.tolist()], "tpr": [0.0, *tpr.tolist()]},
        "pr": {"recall": tpr.tolist(), "precision": precision.tolist()},
    }
    if p.probabilistic:
        counts, mean_score, mean_label = _calibration_bins(scores, y)
        filled = counts > 0
        curves["calibration"] = {
            "mean_predicted": mean_score[filled].tolist(),
            "fraction_positive": mean_label[filled].tolist(),
            "count": counts[filled].astype(int).tolist(),
        }
    return curves


def residual_summary(p: Predictions, bins: int = 50) -> dict[str, Any]:
    """A residual histogram and the mean residual per predicted-value decile."""
    predicted = np.asarray(p.predicted, dtype=np.float64)
    residuals = np.asarray(p.y, dtype=np.float64) - predicted
    counts, edges = np.histogram(residuals, bins=bins)
    quantiles = np.unique(np.quantile(predicted, np.linspace(0, 1, 11)))
    deciles = np.clip(np.searchsorted(quantiles, predicted, side="right") - 1, 0, None)
    size = np.bincount(deciles).astype(np.float64)
    filled = size > 0
    return {
        "histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
        "by_prediction": {
            "mean_predicted": (np.bincount(deciles, weights=predicted) / np.maximum(size, 1))[
                filled
            ].tolist(),
            "mean_residual": (np.bincount(deciles, weights=residuals) / np.maximum(size, 1))[
                filled
            ].tolist(),
        },
    }
