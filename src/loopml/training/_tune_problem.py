"""The data of a hyperparameter search, cut into the steps each trial runs, and the fits.

Not public: :func:`loopml.training.search.tune` is the interface. A search makes the same
checks and split as ``ws.train`` (see :func:`loopml.training.trainer.train`), once, before
any run starts; each trial then runs one step per cross-validation fold (or one holdout
step), and :func:`trial_metrics` names the scores of those steps as ``ws.train`` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopml.errors import ValidationError
from loopml.training._cross_validation import _folds, cv_spec
from loopml.training._data import check_classes, check_columns, check_target, resolve_data
from loopml.training._data import split_spec as _split_spec
from loopml.training._metrics import metric_names, task_of
from loopml.training.trainer import _columns_and_target, _fitter, training_settings

if TYPE_CHECKING:
    from loopml.training._data import TrainingData
    from loopml.workspace import Workspace

__all__ = ["TuneProblem", "trial_metrics"]


@dataclass
class TuneProblem:
    """The data of a search, split into steps, and how to build a fit for some params."""

    loaded: TrainingData
    task: str
    features: list[str]
    target: str
    names: list[str]
    folds: dict[str, Any] | None
    settings: dict[str, Any]
    fixed_params: dict[str, Any]
    is_trainer: bool
    preprocess: bool

    @classmethod
    def build(
        cls,
        workspace: Workspace,
        model: Any,
        data: Any,
        target: str,
        cv: Any,
        is_trainer: bool,
        options: Mapping[str, Any],
    ) -> TuneProblem:
        """The same checks and data as ``ws.train`` makes (see :func:`~.trainer.train`)."""
        task = options.get("task")
        if task is not None and task not in ("classification", "regression"):
            raise ValidationError(f"task must be 'classification' or 'regression', got {task!r}.")
        columns, target_values = _columns_and_target(workspace, data, target)
        features = options.get("features")
        feature_names = check_columns(columns, target, list(features) if features else None)
        check_target(target_values, target)
        task = task or task_of(model, target_values)
        names = metric_names(task, options.get("metrics"))
        folds = cv_spec(cv, task) if cv is not None else None
        split = options.get("split")
        spec = _split_spec(split, task, target) if split is not None or folds is None else None
        loaded = resolve_data(workspace, data, spec)
        if loaded.parts is not None and task == "classification" and spec is not None:
            check_classes(
                loaded.parts["train"][target], loaded.parts["valid"][target], target, spec["by"]
            )
        preprocess = bool(options.get("preprocess", True))
        settings = training_settings(loaded, target, feature_names, task, spec, folds, preprocess)
        settings = {key: value for key, value in settings.items() if value is not None}
        fixed = dict(options.get("params") or {})
        return cls(
            loaded, task, feature_names, target, names, folds, settings, fixed, is_trainer,
            preprocess,
        )  # fmt: skip

    def steps(self) -> list[tuple[str, Any, str, Any]]:
        """(train frame, train rows, valid frame, valid rows) of each step."""
        if self.folds is not None:
            whole = self.loaded.fit_rows
            return [
                ("fit", train, "fit", valid)
                for train, valid in _folds(whole, self.target, self.folds)
            ]
        return [("train", None, "valid", None)]

    def frames(self) -> dict[str, Any]:
        """The frames the steps name, shared once with the executor."""
        if self.folds is not None:
            return {"fit": self.loaded.fit_rows}
        parts = self.loaded.parts or {}
        return {"train": parts["train"], "valid": parts["valid"]}

    def fit_for(self, model: Any, params: Mapping[str, Any]) -> Any:
        """``fit(train_df, valid_df, y_train) -> fitted model`` with ``params`` set."""
        return _fitter(
            model,
            {**self.fixed_params, **params},
            self.is_trainer,
            self.preprocess,
            self.loaded,
            self.features,
            self.target,
            self.task,
        )

    def refit(self, model: Any, params: Mapping[str, Any]) -> Any:
        """``model`` with ``params``, fit on the rows a ``ws.train`` run would fit on."""
        rows = self.loaded.fit_rows
        valid = self.loaded.parts["valid"] if self.loaded.parts else None
        return self.fit_for(model, params)(rows, valid, rows[self.target])


def trial_metrics(scores: list[dict[str, float]], names: list[str], cv: bool) -> dict[str, float]:
    """A trial's metrics from the scores of its steps, named as ``ws.train`` names them."""
    import numpy as np

    seconds = float(sum(step.get("fit_seconds", 0.0) for step in scores))
    if not cv:
        return {**{name: scores[0][name] for name in names}, "fit_seconds": seconds}
    summary: dict[str, float] = {}
    for name in names:
        values = np.array([step[name] for step in scores], dtype="float64")
        summary[f"cv_{name}_mean"] = float(values.mean())
        summary[f"cv_{name}_std"] = float(values.std())
        summary[name] = summary[f"cv_{name}_mean"]
    summary["cv_folds_done"] = float(len(scores))
    summary["fit_seconds"] = seconds
    return summary
