"""Autologging for scikit-learn: ``fit`` inside a run records params, timing, metrics, model.

``loopml.autolog()`` wraps the ``fit`` method of every scikit-learn estimator class.
The wrapper does nothing outside a run (loopml never starts runs behind your back),
and only the outermost ``fit`` logs, so a Pipeline is recorded once, not per step.
"""

from __future__ import annotations

import functools
import time
from contextvars import ContextVar
from typing import Any

from loopml.tracking.run import active_run

__all__ = ["autolog"]

_ORIGINAL = "__loopml_original_fit__"
_inside_fit: ContextVar[bool] = ContextVar("loopml_inside_fit", default=False)
_settings = {"enabled": False, "log_models": True}


def autolog(disable: bool = False, log_models: bool = True) -> None:
    """Turns scikit-learn autologging on (or off with ``disable=True``).

    Args:
        disable: Restore the original ``fit`` methods.
        log_models: Store each fitted estimator as the run's ``model`` artifact.
    """
    from sklearn.utils import all_estimators

    _settings.update(enabled=not disable, log_models=log_models)
    for _name, cls in all_estimators():
        fit = cls.__dict__.get("fit")
        if fit is None:
            continue
        if disable:
            if hasattr(fit, _ORIGINAL):
                cls.fit = getattr(fit, _ORIGINAL)
        elif not hasattr(fit, _ORIGINAL):
            cls.fit = _wrap(fit)


def _wrap(fit: Any) -> Any:
    @functools.wraps(fit)
    def fit_and_log(self: Any, *args: Any, **kwargs: Any) -> Any:
        run = active_run()
        if run is None or not _settings["enabled"] or _inside_fit.get():
            return fit(self, *args, **kwargs)
        X = args[0] if args else kwargs.get("X")
        y = args[1] if len(args) > 1 else kwargs.get("y")
        # Held through _record too: the metric functions fit encoders of their own, which
        # must not be autologged as the run's model.
        token = _inside_fit.set(True)
        try:
            started = time.perf_counter()
            result = fit(self, *args, **kwargs)
            elapsed = time.perf_counter() - started
            _record(run, self, X, y, elapsed, kwargs.get("sample_weight"))
        finally:
            _inside_fit.reset(token)
        return result

    setattr(fit_and_log, _ORIGINAL, fit)
    return fit_and_log


def _record(run: Any, estimator: Any, X: Any, y: Any, elapsed: float, weight: Any) -> None:
    params = {k: v for k, v in estimator.get_params(deep=True).items() if _is_plain(v)}
    params["estimator_class"] = f"{type(estimator).__module__}.{type(estimator).__name__}"
    existing = run.params
    run.log_params({k: v for k, v in params.items() if k not in existing})
    metrics = {"fit_time_s": elapsed}
    if y is not None:
        metrics.update(_training_metrics(estimator, X, y, weight))
    run.log_metrics(metrics)
    if _settings["log_models"]:
        run.log_model(estimator, "model")


def _is_plain(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool, list, tuple))


def _training_metrics(estimator: Any, X: Any, y: Any, weight: Any) -> dict[str, float]:
    from sklearn import metrics
    from sklearn.base import is_classifier, is_regressor

    try:
        predicted = estimator.predict(X)
    except Exception:
        return {}
    result: dict[str, float] = {}
    if is_classifier(estimator):
        average = "binary" if len(set(y)) <= 2 else "weighted"
        result["training_accuracy"] = metrics.accuracy_score(y, predicted, sample_weight=weight)
        result["training_f1"] = metrics.f1_score(
            y, predicted, average=average, sample_weight=weight
        )
        result["training_precision"] = metrics.precision_score(
            y, predicted, average=average, sample_weight=weight, zero_division=0
        )
        result["training_recall"] = metrics.recall_score(
            y, predicted, average=average, sample_weight=weight, zero_division=0
        )
        if hasattr(estimator, "predict_proba"):
            try:
                proba = estimator.predict_proba(X)
                result["training_log_loss"] = metrics.log_loss(y, proba, sample_weight=weight)
                scores = proba[:, 1] if proba.shape[1] == 2 else proba
                result["training_roc_auc"] = metrics.roc_auc_score(
                    y, scores, multi_class="ovr", sample_weight=weight
                )
            except (ValueError, AttributeError):
                pass
    elif is_regressor(estimator):
        result["training_mae"] = metrics.mean_absolute_error(y, predicted, sample_weight=weight)
        result["training_rmse"] = metrics.root_mean_squared_error(
            y, predicted, sample_weight=weight
        )
        result["training_r2"] = metrics.r2_score(y, predicted, sample_weight=weight)
    return {k: float(v) for k, v in result.items()}
