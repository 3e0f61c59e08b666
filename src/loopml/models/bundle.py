"""Model bundles: the on-disk model format that tracking, the registry and serving share.

A bundle is a folder (or a ``.tar.gz`` of one) holding::

    loopml-model.yaml    the manifest: flavor, model file, versions, requirements,
                         signature, and the sha256 of every other file
    model.joblib         the model, as its flavor writes it
    requirements.txt     the pinned distributions the model needs (``dist==version``)
    input_example.json   a few input rows as records, when an example was given

Every file but the manifest is hashed in it, so :func:`verify_bundle` notices a changed,
missing or added file.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from loopml.errors import (
    ConflictError,
    CorruptArtifactError,
    IncompatibleModelError,
    NotFoundError,
    ValidationError,
)
from loopml.models._requirements import pins_for
from loopml.models.flavors import Flavor, flavor_of
from loopml.models.reference import REFERENCE_NAME, Reference
from loopml.models.signature import ColumnSpec, OutputSpec, Signature, output_type

if TYPE_CHECKING:
    import pandas as pd

    from loopml.data.contract import Contract

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "Manifest",
    "pack_bundle",
    "unpacked_bundle",
    "verify_bundle",
    "write_bundle",
]

FORMAT_VERSION = 1
MANIFEST_NAME = "loopml-model.yaml"
_EXAMPLE_NAME = "input_example.json"
_EXAMPLE_ROWS = 5
_REDO = "Re-export the model (run.log_model or write_bundle), or register it again."


@dataclass(frozen=True)
class Manifest:
    """The contents of ``loopml-model.yaml``."""

    flavor: str
    model_file: str
    model_class: str
    python: str
    loopml: str
    requirements: list[str]
    signature: Signature
    input_example: str | None
    created: str
    files: dict[str, str]
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "flavor": self.flavor,
            "model_file": self.model_file,
            "model_class": self.model_class,
            "python": self.python,
            "loopml": self.loopml,
            "requirements": list(self.requirements),
            "signature": self.signature.to_dict(),
            "input_example": self.input_example,
            "created": self.created,
            "files": dict(self.files),
        }

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        """The manifest of the bundle in ``folder``."""
        path = folder / MANIFEST_NAME
        if not path.is_file():
            raise NotFoundError(
                f"{folder} is not a model bundle: it has no {MANIFEST_NAME}. Pass a folder or "
                ".tar.gz written by write_bundle, run.log_model or the registry."
            )
        try:
            # libyaml when present: the pure-Python parser dominates loading small models.
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
            version = int(data["format_version"])
            if version > FORMAT_VERSION:
                raise IncompatibleModelError(
                    f"The bundle in {folder} has format version {version}; this loopml reads "
                    f"up to {FORMAT_VERSION}. Upgrade loopml (pip install -U loopml)."
                )
            return cls(
                flavor=str(data["flavor"]),
                model_file=str(data["model_file"]),
                model_class=str(data["model_class"]),
                python=str(data["python"]),
                loopml=str(data["loopml"]),
                requirements=[str(pin) for pin in data["requirements"]],
                signature=Signature.from_dict(data["signature"]),
                input_example=data.get("input_example"),
                created=str(data["created"]),
                files={str(name): str(sha) for name, sha in data["files"].items()},
                format_version=version,
            )
        except (yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError) as error:
            raise CorruptArtifactError(
                f"The manifest {path} is unreadable ({type(error).__name__}: {error}). {_REDO}"
            ) from None


def write_bundle(
    model: Any,
    folder: str | os.PathLike[str],
    *,
    signature: Signature | Contract | None = None,
    input_example: pd.DataFrame | list[dict[str, Any]] | None = None,
    flavor: str | None = None,
    reference: Reference | None = None,
) -> Manifest:
    """Writes ``model`` as a bundle into ``folder`` (new or empty) and returns its manifest.

    Args:
        model: A fitted model: scikit-learn, LightGBM or XGBoost (their scikit-learn
            classes; a fitted transformer without ``predict`` is kept too, with no
            outputs in its signature), or any picklable object with ``predict``.
        folder: Where the bundle goes; created if needed, refused if it holds files.
        signature: The model's inputs: a :class:`Signature`, or the data contract of the
            training data (limited to the columns the model was fitted on, in their
            order, when the model records them as ``feature_names_in_``). Inferred from
            ``input_example`` when not given; without either, inputs are not checked.
        input_example: A few input rows (DataFrame or records); the first five are
            stored, and the model must predict on them.
        flavor: A key of ``FLAVORS``; chosen from the model's class by default.
        reference: The model's reference profile (:func:`loopml.models.reference.
            build_reference`), stored as ``reference.json`` for monitoring.

    Raises:
        ValidationError: no flavor takes the model (it has no predict), it does not
            pickle, the flavor is unknown, or the example does not fit the signature or
            the model.
        ConflictError: ``folder`` already holds files.
    """
    target = Path(folder)
    if target.is_dir() and any(target.iterdir()):
        raise ConflictError(f"{target} already holds files; write the bundle to a new folder.")
    from loopml.models._inputs import as_frame, conform  # pandas, only when writing

    chosen = flavor_of(model, flavor)
    example = None if input_example is None else as_frame(input_example).head(_EXAMPLE_ROWS)
    inputs = _inputs(model, signature, example)
    outputs = signature.outputs if isinstance(signature, Signature) else None
    # The example must fit the signature; the model then predicts on it as it will later.
    conformed = example
    if example is not None and inputs is not None:
        conformed = conform(example, inputs)
    full_signature = Signature(inputs, outputs or _outputs(model, chosen, conformed))
    requirements = pins_for(chosen.modules(model))

    target.mkdir(parents=True, exist_ok=True)
    chosen.save(model, target / chosen.model_file)
    (target / "requirements.txt").write_text("".join(f"{pin}\n" for pin in requirements))
    if example is not None:
        example.to_json(target / _EXAMPLE_NAME, orient="records", date_format="iso")
    if reference is not None:
        reference.write(target / REFERENCE_NAME)
    manifest = Manifest(
        flavor=chosen.name,
        model_file=chosen.model_file,
        model_class=f"{type(model).__module__}.{type(model).__qualname__}",
        python=platform.python_version(),
        loopml=importlib.metadata.version("loopml"),
        requirements=requirements,
        signature=full_signature,
        input_example=_EXAMPLE_NAME if example is not None else None,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        files={name: _sha256(path) for name, path in _bundle_files(target).items()},
    )
    (target / MANIFEST_NAME).write_text(
        yaml.safe_dump(manifest.to_dict(), sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
    return manifest


def _inputs(
    model: Any, signature: Signature | Contract | None, example: pd.DataFrame | None
) -> list[ColumnSpec] | None:
    fitted_on = getattr(model, "feature_names_in_", None)
    columns = None if fitted_on is None else [str(name) for name in fitted_on]
    if isinstance(signature, Signature):
        if signature.inputs is not None:
            return signature.inputs
    elif signature is not None:
        return Signature.from_contract(signature, columns).inputs
    if example is None:
        return None
    if columns is not None:
        missing = [name for name in columns if name not in example.columns]
        if missing:
            raise ValidationError(
                f"The input example lacks columns the model was fitted on: "
                f"{', '.join(missing)}. Pass rows of the data the model was trained on."
            )
        example = example[columns]
    return Signature.from_example(example).inputs


def _outputs(model: Any, flavor: Flavor, example: pd.DataFrame | None) -> OutputSpec | None:
    """What predict returns: the classes' type for a classifier, else the type of its
    predictions on the example (``float`` without one)."""
    import numpy as np

    if not callable(getattr(model, "predict", None)):
        return None
    predicted = None
    if example is not None:
        try:
            predicted = np.asarray(model.predict(example))
        except Exception as error:
            raise ValidationError(
                f"The model cannot predict on its input example ({type(error).__name__}: "
                f"{error}); pass rows it can score."
            ) from error
    proba = flavor.can_predict_proba(model)
    classes = getattr(model, "classes_", None)
    if classes is not None:
        values = np.asarray(classes)
        return OutputSpec(output_type(values), classes=values.tolist(), predict_proba=proba)
    kind = "float" if predicted is None else output_type(predicted)
    return OutputSpec(kind, predict_proba=proba)


def verify_bundle(path: str | os.PathLike[str]) -> Manifest:
    """Checks every file of the bundle (folder or archive) against the manifest's sha256.

    Raises:
        CorruptArtifactError: a listed file is missing or changed, or an unlisted file is
            present; the message names the file.
        NotFoundError: there is no bundle at ``path``.
    """
    with unpacked_bundle(path) as folder:
        return verify_folder(folder)


def verify_folder(folder: Path) -> Manifest:
    manifest = Manifest.read(folder)
    present = _bundle_files(folder)
    for name, expected in manifest.files.items():
        if name not in present:
            raise CorruptArtifactError(
                f"The bundle {folder} is missing {name!r}, which its manifest lists. {_REDO}"
            )
        found = _sha256(present[name])
        if found != expected:
            raise CorruptArtifactError(
                f"{name!r} in the bundle {folder} changed after the bundle was written (sha256 "
                f"{found[:12]}..., the manifest says {expected[:12]}...). {_REDO}"
            )
    extra = sorted(set(present) - set(manifest.files))
    if extra:
        raise CorruptArtifactError(
            f"The bundle {folder} holds {', '.join(map(repr, extra))}, which its manifest does "
            f"not list. Remove {'them' if len(extra) > 1 else 'it'}, or: {_REDO}"
        )
    return manifest


def pack_bundle(folder: str | os.PathLike[str], archive: str | os.PathLike[str]) -> Path:
    """Writes the bundle in ``folder`` (verified first) as a ``.tar.gz`` at ``archive``."""
    source = Path(folder)
    verify_folder(source)
    target = Path(archive)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(target, "w:gz") as packed:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                packed.add(path, arcname=path.relative_to(source).as_posix())
    return target


@contextmanager
def unpacked_bundle(path: str | os.PathLike[str]) -> Iterator[Path]:
    """The bundle's folder: ``path`` itself, or an archive extracted to a temporary folder
    (removed on exit). Extraction uses tarfile's ``data`` filter, which refuses absolute
    paths, links out of the folder and device files."""
    source = Path(path)
    if source.is_dir():
        yield source
        return
    if not source.is_file():
        raise NotFoundError(
            f"No model bundle at {source}: pass a bundle folder, a .tar.gz of one, "
            "'runs:/<run id>/model' or 'models:/<name>/<version>'."
        )
    if not tarfile.is_tarfile(source):
        raise ValidationError(
            f"{source} is neither a bundle folder nor a .tar.gz archive of one "
            "(see loopml.models.pack_bundle)."
        )
    with tempfile.TemporaryDirectory(prefix="loopml-bundle-") as scratch:
        try:
            with tarfile.open(source) as packed:
                packed.extractall(scratch, filter="data")
        except (tarfile.TarError, OSError) as error:
            raise CorruptArtifactError(
                f"Cannot extract the bundle archive {source}: {error}. {_REDO}"
            ) from None
        root = Path(scratch)
        inner = [child for child in root.iterdir() if child.is_dir()]
        # An archive of the folder itself (tar czf model.tar.gz model/) works too.
        if not (root / MANIFEST_NAME).exists() and len(inner) == 1:
            root = inner[0]
        yield root


def _bundle_files(folder: Path) -> dict[str, Path]:
    """Every file in the bundle except the manifest, by relative POSIX path."""
    return {
        path.relative_to(folder).as_posix(): path
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.relative_to(folder).as_posix() != MANIFEST_NAME
    }


def _sha256(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()
