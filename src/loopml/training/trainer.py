"""Tracked training: ``ws.train(model, data=..., target=...)`` fits, scores and records a model.

The whole recipe in one place (the helpers live in ``_data``, ``_preprocess``,
``_metrics`` and ``_cross_validation``): check the data, split it (or cross-validate),
put preprocessing in front of a bare estimator, fit, score once, and record params,
metrics, inputs and the model on one run.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopml.errors import LoopmlError, ValidationError
from loopml.training._cross_validation import cross_validate, cv_spec
from loopml.training._data import (
    TrainingData,
    check_classes,
    check_columns,
    check_target,
    resolve_data,
    split_spec,
)
from loopml.training._metrics import compute_metrics, metric_names, task_of
from loopml.training._preprocess import build_preprocessor, column_kinds

if TYPE_CHECKING:
    import pandas as pd

    from loopml.data.catalog import DatasetVersion
    from loopml.tracking.run import Run
    from loopml.workspace import Workspace

__all__ = ["TrainResult", "Trainer", "TrainingError", "train"]

Trainer = Callable[[Any, Any, dict[str, Any]], Any]
"""A training function for any framework: ``fn(train_df, valid_df, params) -> fitted model``.

The frames hold the feature columns and the target; ``valid_df`` is None for the final
fit after cross-validation without a holdout. The returned model needs ``predict`` (and
``predict_proba`` plus ``classes_`` for the probability metrics of a classifier).
"""

_MAX_PARAM_TEXT = 2000


class TrainingError(LoopmlError, RuntimeError):
    """Fitting or scoring raised; the run (``run_id``) ended FAILED with the error recorded."""

    http_status = 500
    headline = "Training failed"

    def __init__(self, message: str, run_id: str) -> None:
        super().__init__(message)
        self.run_id = run_id


@dataclass
class TrainResult:
    """What :func:`train` made: the finished run, the fitted model and its metrics."""

    run: Run
    model: Any
    metrics: dict[str, float]
    task: str
    features: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in self.metrics.items())
        return f"TrainResult(run={self.run.id[:8]!r}, model={type(self.model).__name__}, {shown})"


def train(
    workspace: Workspace,
    model: Any,
    data: str | DatasetVersion | pd.DataFrame,
    target: str,
    features: Sequence[str] | None = None,
    split: Mapping[str, Any] | str | None = None,
    experiment: str | None = None,
    cv: int | Mapping[str, Any] | None = None,
    metrics: Sequence[str] | None = None,
    run_name: str | None = None,
    params: Mapping[str, Any] | None = None,
    *,
    preprocess: bool = True,
    task: str | None = None,
    log_model: bool = True,
) -> TrainResult:
    """Fits ``model`` on ``data`` and records everything about it on one run.

    Args:
        workspace: Where the data comes from and the run goes.
        model: A scikit-learn estimator or Pipeline (LightGBM and XGBoost through their
            scikit-learn classes), or a :data:`Trainer` function for any other framework.
            Estimators are cloned, so the object passed in stays unfitted.
        data: A dataset reference (``"churn@4"``) or DatasetVersion, recorded as the
            run's input; or a pandas DataFrame, of which only the shape is recorded.
        target: The column to predict.
        features: The input columns; every other column by default.
        split: The holdout split, e.g. ``{"by": "time", "column": "ts"}``; by default a
            stratified (classification) or random (regression) 80/20 train/valid split
            with seed 0, stored by ``ws.data.split`` so it is reproducible. Its
            fractions may also name a ``test`` part, which training never reads:
            ``ws.data.split`` with the same settings returns it for a final evaluation.
        experiment: The experiment of the run; the dataset name by default (``"default"``
            for a DataFrame).
        cv: Cross-validation folds, ``5`` or ``{"folds": 5, "by": "kfold" | "stratified"
            | "time" | "group", "column": ...}``. Without ``split`` the folds cover all
            rows and the final model is refit on all of them; with ``split`` they cover
            the train part and the valid part is scored as well.
        metrics: A subset of the task's metrics (classification: accuracy, f1, roc_auc,
            log_loss; regression: rmse, mae, r2).
        run_name: The run's name.
        params: For an estimator, parameters set on it (``set_params``); for a trainer
            function, passed to it. Logged either way.
        preprocess: Wrap a bare estimator in a Pipeline whose ColumnTransformer comes
            from the dataset's contract (or the dtypes); never done for a Pipeline.
        task: ``"classification"`` or ``"regression"`` when the model does not say.
        log_model: Store the fitted model on the run (``run.load_model()``).

    Metric names: holdout scores are ``<metric>``; cross-validation logs each fold as
    ``cv_<metric>`` (step = fold) and ``cv_<metric>_mean`` / ``cv_<metric>_std``, and
    without a holdout ``<metric>`` is the mean, so ``metrics.<metric>`` always exists.

    Raises:
        ValidationError: bad data or arguments (checked before the run starts).
        TrainingError: fitting or scoring raised; the run ended FAILED.
    """
    if isinstance(model, type):
        raise ValidationError(
            f"model must be an instance, got the class {model.__name__}; write "
            f"{model.__name__}() (with its params) instead."
        )
    is_trainer = not hasattr(model, "fit")
    if is_trainer and not callable(model):
        raise ValidationError(
            f"model must be a scikit-learn style estimator (with fit) or a training function "
            f"fn(train_df, valid_df, params), got {type(model).__name__}."
        )
    if task is not None and task not in ("classification", "regression"):
        raise ValidationError(f"task must be 'classification' or 'regression', got {task!r}.")
    columns, target_values = _columns_and_target(workspace, data, target)
    feature_names = check_columns(columns, target, list(features) if features else None)
    check_target(target_values, target)
    task = task or task_of(model, target_values)
    del target_values
    names = metric_names(task, metrics)
    folds = cv_spec(cv, task) if cv is not None else None
    spec = split_spec(split, task, target) if split is not None or folds is None else None
    loaded = resolve_data(workspace, data, spec)
    if loaded.parts is not None and task == "classification" and spec is not None:
        check_classes(
            loaded.parts["train"][target], loaded.parts["valid"][target], target, spec["by"]
        )
    settings = training_settings(loaded, target, feature_names, task, spec, folds, preprocess)
    fit = _fitter(model, params, is_trainer, preprocess, loaded, feature_names, target, task)
    if experiment is None:
        experiment = loaded.version.name if loaded.version is not None else "default"
    run = workspace.start_run(experiment=experiment, run_name=run_name, tags={"loopml.task": task})
    try:
        with run:
            chosen = {key: value for key, value in settings.items() if value is not None}
            run.log_params({**_estimator_params(model, params, is_trainer), **_texts(chosen)})
            if loaded.version is not None:
                run.log_input(loaded.version, role="train")
                if loaded.parts is not None:
                    run.log_input(loaded.version, role="valid")
            outputs: dict[str, Any] = {}
            fitted, scores = _fit_and_score(
                fit, loaded, target, feature_names, task, names, folds, run, outputs
            )
            run.log_metrics(scores)
            if log_model:
                loaded.log_model(run, fitted, feature_names, outputs or None)
    except LoopmlError:
        raise
    except Exception as error:
        raise TrainingError(
            f"Training run {run.id} ({run.info.name}) failed: {type(error).__name__}: {error}. "
            f"The run is marked FAILED with the traceback; see `loopml runs show {run.id[:8]}`.",
            run.id,
        ) from error
    return TrainResult(run, fitted, scores, task, feature_names)


def _columns_and_target(workspace: Workspace, data: Any, target: str) -> tuple[list[str], Any]:
    """The data's column names and its target column, read without loading the rest."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        columns = list(data.columns)
        check_columns(columns, target, None)
        return columns, data[target]
    if not isinstance(data, str) and not hasattr(data, "version_id"):
        resolve_data(workspace, data, None)  # raises the ValidationError on the type
    version = workspace.data.version(data)
    columns = [column["name"] for column in version.schema]
    check_columns(columns, target, None)
    return columns, workspace.data.get(version, columns=[target])[target]


def _fitter(
    model: Any,
    params: Mapping[str, Any] | None,
    is_trainer: bool,
    preprocess: bool,
    loaded: TrainingData,
    features: list[str],
    target: str,
    task: str,
) -> Callable[[Any, Any, Any], Any]:
    """``fit(train_df, valid_df, y_train) -> fitted model``, a fresh model per call.

    A classifier that only learns integer labels (XGBoost) is wrapped in a
    :class:`~loopml.training._labels.LabelEncodedClassifier` when the labels are not
    ``0 .. n - 1`` already, so the model still predicts the labels of the data.
    """
    if is_trainer:
        trainer_params = dict(params or {})
        return lambda train_df, valid_df, _: model(train_df, valid_df, trainer_params)
    from sklearn.base import clone
    from sklearn.pipeline import Pipeline

    from loopml.training._labels import LabelEncodedClassifier, needs_label_encoding

    template = clone(model)
    if params:
        try:
            template.set_params(**params)
        except ValueError as error:
            raise ValidationError(
                f"Cannot set params {dict(params)!r} on {type(model).__name__}: {error}"
            ) from None
    if task == "classification" and needs_label_encoding(template, loaded.fit_rows[target]):
        if isinstance(template, Pipeline):
            last, final = template.steps[-1]
            template.set_params(**{last: LabelEncodedClassifier(final)})
        else:
            template = LabelEncodedClassifier(template)
    if preprocess and not isinstance(template, Pipeline):
        kinds = column_kinds(loaded.fit_rows, features, loaded.contract)
        template = Pipeline([("preprocess", build_preprocessor(kinds)), ("model", template)])

    def fit(train_df: Any, valid_df: Any, y_train: Any) -> Any:
        return clone(template).fit(train_df[features], y_train)

    return fit


def _fit_and_score(
    fit: Callable[[Any, Any, Any], Any],
    loaded: TrainingData,
    target: str,
    features: list[str],
    task: str,
    names: list[str],
    folds: dict[str, Any] | None,
    run: Run,
    outputs: dict[str, Any] | None = None,
) -> tuple[Any, dict[str, float]]:
    scores: dict[str, float] = {}
    whole = loaded.fit_rows
    if folds is not None:
        per_fold = cross_validate(fit, whole, target, features, task, names, folds)
        for index, fold_scores in enumerate(per_fold):
            run.log_metrics({f"cv_{k}": v for k, v in fold_scores.items()}, step=index)
        import numpy as np

        for name in names:
            values = np.array([fold[name] for fold in per_fold], dtype="float64")
            scores[f"cv_{name}_mean"] = float(values.mean())
            scores[f"cv_{name}_std"] = float(values.std())
            if loaded.parts is None:
                scores[name] = scores[f"cv_{name}_mean"]
    valid = loaded.parts["valid"] if loaded.parts is not None else None
    started = time.perf_counter()
    fitted = fit(whole, valid, whole[target])
    scores["fit_seconds"] = time.perf_counter() - started
    if valid is not None:
        scores.update(compute_metrics(fitted, valid[features], valid[target], task, names, outputs))
    return fitted, scores


def _estimator_params(
    model: Any, params: Mapping[str, Any] | None, is_trainer: bool
) -> dict[str, Any]:
    """The estimator's own params (plain values only) and the model's class."""
    found: dict[str, Any] = {}
    if is_trainer:
        found.update(params or {})
        name = getattr(model, "__qualname__", type(model).__qualname__)
        found["train.model"] = f"{getattr(model, '__module__', '')}.{name}"
        return _texts(found)
    with contextlib.suppress(Exception):  # an estimator that cannot list params still trains
        found.update(model.get_params(deep=True))
    found.update(params or {})
    found = {k: v for k, v in found.items() if _plain(v)}
    found["train.model"] = f"{type(model).__module__}.{type(model).__qualname__}"
    return _texts(found)


def _plain(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(item) for item in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def _texts(values: Mapping[str, Any]) -> dict[str, Any]:
    """Params cut to a storable length (long feature lists keep their head)."""
    from loopml.tracking.run import param_text

    return {
        key: (text if len(text := param_text(value)) <= _MAX_PARAM_TEXT else text[:_MAX_PARAM_TEXT])
        for key, value in values.items()
    }


def training_settings(
    loaded: Any,
    target: str,
    features: Any,
    task: str,
    split: Any,
    folds: Any,
    preprocess: bool,
) -> dict[str, Any]:
    """The ``train.*`` params a training (or search) run records about how it trained."""
    return {
        "train.data": loaded.description,
        "train.target": target,
        "train.features": features,
        "train.task": task,
        "train.split": split,
        "train.cv": folds,
        "train.preprocess": preprocess,
    }
