"""The ``onnx`` flavor: a model exported to ONNX, run by ONNX Runtime.

The ONNX model takes the same raw records as the model it was exported from (one input
per column; text as strings with missing values as ``""``, numbers as doubles with NaN)
and answers ``predict`` / ``predict_proba`` / ``classes_`` like it. Exporting lives in
``loopml.registry.onnx_export``; this module only runs exported models, so a served
bundle needs onnxruntime and nothing of skl2onnx.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.errors import ConfigError, ValidationError
from loopml.models.flavors import FLAVORS, Flavor

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CLASSES_KEY", "OnnxFlavor", "OnnxModel", "onnx_predict"]

# Metadata key under which the exporter stores the classes (skl2onnx keeps only labels).
CLASSES_KEY = "loopml.classes"


def onnx_predict(
    onnx_model: bytes | Any, frame: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray | None]:
    """Predicts ``frame`` with ONNX Runtime.

    Args:
        onnx_model: ONNX bytes (their InferenceSession is cached), an
            ``onnxruntime.InferenceSession`` or an :class:`OnnxModel`.
        frame: Raw records with the model's input columns (extra columns are ignored).

    Returns:
        ``(labels, probabilities)`` for a classifier, ``(predictions, None)`` for a
        regressor. Labels have the classes' own type (bools stay bools).
    """
    if isinstance(onnx_model, OnnxModel):
        session = onnx_model.session
    elif isinstance(onnx_model, bytes):
        session = _session(onnx_model)
    else:
        session = onnx_model
    feeds = {spec.name: _feed(frame, spec.name, spec.type) for spec in session.get_inputs()}
    outputs = session.run(None, feeds)
    if len(outputs) == 1:  # a regressor's one output, shaped (rows, 1)
        return np.asarray(outputs[0]).ravel(), None
    labels = np.asarray(outputs[0])
    classes = _classes(session)
    # skl2onnx encodes bool classes as int64 labels 0 and 1.
    if classes is not None and classes.dtype == bool:
        labels = labels.astype(bool)
    return labels, np.asarray(outputs[1])


class OnnxModel:
    """An exported ONNX model with the prediction interface of the model it came from.

    Example:
        >>> model = OnnxModel.load("model.onnx")
        >>> model.predict(frame), model.predict_proba(frame), model.classes_
    """

    flavor = "onnx"
    model_file = "model.onnx"

    def __init__(self, session: Any, onnx_bytes: bytes | None = None) -> None:
        self.session = session
        self.onnx_bytes = onnx_bytes

    @classmethod
    def from_bytes(cls, onnx_bytes: bytes) -> OnnxModel:
        return cls(_session(onnx_bytes), onnx_bytes)

    @classmethod
    def load(cls, path: str | Path) -> OnnxModel:
        return cls.from_bytes(Path(path).read_bytes())

    @property
    def classes_(self) -> np.ndarray:
        classes = _classes(self.session)
        if classes is None:
            raise AttributeError("This ONNX model is a regressor: it has no classes_.")
        return classes

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return onnx_predict(self.session, frame)[0]

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        probabilities = onnx_predict(self.session, frame)[1]
        if probabilities is None:
            raise ValidationError(
                "This ONNX model is a regressor: it has no probabilities; call predict."
            )
        return probabilities

    def __repr__(self) -> str:
        names = [spec.name for spec in self.session.get_inputs()]
        return f"OnnxModel(inputs={names})"


@functools.lru_cache(maxsize=16)
def _session(onnx_bytes: bytes) -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError(
            "Running an ONNX model needs onnxruntime; run: pip install 'loopml[onnx]'."
        ) from None

    return onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])


def _classes(session: Any) -> np.ndarray | None:
    stored = session.get_modelmeta().custom_metadata_map.get(CLASSES_KEY)
    return None if stored is None else np.asarray(json.loads(stored))


_NUMBER_TYPES = {"tensor(double)": np.float64, "tensor(float)": np.float32}


def _feed(frame: pd.DataFrame, name: str, tensor_type: str) -> np.ndarray:
    """One column as the ONNX input wants it: an (n, 1) array of its type."""
    if name not in frame.columns:
        raise ValidationError(
            f"The rows lack the model's input column {name!r}; pass every column the "
            "model was trained on."
        )
    column = frame[name]
    if tensor_type == "tensor(string)":
        missing = column.isna().to_numpy()
        values = column.astype(str).to_numpy(dtype=object)
        values[missing] = ""
        return values.reshape(-1, 1)
    if tensor_type in _NUMBER_TYPES:
        try:
            numbers = column.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError) as error:
            raise ValidationError(
                f"Column {name!r} must hold numbers for this ONNX model ({error})."
            ) from error
        return numbers.astype(_NUMBER_TYPES[tensor_type]).reshape(-1, 1)
    raise ValidationError(
        f"The ONNX model's input {name!r} has type {tensor_type}, which loopml does not feed; "
        "export the model with loopml's to_onnx."
    )


class OnnxFlavor(Flavor):
    """Bundles holding ``model.onnx``; requirements: onnxruntime and numpy."""

    name = "onnx"
    model_file = "model.onnx"

    def matches(self, model: Any) -> bool:
        return isinstance(model, OnnxModel)

    def save(self, model: Any, path: Path) -> None:
        if not isinstance(model, OnnxModel) or model.onnx_bytes is None:
            raise ValidationError("The onnx flavor saves OnnxModel.from_bytes(...) models.")
        path.write_bytes(model.onnx_bytes)

    def load(self, path: Path) -> Any:
        return OnnxModel.load(path)

    def modules(self, model: Any) -> set[str]:
        return {"onnxruntime", "numpy", "pandas"}


FLAVORS[OnnxFlavor.name] = OnnxFlavor()
