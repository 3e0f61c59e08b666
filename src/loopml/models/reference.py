"""A model's reference profile: what its training data and its predictions looked like.

Stored in the bundle as ``reference.json`` (so a registered version carries it, and
monitoring never needs the training set again): pre-binned per-feature summaries of the
rows the model was fit on (:mod:`loopml.data.summary`) and of its predictions on held-out
rows, in the prediction log's column names (``prediction``, ``proba_<class>``). Monitoring
summarises served traffic on the same bins, so the two compare and windows merge.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.errors import CorruptArtifactError, ValidationError

if TYPE_CHECKING:
    import pandas as pd

    from loopml.data.summary import FrameSummary

__all__ = [
    "REFERENCE_NAME",
    "Reference",
    "build_reference",
    "outputs_frame",
    "prediction_frame",
]

REFERENCE_NAME = "reference.json"
_FORMAT = 1


@dataclass(frozen=True)
class Reference:
    """The summaries a model version is monitored against."""

    features: FrameSummary
    predictions: FrameSummary | None
    source: str  # where the rows came from, for people reading a report

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "source": self.source,
            "features": self.features.to_dict(),
            "predictions": None if self.predictions is None else self.predictions.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reference:
        from loopml.data.summary import FrameSummary

        if int(data.get("format", 0)) > _FORMAT:
            raise ValidationError(
                f"This reference profile has format {data['format']}; this loopml reads up "
                f"to {_FORMAT}. Upgrade loopml (pip install -U loopml)."
            )
        try:
            predictions = data.get("predictions")
            return cls(
                FrameSummary.from_dict(data["features"]),
                None if predictions is None else FrameSummary.from_dict(predictions),
                str(data.get("source", "")),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise CorruptArtifactError(
                f"The reference profile is unreadable ({type(error).__name__}: {error}); "
                "set a new one with ws.registry.set_reference(ref, data)."
            ) from None

    @classmethod
    def read(cls, path: Path) -> Reference:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), separators=(",", ":")), encoding="utf-8")


def build_reference(
    model: Any,
    features: pd.DataFrame,
    holdout: pd.DataFrame | None = None,
    *,
    columns: Sequence[str] | None = None,
    source: str = "",
    predictions: pd.DataFrame | None = None,
) -> Reference:
    """Summarises ``features`` (the rows ``model`` was fit on) and the model's predictions
    on ``holdout`` (default: ``features``) into a :class:`Reference`.

    ``predictions`` (as :func:`outputs_frame` makes them) saves predicting on
    ``holdout`` again when the caller has the model's outputs on it already. A model
    whose predictions cannot be summarised (it fails on the rows, or returns something
    that is not one value per row) still gets its feature reference.
    """
    from loopml.data.summary import summarize

    names = list(columns) if columns is not None else list(features.columns)
    missing = [name for name in names if name not in features.columns]
    if missing:
        raise ValidationError(
            f"The reference rows lack the model's input column(s) {', '.join(missing)}; pass "
            "the data the model was trained on."
        )
    if features.empty:
        raise ValidationError("The reference data is empty; pass the rows the model was fit on.")
    feature_summary = summarize(features[names], names)
    rows = holdout if holdout is not None and not holdout.empty else features
    predicted = predictions if predictions is not None else prediction_frame(model, rows[names])
    prediction_summary = (
        summarize(predicted, list(predicted.columns), categorical=_categorical(predicted))
        if predicted is not None
        else None
    )
    return Reference(feature_summary, prediction_summary, source)


def outputs_frame(predicted: Any, probabilities: Any = None, classes: Any = None) -> pd.DataFrame:
    """Predictions (and class probabilities, rows by classes) in the prediction log's
    columns: ``prediction``, ``proba_<class>``."""
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame({"prediction": np.asarray(predicted)})
    if probabilities is not None:
        matrix = np.asarray(probabilities, dtype=np.float64)
        names = (
            [str(c) for c in classes]
            if classes is not None and len(classes) == matrix.shape[1]
            else [str(i) for i in range(matrix.shape[1])]
        )
        for i, name in enumerate(names):
            frame[f"proba_{name}"] = matrix[:, i]
    return frame


def prediction_frame(model: Any, rows: pd.DataFrame) -> pd.DataFrame | None:
    """The model's outputs on ``rows`` as :func:`outputs_frame` lays them out; None when
    the model cannot predict on them."""
    import numpy as np

    try:
        predicted = np.asarray(model.predict(rows))
    except Exception:  # a reference is a nicety; training must not fail over it
        return None
    if predicted.ndim != 1 or len(predicted) != len(rows):
        return None
    classes = getattr(model, "classes_", None)
    if classes is None:
        classes = getattr(model, "classes", None)  # a LoadedModel
    matrix = None
    if callable(getattr(model, "predict_proba", None)):
        try:
            matrix = np.asarray(model.predict_proba(rows), dtype=np.float64)
        except Exception:
            matrix = None
        if matrix is not None and (matrix.ndim != 2 or len(matrix) != len(rows)):
            matrix = None
    return outputs_frame(predicted, matrix, classes)


def _categorical(predicted: pd.DataFrame) -> list[str]:
    """Class labels are categories even when they are integers; regression outputs are not."""
    import pandas as pd

    column = predicted["prediction"]
    is_label = not pd.api.types.is_float_dtype(column) or any(
        name.startswith("proba_") for name in predicted.columns
    )
    return ["prediction"] if is_label else []
