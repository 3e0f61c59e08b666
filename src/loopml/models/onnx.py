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
from collections.abc import Mapping
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
    onnx_model: bytes | Any, frame: pd.DataFrame | Mapping[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Predicts ``frame`` with ONNX Runtime.

    Args:
        onnx_model: ONNX bytes (their InferenceSession is cached), an
            ``onnxruntime.InferenceSession`` or an :class:`OnnxModel`.
        frame: Raw records with the model's input columns (extra columns are ignored),
            as a DataFrame or, skipping pandas, a mapping of column name to a 1-D
            numpy array (numbers only).

    Returns:
        ``(labels, probabilities)`` for a classifier, ``(predictions, None)`` for a
        regressor. Labels have the classes' own type (bools stay bools).
    """
    classes: np.ndarray | None
    if isinstance(onnx_model, OnnxModel):
        session, inputs, classes = onnx_model.session, onnx_model.inputs, onnx_model.classes
    else:
        session = _session(onnx_model) if isinstance(onnx_model, bytes) else onnx_model
        inputs = [(spec.name, spec.type) for spec in session.get_inputs()]
        classes = _classes(session)
    feeds = {name: _feed(frame, name, kind) for name, kind in inputs}
    outputs = session.run(None, feeds)
    if len(outputs) == 1:  # a regressor's one output, shaped (rows, 1)
        return np.asarray(outputs[0]).ravel(), None
    labels = np.asarray(outputs[0])
    # skl2onnx encodes bool classes as int64 labels 0 and 1.
    if classes is not None and classes.dtype == bool:
        labels = labels.astype(bool)
    probabilities = np.asarray(outputs[1])
    if classes is not None:
        labels = _ties_to_first_class(labels, probabilities, classes)
    return labels, probabilities


# Probabilities this close are a tie that float32 sums break at random (their order
# depends on ONNX Runtime's threads): 25 of 50 trees gives 0.49999994 or 0.50000006.
_TIE = 1e-6


def _ties_to_first_class(
    labels: np.ndarray, probabilities: np.ndarray, classes: np.ndarray
) -> np.ndarray:
    """``labels`` with each near-tie given to the first tied class, as scikit-learn's
    argmax does; other rows keep the ONNX label (some models' labels are not argmax)."""
    if probabilities.ndim != 2 or probabilities.shape[1] != len(classes) or not len(labels):
        return labels
    ordered = np.sort(probabilities, axis=1)
    tied = ordered[:, -1] - ordered[:, -2] <= _TIE if ordered.shape[1] > 1 else None
    if tied is None or not tied.any():
        return labels
    top = probabilities[tied]
    first = (top >= top.max(axis=1, keepdims=True) - _TIE).argmax(axis=1)
    labels = labels.copy()
    labels[tied] = classes.take(first).astype(labels.dtype, copy=False)
    return labels


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
        # Read once: the session's metadata is parsed again on every call otherwise.
        self.inputs = [(spec.name, spec.type) for spec in session.get_inputs()]
        self.classes = _classes(session)

    @classmethod
    def from_bytes(cls, onnx_bytes: bytes) -> OnnxModel:
        return cls(_session(onnx_bytes), onnx_bytes)

    @classmethod
    def load(cls, path: str | Path) -> OnnxModel:
        return cls.from_bytes(Path(path).read_bytes())

    @property
    def classes_(self) -> np.ndarray:
        if self.classes is None:
            raise AttributeError("This ONNX model is a regressor: it has no classes_.")
        return self.classes

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return onnx_predict(self, frame)[0]

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        probabilities = onnx_predict(self, frame)[1]
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


def _feed(
    frame: pd.DataFrame | Mapping[str, np.ndarray], name: str, tensor_type: str
) -> np.ndarray:
    """One column as the ONNX input wants it: an (n, 1) array of its type."""
    if name not in (frame if isinstance(frame, Mapping) else frame.columns):
        raise ValidationError(
            f"The rows lack the model's input column {name!r}; pass every column the "
            "model was trained on."
        )
    column = frame[name]
    if isinstance(column, np.ndarray):  # a mapping's column: numbers, no pandas
        if tensor_type not in _NUMBER_TYPES:
            raise ValidationError(
                f"The ONNX model's input {name!r} is {tensor_type}: pass it in a DataFrame."
            )
        return column.astype(_NUMBER_TYPES[tensor_type]).reshape(-1, 1)
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
