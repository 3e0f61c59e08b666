"""Cross-validation folds (scikit-learn's KFold, StratifiedKFold, TimeSeriesSplit,
GroupKFold) and the scores of each fold.

Not public: :func:`loopml.training.train` is the interface.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from loopml.errors import ValidationError

__all__ = ["CV_KEYS", "CV_METHODS", "cross_validate", "cv_spec"]

CV_KEYS = ("folds", "by", "column", "seed")
CV_METHODS = ("kfold", "stratified", "time", "group")


def cv_spec(cv: int | Mapping[str, Any], task: str) -> dict[str, Any]:
    """``cv`` completed: stratified folds for classification, shuffled k-fold for
    regression, seed 0."""
    if isinstance(cv, bool) or not isinstance(cv, (int, Mapping)):
        raise ValidationError(
            f"cv must be a number of folds or a mapping such as {{'folds': 5, 'by': "
            f"'group', 'column': 'customer_id'}}, got {cv!r}."
        )
    given: Mapping[str, Any] = {"folds": cv} if isinstance(cv, int) else cv
    unknown = sorted(set(given) - set(CV_KEYS))
    if unknown:
        raise ValidationError(
            f"Unknown cv key(s) {', '.join(unknown)}; cv takes {', '.join(CV_KEYS)}."
        )
    folds = given.get("folds", 5)
    if not isinstance(folds, int) or isinstance(folds, bool) or folds < 2:
        raise ValidationError(f"cv folds must be a whole number of at least 2, got {folds!r}.")
    by = given.get("by", "stratified" if task == "classification" else "kfold")
    if by not in CV_METHODS:
        raise ValidationError(f"cv by must be one of {', '.join(CV_METHODS)}, got {by!r}.")
    if by == "stratified" and task == "regression":
        raise ValidationError(
            "Stratified folds need classes; for a regression use cv={'by': 'kfold'} "
            "(or 'group' / 'time' with column=)."
        )
    if by in ("time", "group") and not given.get("column"):
        what = "timestamp" if by == "time" else "group id"
        raise ValidationError(f"cv by {by!r} needs column= (the {what} column).")
    return {"folds": folds, "by": by, "column": given.get("column"), "seed": given.get("seed", 0)}


def cross_validate(
    fit: Callable[[Any, Any, Any], Any],
    frame: Any,
    target: str,
    features: list[str],
    task: str,
    names: list[str],
    spec: dict[str, Any],
) -> list[dict[str, float]]:
    """The metrics of each fold: fit on the other folds, score on this one."""
    from loopml.training._metrics import compute_metrics

    column = spec["column"]
    if column is not None and column not in frame.columns:
        raise ValidationError(
            f"cv column {column!r} is not in the data; choose one of "
            f"{', '.join(map(str, frame.columns[:20]))}."
        )
    results = []
    for train_rows, valid_rows in _folds(frame, target, spec):
        train_df, valid_df = frame.iloc[train_rows], frame.iloc[valid_rows]
        model = fit(train_df, valid_df, train_df[target])
        results.append(compute_metrics(model, valid_df[features], valid_df[target], task, names))
    return results


def _folds(frame: Any, target: str, spec: dict[str, Any]) -> Any:
    from sklearn import model_selection

    folds, by, seed = spec["folds"], spec["by"], spec["seed"]
    rows = np.arange(len(frame))
    if by == "kfold":
        return model_selection.KFold(folds, shuffle=True, random_state=seed).split(rows)
    if by == "stratified":
        labels = frame[target].to_numpy()
        splitter = model_selection.StratifiedKFold(folds, shuffle=True, random_state=seed)
        return splitter.split(rows, labels)
    if by == "group":
        groups = frame[spec["column"]].to_numpy()
        return model_selection.GroupKFold(folds).split(rows, groups=groups)
    order = np.argsort(frame[spec["column"]].to_numpy(), kind="stable")
    return (
        (order[train], order[valid])
        for train, valid in model_selection.TimeSeriesSplit(folds).split(order)
    )
