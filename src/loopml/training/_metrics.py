"""Task detection and the default metrics of each task, computed from one prediction pass.

Not public: :func:`loopml.training.train` is the interface. Classifiers are asked for
``predict_proba`` once; the labels come from its arg-max, so nothing is predicted twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from loopml.errors import ValidationError

__all__ = ["CLASSIFICATION_METRICS", "REGRESSION_METRICS", "compute_metrics", "task_of"]

CLASSIFICATION_METRICS = ("accuracy", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")


def task_of(model: Any, target: Any) -> str:
    """``"classification"`` or ``"regression"``: the estimator's own declaration when it
    has one, else the target's dtype (text, bool, category and whole numbers with at most
    20 distinct values are classes)."""
    declared = _declared_task(model)
    if declared is not None:
        return declared
    import pandas as pd

    dtype = target.dtype
    if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
        return "classification"
    if pd.api.types.is_integer_dtype(dtype) and target.nunique() <= 20:
        return "classification"
    return "regression"


def _declared_task(model: Any) -> str | None:
    if callable(model) and not hasattr(model, "fit"):
        return None
    from sklearn.base import is_classifier, is_regressor

    try:
        if is_classifier(model):
            return "classification"
        if is_regressor(model):
            return "regression"
    except (AttributeError, TypeError):
        pass
    kind = getattr(model, "_estimator_type", None)
    return {"classifier": "classification", "regressor": "regression"}.get(str(kind))


def metric_names(task: str, requested: Sequence[str] | None) -> list[str]:
    """The metrics to compute: the task's defaults, or the requested subset of them."""
    known = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    if requested is None:
        return list(known)
    if isinstance(requested, str):
        requested = [requested]
    unknown = [name for name in requested if name not in known]
    if unknown or not requested:
        raise ValidationError(
            f"Unknown metric(s) {', '.join(map(repr, unknown)) or '(none given)'} for "
            f"{task}; choose from {', '.join(known)}."
        )
    return list(dict.fromkeys(requested))


def compute_metrics(
    model: Any,
    features: Any,
    truth: Any,
    task: str,
    names: list[str],
    outputs: dict[str, Any] | None = None,
) -> dict[str, float]:
    """The named metrics of ``model`` on ``features`` against ``truth``; ``outputs``
    receives the predictions made (``predicted``, ``probabilities``, ``classes``), so
    nothing predicts on the same rows twice."""
    from sklearn import metrics

    y = np.asarray(truth)
    if task == "regression":
        predicted = np.asarray(model.predict(features), dtype="float64")
        if outputs is not None:
            outputs.update(predicted=predicted, probabilities=None, classes=None)
        error = predicted - y.astype("float64")
        computed = {
            "rmse": lambda: float(np.sqrt(np.mean(error**2))),
            "mae": lambda: float(np.mean(np.abs(error))),
            "r2": lambda: float(metrics.r2_score(y, predicted)),
        }
        return {name: computed[name]() for name in names}

    classes = getattr(model, "classes_", None)
    needs_scores = any(name in ("roc_auc", "log_loss") for name in names)
    probabilities = None
    if hasattr(model, "predict_proba") and classes is not None:
        probabilities = np.asarray(model.predict_proba(features))
        predicted = np.asarray(classes)[probabilities.argmax(axis=1)]
    else:
        predicted = np.asarray(model.predict(features))
    if outputs is not None:
        outputs.update(predicted=predicted, probabilities=probabilities, classes=classes)
    if classes is None:
        classes = np.unique(np.concatenate([y, predicted]))
    binary = len(classes) == 2
    result: dict[str, float] = {}
    for name in names:
        if name == "accuracy":
            result[name] = float(metrics.accuracy_score(y, predicted))
        elif name == "f1":
            result[name] = float(
                metrics.f1_score(y, predicted, pos_label=classes[1], average="binary")
                if binary
                else metrics.f1_score(y, predicted, average="macro")
            )
        elif needs_scores and probabilities is None:
            result[name] = float("nan")  # the model gives no probabilities
        elif name == "roc_auc":
            result[name] = _roc_auc(y, probabilities, classes)
        elif name == "log_loss":
            result[name] = float(metrics.log_loss(y, probabilities, labels=classes))
    return result


def _roc_auc(y: np.ndarray, probabilities: Any, classes: Any) -> float:
    from sklearn import metrics

    if len(np.unique(y)) < 2:  # a fold holding one class only: the AUC is undefined
        return float("nan")
    try:
        if len(classes) == 2:
            return float(metrics.roc_auc_score(y == classes[1], probabilities[:, 1]))
        return float(metrics.roc_auc_score(y, probabilities, multi_class="ovr", labels=classes))
    except ValueError:  # a class of the model missing from this fold's truth
        return float("nan")
