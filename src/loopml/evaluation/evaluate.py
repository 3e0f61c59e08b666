"""``ws.evaluate``: metrics, intervals, slices, fairness, robustness, stored and logged.

The model predicts once; every metric, bootstrap resample and slice works on those
predictions as numpy arrays. The data is never described cell by cell: a stored
dataset version is identified by its content hash.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from loopml._time import now_ms
from loopml.errors import ValidationError
from loopml.evaluation._metrics import (
    LOWER_IS_BETTER,
    Predictions,
    binary_curves,
    bootstrap_intervals,
    classification_metrics,
    confusion_matrix,
    regression_metrics,
    residual_summary,
)
from loopml.evaluation._resolve import resolve_data, resolve_model
from loopml.evaluation._robustness import permutation_importance, robustness_report
from loopml.evaluation._slices import fairness_report, slice_frame, worst_slices
from loopml.evaluation.result import Evaluation
from loopml.store.repositories.evaluations import EvaluationRecord, EvaluationRepository

if TYPE_CHECKING:
    from loopml.tracking.run import Run
    from loopml.workspace import Workspace

__all__ = ["evaluate", "evaluations"]

HEADLINE = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "rmse"}


def evaluate(
    workspace: Workspace,
    model: Any,
    data: Any,
    target: str,
    *,
    slices: Sequence[str] | str | None = None,
    sensitive: str | None = None,
    robustness: bool = True,
    importance: bool = False,
    bootstrap: int = 200,
    seed: int = 0,
    min_slice_size: int = 30,
    log_to: Run | None = None,
) -> Evaluation:
    """Evaluates a model on data, stores the result and logs it to the model's run.

    Example:
        >>> evaluation = ws.evaluate(run, "churn@4", "churned", slices=["region"])
        >>> evaluation.to_frame()                  # metric, value, low, high
        >>> evaluation.worst_slice["recall"]       # {"column": ..., "value": ..., ...}

    Args:
        model: A fitted estimator, a Run (its ``load_model()``), a run id or
            ``"runs:/<run id>/<path>"``.
        data: A DataFrame, a dataset reference (``"churn@4"``) or a DatasetVersion.
        target: The column holding the true labels or values.
        slices: Columns to compute metrics per value of (per quantile bin when
            numeric with many values).
        sensitive: A column for fairness: metrics by group, demographic parity and
            equalized odds differences.
        robustness: Also score the headline metric under perturbed inputs.
        importance: Also compute permutation importance (on at most 10,000 rows).
        bootstrap: Resamples for the 95% intervals of the headline metrics (0: none).
        seed: Seed of the resamples, perturbations and samples.
        min_slice_size: Slices with fewer rows are left out.
        log_to: The run to log metrics (``eval.*``), plots and the dataset input to;
            by default the model's run, and none for a bare estimator.
    """
    if bootstrap < 0:
        raise ValidationError(f"bootstrap must be 0 or more resamples, got {bootstrap}.")
    if min_slice_size < 1:
        raise ValidationError(f"min_slice_size must be at least 1, got {min_slice_size}.")
    resolved = resolve_model(workspace, model)
    source = resolve_data(workspace, data)
    frame = source.frame
    slice_columns = [slices] if isinstance(slices, str) else list(slices or [])
    _check_columns(frame, target, slice_columns, sensitive)
    features = _features(resolved.model, frame, target)
    predictions = _predict(resolved.model, features, frame[target])

    if predictions.task == "regression":
        metrics = regression_metrics(predictions)
        curves: dict[str, Any] = {"residuals": residual_summary(predictions)}
    else:
        metrics = classification_metrics(predictions)
        curves = {
            "classes": [_plain(c) for c in predictions.classes or []],
            "confusion_matrix": confusion_matrix(predictions),
        }
        if predictions.task == "binary" and predictions.scores is not None:
            curves.update(binary_curves(predictions))
    intervals = bootstrap_intervals(predictions, bootstrap, seed)

    slice_table = (
        slice_frame(frame, slice_columns, predictions, min_slice_size)
        if slice_columns
        else pd.DataFrame()
    )
    fairness = None
    if sensitive is not None:
        if predictions.task == "multiclass":
            raise ValidationError(
                "Fairness differences need a binary classifier or a regressor; this model "
                f"has {len(predictions.classes or [])} classes. Use slices=[{sensitive!r}] "
                "for metrics by group."
            )
        fairness = fairness_report(frame, sensitive, predictions)

    headline = HEADLINE[predictions.task]
    if headline not in metrics:
        headline = "accuracy"
    robust = None
    if robustness:
        robust = robustness_report(
            features,
            lambda sample, rows: _score(
                resolved.model, sample, frame[target].iloc[rows], headline, predictions
            ),
            headline,
            headline in LOWER_IS_BETTER,
            seed,
        )
    found_importance = None
    if importance:
        scoring = {
            "binary": "roc_auc" if predictions.scores is not None else "accuracy",
            "multiclass": "accuracy",
            "regression": "neg_root_mean_squared_error",
        }[predictions.task]
        found_importance = permutation_importance(
            resolved.model, features, frame[target].to_numpy(), scoring, seed
        )

    target_run = log_to or resolved.run
    evaluation = Evaluation(
        task=predictions.task,
        target=target,
        n_rows=len(frame),
        metrics=metrics,
        intervals=intervals,
        slices=slice_table,
        worst_slice=worst_slices(slice_table) if not slice_table.empty else {},
        fairness=fairness,
        robustness=robust,
        importance=found_importance,
        curves=curves,
        settings={
            "bootstrap": bootstrap,
            "seed": seed,
            "min_slice_size": min_slice_size,
            "slices": slice_columns,
            "sensitive": sensitive,
            "headline": headline,
            "dataset_hash": source.version.content_hash if source.version else None,
        },
        evaluation_id=uuid.uuid4().hex,
        run_id=target_run.id if target_run is not None else None,
        dataset=source.version.ref if source.version else None,
        created_at=now_ms(),
    )
    if target_run is not None:
        _log(target_run, evaluation, source.version)
    EvaluationRepository(workspace.db).insert(
        EvaluationRecord(
            evaluation_id=evaluation.evaluation_id or "",
            run_id=evaluation.run_id,
            version_id=source.version.version_id if source.version else None,
            created_at=evaluation.created_at or 0,
            metrics=json.dumps(evaluation.to_dict()["metrics"]),
            result=json.dumps(evaluation.to_dict()),
        )
    )
    return evaluation


def evaluations(workspace: Workspace, run: Run | str) -> list[Evaluation]:
    """The stored evaluations of a run (given as a Run or its id), oldest first."""
    from loopml.tracking.run import Run

    run_id = run.id if isinstance(run, Run) else workspace.get_run(run).id
    return [
        Evaluation.from_dict(json.loads(record.result))
        for record in EvaluationRepository(workspace.db).for_run(run_id)
    ]


# -- checks -----------------------------------------------------------------------------
def _check_columns(
    frame: pd.DataFrame, target: str, slices: list[str], sensitive: str | None
) -> None:
    if target not in frame.columns:
        raise ValidationError(
            f"The target column {target!r} is not in the data (columns: "
            f"{_names(frame.columns)}). Pass target= the column holding the true labels."
        )
    for what, names in (("slice", slices), ("sensitive", [sensitive] if sensitive else [])):
        unknown = [name for name in names if name not in frame.columns]
        if unknown:
            raise ValidationError(
                f"Unknown {what} column(s) {unknown} (the data has {_names(frame.columns)})."
            )
    missing = int(frame[target].isna().sum())
    if missing:
        raise ValidationError(
            f"The target column {target!r} has {missing} missing value(s); metrics need a "
            "true label on every row. Drop or fill those rows first."
        )
    if len(frame) == 0:
        raise ValidationError("The data has no rows to evaluate on.")


def _names(columns: Any, limit: int = 12) -> str:
    names = [str(c) for c in columns]
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")


def _features(model: Any, frame: pd.DataFrame, target: str) -> pd.DataFrame:
    needed = getattr(model, "feature_names_in_", None)
    if needed is None:
        return frame.drop(columns=[target])
    needed = [str(n) for n in needed]
    missing = [name for name in needed if name not in frame.columns]
    if missing:
        raise ValidationError(
            f"The model needs feature(s) {missing} that the data does not have "
            f"(it has {_names(frame.columns)}). Evaluate on data with the training columns."
        )
    return frame[needed]


# -- predicting ---------------------------------------------------------------------------
def _predict(model: Any, features: pd.DataFrame, y: pd.Series) -> Predictions:
    """Predicts once and encodes labels as class indices."""
    try:
        predicted = np.asarray(model.predict(features))
    except Exception as error:
        raise ValidationError(
            f"The model could not predict on the data: {type(error).__name__}: {error}. "
            "Check that it is fitted and that the data has its training columns and types."
        ) from error
    classes = getattr(model, "classes_", None)
    if not _is_classifier(model, y):
        return Predictions("regression", y.to_numpy(dtype=np.float64), predicted.astype(np.float64))
    if classes is None:
        classes = np.unique(np.concatenate([y.to_numpy(), predicted]))
    class_list = list(classes)
    lookup = {_plain(c): i for i, c in enumerate(class_list)}
    unknown = set(map(_plain, pd.unique(y))) - set(lookup)
    if unknown:
        raise ValidationError(
            f"The target has label(s) {sorted(map(str, unknown))[:5]} that the model never "
            f"learned (its classes: {[_plain(c) for c in class_list]})."
        )
    y_codes = _encode(y.to_numpy(), class_list)
    predicted_codes = _encode(predicted, class_list)
    task = "binary" if len(class_list) == 2 else "multiclass"
    scores, probabilistic = _scores(model, features, task)
    return Predictions(task, y_codes, predicted_codes, scores, class_list, probabilistic)


def _is_classifier(model: Any, y: pd.Series) -> bool:
    from sklearn.base import is_classifier

    if is_classifier(model) or callable(getattr(model, "predict_proba", None)):
        return True
    if getattr(model, "classes_", None) is not None:
        return True
    # A model of unknown kind: text, category or boolean labels make it a classifier.
    return not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y)


def _encode(values: Any, classes: list[Any]) -> Any:
    """Class indices of labels (a hash lookup, whatever the label type)."""
    return pd.Index(classes).get_indexer(np.asarray(values)).astype(np.int64, copy=False)


def _scores(model: Any, features: pd.DataFrame, task: str) -> tuple[Any, bool]:
    if callable(getattr(model, "predict_proba", None)):
        probabilities = np.asarray(model.predict_proba(features), dtype=np.float64)
        return (probabilities[:, 1] if task == "binary" else probabilities), True
    if callable(getattr(model, "decision_function", None)) and task == "binary":
        return np.asarray(model.decision_function(features), dtype=np.float64), False
    return None, False


def _score(model: Any, sample: pd.DataFrame, y: pd.Series, metric: str, like: Predictions) -> float:
    """The headline metric of the model on a (perturbed) sample of the rows."""
    predictions = _predict(model, sample, y)
    found = (
        regression_metrics(predictions)
        if like.task == "regression"
        else classification_metrics(predictions)
    )
    return float(found[metric])


def _log(run: Run, evaluation: Evaluation, version: Any) -> None:
    run.log_metrics({f"eval.{k}": v for k, v in evaluation.metrics.items()})
    run.log_dict(evaluation.to_dict(), "evaluation/evaluation.json")
    for name, figure in evaluation.figures().items():
        run.log_figure(figure, f"evaluation/{name}.html")
    if version is not None:
        run.log_input(version, role="evaluation")
    run.flush()


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
