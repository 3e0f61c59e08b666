"""One model version as the server holds it: loaded, warmed up, with its batcher.

A :class:`ServedModel` is what the router hands a request to. Several can be served at
once (a deployment's stable and canary arms), each with its own batcher, so nothing
else in the server assumes there is a single model.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from loopml.errors import NotFoundError, ValidationError
from loopml.models import LoadedModel, Signature, load_bundle, unpacked_bundle
from loopml.serving.inputs import RowBlock, RowPlan

if TYPE_CHECKING:
    from loopml.serving.microbatch import MicroBatcher
    from loopml.workspace import Workspace

__all__ = ["ModelSource", "Prediction", "ServedModel", "load_served"]

# Classifiers whose predict is, in scikit-learn's own code, the class of the highest
# predict_proba: for them one predict_proba call gives both answers.
_ARGMAX_CLASSIFIERS = (
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.ExtraTreesClassifier",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.ExtraTreeClassifier",
)


@dataclass(frozen=True)
class Prediction:
    """A model call's answers: predictions, and class probabilities for a classifier."""

    predictions: np.ndarray[Any, Any]
    probabilities: np.ndarray[Any, Any] | None = None

    def rows(self, start: int, stop: int) -> Prediction:
        probabilities = None if self.probabilities is None else self.probabilities[start:stop]
        return Prediction(self.predictions[start:stop], probabilities)


@dataclass(frozen=True)
class ModelSource:
    """Where a served model comes from: a registry reference or a bundle path."""

    reference: str
    name: str
    model: str | None = None  # the registered model's name, for models:/ references
    alias: str | None = None  # set for models:/name@alias: the server follows it

    @classmethod
    def of(cls, reference: str | os.PathLike[str], name: str | None = None) -> ModelSource:
        text = os.fspath(reference)
        if text.startswith("models:/"):
            from loopml.registry import parse_reference

            parsed = parse_reference(text)
            return cls(str(parsed), name or parsed.name, parsed.name, parsed.alias)
        if text.startswith("runs:/"):
            return cls(text, name or "model")
        path = Path(text)
        if not path.exists():
            raise NotFoundError(
                f"Nothing to serve at {text!r}: pass models:/<name>@<alias>, "
                "models:/<name>/<version>, runs:/<run id>/model or a bundle folder or archive."
            )
        stem = path.name.removesuffix(".tar.gz").removesuffix(".tgz")
        return cls(text, name or stem)

    @property
    def registered(self) -> bool:
        return self.model is not None


@dataclass
class ServedModel:
    """A loaded, warmed-up model version and the batcher that feeds it."""

    name: str
    version: int | None
    runtime: str
    model: LoadedModel
    example: pd.DataFrame | None = None
    batcher: MicroBatcher | None = None
    executor: Executor | None = None
    loaded_seconds: float = 0.0
    plan: RowPlan | None = field(default=None, init=False, repr=False)
    """How requests skip pandas for this model's signature (None: they cannot)."""
    _argmax: bool = field(default=False, repr=False)
    _onnx: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        estimator = self.model.model
        final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
        qualified = f"{type(final).__module__}.{type(final).__qualname__}"
        self._argmax = qualified in _ARGMAX_CLASSIFIERS
        self._onnx = self.model.manifest.flavor == "onnx"
        self.plan = RowPlan.of(self.model.signature)

    @property
    def signature(self) -> Signature:
        return self.model.signature

    @property
    def classes(self) -> list[Any] | None:
        return self.model.classes

    @property
    def label(self) -> str:
        """The version as text for metrics and headers (``bundle`` when unregistered)."""
        return "bundle" if self.version is None else str(self.version)

    def run(self, rows: pd.DataFrame | RowBlock) -> Prediction:
        """Predicts rows that :meth:`LoadedModel.prepare` (a frame) or
        :func:`~loopml.serving.inputs.block_from_body` (a block) has checked (blocking)."""
        estimator = self.model.model
        if self._onnx:  # one session run gives both answers
            from loopml.models.onnx import onnx_predict

            feed: pd.DataFrame | dict[str, np.ndarray[Any, Any]]
            if isinstance(rows, RowBlock):  # columns straight from the array: no pandas
                values = rows.values
                feed = {name: values[:, i] for i, name in enumerate(rows.columns)}
            else:
                feed = rows
            labels, probabilities = onnx_predict(estimator, feed)
            return Prediction(labels, probabilities)
        # Models fitted on a DataFrame check its column names: one frame per model call.
        frame = rows.frame() if isinstance(rows, RowBlock) else rows
        if self.classes is None or not callable(getattr(estimator, "predict_proba", None)):
            return Prediction(np.asarray(estimator.predict(frame)))
        probabilities = np.asarray(estimator.predict_proba(frame))
        if self._argmax:
            predictions = np.asarray(estimator.classes_).take(probabilities.argmax(axis=1))
        else:
            predictions = np.asarray(estimator.predict(frame))
        return Prediction(predictions, probabilities)

    async def predict(self, rows: pd.DataFrame | RowBlock) -> Prediction:
        """Predicts checked rows: through the batcher, else in the executor's thread.

        Enqueues before its first ``await``, so a request that picked this model is
        served by it even if a hot swap replaces it meanwhile.
        """
        if self.batcher is not None:
            return await self.batcher.submit(rows)
        return await asyncio.get_running_loop().run_in_executor(self.executor, self.run, rows)

    def warm_up(self) -> None:
        """Runs the bundle's input example through both paths once (blocking), so the
        first request pays no lazy initialisation."""
        if self.example is None:
            return
        prepared = self.model.prepare(self.example)
        self.run(prepared)
        plan = self.plan
        # An int block cannot hold NaN: an example with missing values warms the frame only.
        if (
            plan is not None
            and list(prepared.columns) == list(plan.names)
            and not prepared.isna().to_numpy().any()
        ):
            self.run(RowBlock(prepared.to_numpy(dtype=plan.dtype), plan.columns))

    async def close(self) -> None:
        """Finishes the requests already queued for this model (after a swap)."""
        if self.batcher is not None:
            await self.batcher.close()


def load_served(
    workspace: Workspace | None,
    source: ModelSource,
    runtime: str,
    version: int | None = None,
    make_batcher: Callable[[ServedModel], MicroBatcher | None] | None = None,
    executor: Executor | None = None,
) -> ServedModel:
    """Loads and warms up the model ``source`` names (blocking: call it in a thread).

    Args:
        version: For a registry reference, the version to load (the alias's holder as
            resolved by the caller); by default the reference's own.
    """
    started = time.perf_counter()
    folder: Path | None
    if source.model is not None:
        if workspace is None:
            raise ValidationError(f"Serving {source.reference} needs a workspace.")
        registry = workspace.registry
        found = (
            registry.get(source.model, version)
            if version is not None
            else registry.get(source.reference)
        )
        number: int | None = found.version
        folder = _bundle_folder(workspace, found.uri, runtime)
        loaded = load_bundle(folder)
    elif source.reference.startswith("runs:/"):
        from loopml.models import load

        number, folder, loaded = None, None, load(source.reference, workspace=workspace)
    else:
        number, folder = None, Path(source.reference)
        loaded = load_bundle(folder)
    if runtime == "onnx" and loaded.manifest.flavor != "onnx":
        raise ValidationError(
            f"{source.reference} is a {loaded.manifest.flavor} bundle, not an ONNX export; "
            "serve a registered version with --runtime onnx after `loopml models export "
            "NAME VERSION --format onnx`, or serve this bundle with --runtime pickle."
        )
    served = ServedModel(
        source.name,
        number,
        runtime,
        loaded,
        example=_example(folder, loaded),
        executor=executor,
    )
    served.warm_up()
    served.batcher = make_batcher(served) if make_batcher else None
    served.loaded_seconds = time.perf_counter() - started
    return served


def _bundle_folder(workspace: Workspace, uri: str, runtime: str) -> Path:
    if runtime != "onnx":
        return workspace.registry.local_bundle(uri)
    try:
        return workspace.registry.local_bundle(uri, flavor="onnx")
    except NotFoundError as error:
        name, _, number = uri.removeprefix("models:/").partition("/")
        raise NotFoundError(
            f"--runtime onnx serves a version's ONNX export and {uri} has none. Run "
            f"`loopml models export {name} {number} --format onnx` (it checks parity and "
            "stores the export with the version), or serve with --runtime pickle."
        ) from error


def _example(folder: Path | None, loaded: LoadedModel) -> pd.DataFrame | None:
    """The bundle's input example as a frame, or None when it has none."""
    name = loaded.manifest.input_example
    if folder is None or not name:
        return None
    with unpacked_bundle(folder) as unpacked:
        records = json.loads((unpacked / name).read_text(encoding="utf-8"))
    return pd.DataFrame.from_records(records) if records else None
