"""Loading a model from any reference, checked: ``loopml.models.load(ref).predict(df)``.

A reference is a bundle folder or archive, ``runs:/<run id>/<path>``, a Run, or
``models:/<name>/<version>`` / ``models:/<name>@<alias>`` (resolved by the registry).
Loading verifies every file against the manifest, refuses a model whose packages differ
here in major version, and checks each prediction input against the signature.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.errors import (
    CorruptArtifactError,
    IncompatibleModelError,
    ModelLoadError,
    NotFoundError,
    ValidationError,
)
from loopml.models._requirements import check_environment
from loopml.models.bundle import MANIFEST_NAME, Manifest, unpacked_bundle, verify_folder
from loopml.models.flavors import flavor_named, known_flavors
from loopml.models.signature import Signature

if TYPE_CHECKING:
    import pandas as pd

    from loopml.tracking.run import Run
    from loopml.training.trainer import TrainResult
    from loopml.workspace import Workspace

__all__ = ["LoadedModel", "load", "load_bundle"]

RUNS_SCHEME = "runs:/"
MODELS_SCHEME = "models:/"


class LoadedModel:
    """A model loaded from a bundle, with its manifest; predictions check their input.

    Inputs are a DataFrame or a list of dict records. Columns the signature does not
    name are dropped, the rest are put in its order and converted where that loses
    nothing (ints for floats, numbers and ISO times written as text); a missing column
    or a value of the wrong type is a ValidationError.
    """

    def __init__(self, model: Any, manifest: Manifest) -> None:
        self._model = model
        self._manifest = manifest

    @property
    def model(self) -> Any:
        """The model object itself (the fitted estimator)."""
        return self._model

    @property
    def manifest(self) -> Manifest:
        return self._manifest

    @property
    def signature(self) -> Signature:
        return self._manifest.signature

    @property
    def classes(self) -> list[Any] | None:
        """A classifier's classes, in the order of ``predict_proba``'s columns."""
        outputs = self._manifest.signature.outputs
        return None if outputs is None else outputs.classes

    def prepare(self, data: pd.DataFrame | list[dict[str, Any]]) -> pd.DataFrame:
        """The input as the model receives it: checked, ordered and converted."""
        from loopml.models._inputs import as_frame, conform  # pandas, not at import time

        frame = as_frame(data)
        inputs = self._manifest.signature.inputs
        return frame if inputs is None else conform(frame, inputs)

    def predict(self, data: pd.DataFrame | list[dict[str, Any]]) -> Any:
        """The model's predictions for ``data`` (after :meth:`prepare`)."""
        return self._method("predict", "it is a transformer, not a model")(self.prepare(data))

    def predict_proba(self, data: pd.DataFrame | list[dict[str, Any]]) -> Any:
        """Class probabilities, one column per class of :attr:`classes`."""
        reason = "it is not a probabilistic classifier. Call predict instead"
        return self._method("predict_proba", reason)(self.prepare(data))

    def _method(self, name: str, reason: str) -> Any:
        method = getattr(self._model, name, None)
        if not callable(method):
            kind = self._manifest.model_class.rpartition(".")[2]
            raise ValidationError(f"This {kind} has no {name}: {reason}.")
        return method

    def __repr__(self) -> str:
        return f"LoadedModel({self._manifest.model_class}, flavor={self._manifest.flavor!r})"


def load(
    ref: str | os.PathLike[str] | Run | TrainResult, *, workspace: Workspace | None = None
) -> LoadedModel:
    """Loads a model from a bundle path or archive, a run, or the registry.

    Args:
        ref: A bundle folder or ``.tar.gz``; ``runs:/<run id>/<path>`` (path ``model``
            by default); a Run or a training result (the run's ``model``);
            ``models:/<name>/<version>`` or ``models:/<name>@<alias>``.
        workspace: Where runs and registered models are; ``Workspace.open()`` by
            default (a Run brings its own).

    Example:
        >>> loopml.models.load("models:/churn@production").predict(df)

    Raises:
        CorruptArtifactError: a file does not match the manifest.
        IncompatibleModelError: the model needs packages or a Python this environment
            lacks (a minor version difference only warns, with ModelVersionWarning).
        ModelLoadError: the model file would not unpickle.
        NotFoundError: nothing at ``ref``.
    """
    from loopml.tracking.run import Run

    if isinstance(ref, str) and ref.startswith((RUNS_SCHEME, MODELS_SCHEME)):
        if workspace is not None:
            return _from_workspace(workspace, ref)
        from loopml.workspace import Workspace

        with Workspace.open(create=False) as opened:
            return _from_workspace(opened, ref)
    if isinstance(ref, (str, os.PathLike)):
        return load_bundle(ref)
    run = getattr(ref, "run", ref)  # a training or tuning result stands for its run
    if isinstance(run, Run):
        return _from_run(run, "model")
    raise ValidationError(
        f"Cannot load a model from a {type(ref).__name__}: pass a bundle path, a Run, a "
        "training result, 'runs:/<run id>/model' or 'models:/<name>/<version>'."
    )


def _from_workspace(workspace: Workspace, ref: str) -> LoadedModel:
    if ref.startswith(MODELS_SCHEME):
        return load_bundle(workspace.registry.local_bundle(ref))
    run_id, _, path = ref.removeprefix(RUNS_SCHEME).partition("/")
    return _from_run(workspace.get_run(run_id), path)


def _from_run(run: Run, path: str) -> LoadedModel:
    """Loads through a local copy in the workspace's cache, named by the manifest's sha256
    (which fixes every file's hash), so a second load downloads nothing."""
    path = path.strip("/") or "model"
    listed = {artifact.path: artifact for artifact in run.artifacts(path)}
    manifest = listed.get(f"{path}/{MANIFEST_NAME}")
    if manifest is None:
        raise NotFoundError(
            f"Run {run.id} has no model bundle at {path!r} (no {path}/{MANIFEST_NAME}). Log "
            "one with run.log_model(model, path)."
        )
    cached = run.workspace.settings.home / "cache" / "models" / manifest.sha256
    if not cached.is_dir():
        _download(run, path, cached)
    try:
        return load_bundle(cached)
    except CorruptArtifactError:
        # The copy changed on disk; the artifact store verifies what it hands out again.
        shutil.rmtree(cached, ignore_errors=True)
        _download(run, path, cached)
        return load_bundle(cached)


def _download(run: Run, path: str, cached: Path) -> None:
    cached.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".download-", dir=cached.parent))
    try:
        run.download_artifacts(scratch, prefix=path)
        try:
            (scratch / path).rename(cached)
        except OSError:
            if not cached.is_dir():
                raise  # not a concurrent load that filled the cache first
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def load_bundle(path: str | os.PathLike[str]) -> LoadedModel:
    """Loads the bundle folder or archive at ``path``: verified, compatibility-checked."""
    with unpacked_bundle(path) as folder:
        manifest = verify_folder(folder)
        check_environment(manifest.python, manifest.requirements, str(path))
        flavor = flavor_named(manifest.flavor)
        if flavor is None:
            raise IncompatibleModelError(
                f"The model in {path} has flavor {manifest.flavor!r}, which this loopml does "
                f"not know (it knows {known_flavors()}). Upgrade loopml, or import the "
                "module that adds that flavor first."
            )
        model_file = folder / manifest.model_file
        try:
            model = flavor.load(model_file)
        except Exception as error:
            raise ModelLoadError(
                f"Cannot load the model file {manifest.model_file!r} of {path}: "
                f"{type(error).__name__}: {error}. {_likely_cause(error, manifest)}"
            ) from error
    return LoadedModel(model, manifest)


def _likely_cause(error: Exception, manifest: Manifest) -> str:
    if isinstance(error, (ModuleNotFoundError, AttributeError)):
        return (
            f"Likely cause: the code defining {manifest.model_class} is not importable here. "
            "Install the package that defines it; a class defined in a script or notebook "
            "(__main__) must move into an importable module before the model is logged again."
        )
    return (
        f"Likely cause: the file is damaged or was written by other versions of "
        f"{', '.join(manifest.requirements) or 'its packages'} than it says. Re-export the "
        "model in an environment with the versions in its requirements.txt."
    )
