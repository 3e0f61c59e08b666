"""Turning what ``ws.evaluate`` is given into a model, its run and a DataFrame (see
``loopml.evaluation``).

Model references resolve by scheme through ``MODEL_SCHEMES``: ``runs:/`` from a run's
artifacts, ``models:/`` through the registry (the version's run owns its evaluations
and gates).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from loopml.errors import ValidationError

if TYPE_CHECKING:
    from loopml.data.catalog import DatasetVersion
    from loopml.tracking.run import Run
    from loopml.workspace import Workspace

__all__ = ["MODEL_SCHEMES", "ResolvedData", "ResolvedModel", "resolve_data", "resolve_model"]


@dataclass
class ResolvedModel:
    model: Any
    run: Run | None  # the run the model was stored by, when it came from one


@dataclass
class ResolvedData:
    frame: pd.DataFrame
    version: DatasetVersion | None


def _from_run_uri(workspace: Workspace, reference: str) -> ResolvedModel:
    rest = reference.removeprefix("runs:/")
    run_id, _, path = rest.partition("/")
    run = workspace.get_run(run_id)
    return ResolvedModel(run.load_model(path or "model"), run)


def _from_registry(workspace: Workspace, reference: str) -> ResolvedModel:
    version = workspace.registry.get(reference)
    return ResolvedModel(workspace.registry.load(version).model, version.run)


# scheme -> resolver of a reference string with that scheme
MODEL_SCHEMES: dict[str, Callable[[Workspace, str], ResolvedModel]] = {
    "runs:/": _from_run_uri,
    "models:/": _from_registry,
}


def resolve_model(workspace: Workspace, model: Any) -> ResolvedModel:
    """A fitted estimator, a Run, a ModelVersion, a run id (or unique prefix), or a model URI."""
    from loopml.tracking.run import Run

    uri = getattr(model, "uri", None)
    if isinstance(uri, str) and uri.startswith("models:/"):  # a registry ModelVersion
        return _from_registry(workspace, uri)
    if isinstance(model, Run):
        return ResolvedModel(model.load_model(), model)
    if isinstance(model, str):
        for scheme, resolver in MODEL_SCHEMES.items():
            if model.startswith(scheme):
                return resolver(workspace, model)
        run = workspace.get_run(model)
        return ResolvedModel(run.load_model(), run)
    inner_run = getattr(model, "run", None)
    if isinstance(inner_run, Run) and hasattr(model, "model"):  # a training result
        return ResolvedModel(model.model, inner_run)
    if not callable(getattr(model, "predict", None)):
        raise ValidationError(
            f"Cannot evaluate a {type(model).__name__}: it has no predict method. Pass a "
            "fitted estimator, a Run, a run id or 'runs:/<run id>/model'."
        )
    return ResolvedModel(model, None)


def resolve_data(workspace: Workspace, data: Any) -> ResolvedData:
    """A DataFrame, a dataset reference (``"churn@4"``) or a DatasetVersion."""
    from loopml.data.catalog import DatasetVersion

    if isinstance(data, pd.DataFrame):
        return ResolvedData(data, None)
    if isinstance(data, (str, DatasetVersion)):
        version = workspace.data.version(data)
        return ResolvedData(workspace.data.get(version), version)
    raise ValidationError(
        f"data must be a pandas DataFrame, a dataset reference such as 'churn@4' or a "
        f"DatasetVersion, got {type(data).__name__}."
    )
