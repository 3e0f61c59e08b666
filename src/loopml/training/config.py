"""A training run described in a YAML file, as ``loopml train --config train.yaml`` reads it.

Example ``train.yaml``::

    model: sklearn.ensemble.RandomForestClassifier
    params: {n_estimators: 200, max_depth: 8}
    data: churn@4
    target: churned
    features: [age, plan, spend]      # optional: every other column by default
    split: {by: stratified}            # optional
    cv: 5                              # optional: or {folds: 5, by: group, column: customer_id}
    metrics: [accuracy, roc_auc]       # optional: the task's defaults otherwise
    experiment: churn                  # optional: the dataset name by default
    run_name: rf-200                   # optional
    preprocess: true                   # optional
    task: classification               # optional
    search:                            # optional: a hyperparameter search (ws.tune)
      n_trials: 50
      space: {C: {type: float, low: 0.001, high: 100, log: true}, penalty: [l1, l2]}
      metric: roc_auc                  # optional; also direction, executor, sampler,
                                       # pruner, study_name, timeout, workers
"""

from __future__ import annotations

import difflib
import importlib
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.errors import ValidationError

if TYPE_CHECKING:
    from loopml.training.search import TuneResult
    from loopml.training.trainer import TrainResult
    from loopml.workspace import Workspace

__all__ = ["SEARCH_KEYS", "TrainConfig", "import_object", "load_train_config"]

SEARCH_KEYS = (
    "n_trials", "space", "metric", "direction", "executor", "sampler", "pruner",
    "study_name", "timeout", "workers",
)  # fmt: skip


@dataclass(frozen=True)
class TrainConfig:
    """The settings of one training run; ``model`` is an import path."""

    model: str
    data: str
    target: str
    params: dict[str, Any] = field(default_factory=dict)
    features: list[str] | None = None
    split: dict[str, Any] | str | None = None
    cv: int | dict[str, Any] | None = None
    metrics: list[str] | None = None
    experiment: str | None = None
    run_name: str | None = None
    preprocess: bool = True
    task: str | None = None
    search: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, values: Any, source: str = "the config") -> TrainConfig:
        """Checks the keys and their kinds; every problem is named with the fix."""
        if not isinstance(values, dict):
            raise ValidationError(
                f"{source} must be a YAML mapping (model:, data:, target:, ...), got "
                f"{type(values).__name__}."
            )
        known = [f.name for f in fields(cls)]
        for key in values:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ValidationError(
                    f"Unknown key {key!r} in {source}.{hint} The keys are: {', '.join(known)}."
                )
        missing = [k for k in ("model", "data", "target") if not values.get(k)]
        if missing:
            raise ValidationError(
                f"{source} needs {', '.join(missing)}: (see loopml train --help)."
            )
        for key in ("model", "data", "target"):
            if not isinstance(values[key], str):
                raise ValidationError(f"{key} in {source} must be text, got {values[key]!r}.")
        if not isinstance(values.get("params") or {}, dict):
            raise ValidationError(
                f"params in {source} must be a mapping, got {values['params']!r}."
            )
        search = values.get("search")
        if search is not None:
            if not isinstance(search, dict) or not search.get("space"):
                raise ValidationError(
                    f"search in {source} must be a mapping with a space:, e.g. search: "
                    "{n_trials: 50, space: {C: {type: float, low: 0.001, high: 100}}}."
                )
            unknown = [key for key in search if key not in SEARCH_KEYS]
            if unknown:
                raise ValidationError(
                    f"Unknown search key(s) {', '.join(map(repr, unknown))} in {source}; "
                    f"search takes {', '.join(SEARCH_KEYS)}."
                )
        return cls(**{**values, "params": dict(values.get("params") or {})})

    def build_model(self) -> Any:
        """An instance of ``model`` made with ``params``."""
        factory = import_object(self.model)
        try:
            return factory(**self.params)
        except TypeError as error:
            raise ValidationError(
                f"Cannot make {self.model} with params {self.params!r}: {error}. Check the "
                "param names against its documentation."
            ) from None

    def run(self, workspace: Workspace) -> TrainResult:
        """Trains as configured: ``ws.train`` with these settings."""
        from loopml.training.trainer import train

        return train(workspace, self.build_model(), **self._options())

    def _options(self) -> dict[str, Any]:
        """The settings ``train`` and ``tune`` share."""
        return {
            "data": self.data,
            "target": self.target,
            "features": self.features,
            "split": self.split,
            "experiment": self.experiment,
            "cv": self.cv,
            "metrics": self.metrics,
            "run_name": self.run_name,
            "preprocess": self.preprocess,
            "task": self.task,
        }

    def tune(self, workspace: Workspace) -> TuneResult:
        """Searches as the ``search:`` section says: ``ws.tune`` with these settings."""
        from loopml.training.search import tune

        search = dict(self.search or {})
        space = search.pop("space", None)
        return tune(workspace, self.build_model(), space=space or {}, **self._options(), **search)


def load_train_config(path: str | os.PathLike[str]) -> TrainConfig:
    """Reads and checks a ``train.yaml`` file."""
    import yaml

    source = Path(path)
    try:
        text = source.read_text()
    except OSError as error:
        raise ValidationError(
            f"Cannot read the training config {source}: {error.strerror or error}."
        ) from None
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValidationError(f"{source} is not valid YAML: {error}") from None
    return TrainConfig.from_dict(values, str(source))


def import_object(path: str) -> Any:
    """The object at a dotted import path such as ``sklearn.ensemble.RandomForestClassifier``."""
    module_name, _, name = path.rpartition(".")
    example = "write the full path, e.g. sklearn.ensemble.RandomForestClassifier"
    if not module_name or not name:
        raise ValidationError(f"Cannot import {path!r}: {example}.")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValidationError(
            f"Cannot import {path!r}: module {module_name!r} not found ({error}). Check the "
            f"spelling, or install the package that provides it; {example}."
        ) from None
    try:
        return getattr(module, name)
    except AttributeError:
        raise ValidationError(
            f"Cannot import {path!r}: module {module_name!r} has no {name!r}; {example}."
        ) from None
