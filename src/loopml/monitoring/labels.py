"""Labels joined to logged predictions, and labelled rows encoded for the metrics.

Shared by :mod:`loopml.monitoring.performance` (windowed metrics) and
:mod:`loopml.monitoring.detectors` (the error stream). Labels arrive late; they are
joined by request id and row (exact), or by entity key and time (the latest prediction
for the entity at or before the label's time).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopml.errors import ValidationError

if TYPE_CHECKING:
    import pandas as pd

    from loopml.evaluation._metrics import Predictions

__all__ = ["METRICS", "LabelJoin", "duration", "infer_task", "join_labels", "labelled_predictions"]

METRICS = {
    "binary": ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "log_loss",
               "brier_score", "expected_calibration_error"),
    "multiclass": ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"),
    "regression": ("mae", "rmse", "r2", "mape"),
}  # fmt: skip
"""The metrics each task reports (the evaluation layer's set)."""
_LABEL_COLUMNS = ("label", "label_time", "labelled_at")


# -- joining labels -------------------------------------------------------------------------
@dataclass
class LabelJoin:
    """Logged predictions with their labels, and how many labels found no prediction.

    Attributes:
        frame: The predictions with ``label`` (missing where none arrived), ``label_time``
            and ``labelled_at``.
        matched_labels: Labels attached to a prediction.
        unmatched_labels: Labels that matched no prediction (an unknown request id, an
            entity with no earlier prediction within the tolerance, or a second label for
            an entity's prediction that already had one). They stay stored: a prediction
            logged late may still claim them on a later join.
    """

    frame: pd.DataFrame
    matched_labels: int
    unmatched_labels: int


def join_labels(
    predictions: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    on: str = "request_id",
    entity_column: str | None = None,
    tolerance: str | dt.timedelta | None = None,
) -> LabelJoin:
    """Attaches feedback labels (as ``ws.feedback()`` returns them) to logged predictions.

    Example:
        >>> joined = join_labels(ws.predictions("churn"), ws.feedback("churn"))
        >>> joined.unmatched_labels
        >>> by_entity = join_labels(log, labels, on="entity", entity_column="customer_id",
        ...                         tolerance="30d")

    Args:
        predictions: Logged rows: ``time`` and ``request_id``/``row``, or ``entity_column``.
            Label columns it already has (``label``, ``label_time``, ``labelled_at``) are
            replaced.
        labels: ``label`` and ``request_id`` (and ``row``, default 0); for ``on="entity"``,
            ``entity`` and ``time`` (when the outcome happened). ``created_at`` becomes
            ``labelled_at`` when present. A key given twice keeps its last label.
        on: ``"request_id"``: exact match on request id and row. ``"entity"``: a label
            applies to the entity's latest prediction at or before the label's time (the
            earliest such label wins when several point at one prediction).
        entity_column: The predictions' column holding the entity key (``on="entity"``).
        tolerance: With ``on="entity"``, the longest a label may follow its prediction.
    """
    import pandas as pd

    if on not in ("request_id", "entity"):
        raise ValidationError(f"on must be 'request_id' or 'entity', got {on!r}.")
    base = predictions.drop(columns=[c for c in _LABEL_COLUMNS if c in predictions.columns])
    labels = labels.rename(columns={"time": "label_time", "created_at": "labelled_at"})
    keep = [c for c in ("label", "label_time", "labelled_at") if c in labels.columns]
    if on == "request_id":
        if tolerance is not None:
            raise ValidationError("tolerance applies to on='entity' only; drop it.")
        _require(labels, ["request_id", "label"], "The labels")
        _require(base, ["request_id", "row"], "The predictions")
        if "row" not in labels.columns:
            labels = labels.assign(row=0)
        labels = labels.drop_duplicates(["request_id", "row"], keep="last")
        labels = labels.astype({"row": base["row"].dtype})
        keys = labels[["request_id", "row", *keep]]
        frame = base.merge(keys, how="left", on=["request_id", "row"], validate="many_to_one")
        known = pd.MultiIndex.from_frame(base[["request_id", "row"]])
        matched = int(pd.MultiIndex.from_frame(labels[["request_id", "row"]]).isin(known).sum())
        return LabelJoin(frame, matched, len(labels) - matched)

    if entity_column is None:
        raise ValidationError("on='entity' needs entity_column= the predictions' entity column.")
    _require(base, [entity_column, "time"], "The predictions")
    _require(labels, ["entity", "label_time", "label"], "The labels")
    window = None if tolerance is None else duration(tolerance, "tolerance")
    rows = base.assign(_position=range(len(base)), _entity=base[entity_column].astype(str))
    rows["_time"] = _utc(rows["time"])
    found = labels.assign(_entity=labels["entity"].astype(str), _time=_utc(labels["label_time"]))
    found = found.dropna(subset=["_time"]).sort_values("_time", kind="stable")
    attached = pd.merge_asof(
        found[["_time", "_entity", *keep]],
        rows[["_time", "_entity", "_position"]].sort_values("_time", kind="stable"),
        on="_time",
        by="_entity",
        direction="backward",
        tolerance=window,
    )
    attached = attached.dropna(subset=["_position"]).drop_duplicates("_position", keep="first")
    attached = attached.set_index(attached["_position"].astype("int64"))[keep]
    frame = rows.join(attached, on="_position").drop(columns=["_position", "_entity", "_time"])
    return LabelJoin(frame, len(attached), len(labels) - len(attached))


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValidationError(
            f"{what} lack the column(s) {', '.join(missing)} (they have "
            f"{', '.join(map(str, frame.columns[:12]))})."
        )


def _utc(values: pd.Series) -> pd.Series:
    import pandas as pd

    return pd.to_datetime(values, utc=True).dt.as_unit("ns")


# -- encoding labelled rows -----------------------------------------------------------------
@dataclass
class _Task:
    """What a frame's predictions are: the task, its classes and probability columns."""

    name: str
    classes: list[str] = field(default_factory=list)  # canonical keys (see _key)
    proba: list[str] | None = None


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _key(value: Any) -> str:
    """One spelling per class: ``1``, ``1.0`` and proba column ``proba_1`` all give "1"."""
    value = _plain(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _kind(value: Any) -> str:
    value = _plain(value)
    if isinstance(value, bool):
        return "booleans"
    if isinstance(value, (int, float)):
        return "numbers"
    return "text" if isinstance(value, str) else type(value).__name__


def infer_task(frame: pd.DataFrame, task: str | None, classes: Sequence[Any] | None) -> _Task:
    """The task of a labelled prediction frame: given, or from its columns.

    Probability columns (``proba_<class>``) make it a classifier with those classes;
    otherwise numeric predictions with a fractional value make it a regressor, and any
    other predictions a classifier of the classes seen in predictions and labels.
    """
    import pandas as pd

    if task is not None and task not in METRICS:
        raise ValidationError(f"task must be one of {', '.join(METRICS)} or None, got {task!r}.")
    proba = [str(c) for c in frame.columns if str(c).startswith("proba_")]
    predicted = frame["prediction"].dropna()
    if task is None:
        fractional = pd.api.types.is_float_dtype(predicted.dtype) and bool(
            (predicted % 1 != 0).any()
        )
        task = "regression" if fractional and not proba else "classification"
    if task == "regression":
        return _Task("regression")
    if classes is not None:
        keys = [_key(c) for c in classes]
    elif len(proba) >= 2:
        keys = [name.removeprefix("proba_") for name in proba]
    else:
        seen = pd.unique(pd.concat([predicted, frame["label"].dropna()], ignore_index=True))
        keys = list(dict.fromkeys(_key(v) for v in sorted(seen, key=_sort_key)))
    columns = [f"proba_{k}" for k in keys]
    available = columns if all(c in frame.columns for c in columns) else None
    name = (
        task if task in ("binary", "multiclass") else ("binary" if len(keys) <= 2 else "multiclass")
    )
    if name == "binary" and len(keys) > 2:
        raise ValidationError(f"task='binary' but the data has {len(keys)} classes: {keys[:5]}.")
    return _Task(name, keys, available)


def _sort_key(value: Any) -> tuple[int, Any]:
    value = _plain(value)
    return (0, value) if isinstance(value, (int, float)) else (1, str(value))


def labelled_predictions(frame: pd.DataFrame, task: _Task) -> Predictions:
    """The evaluation layer's Predictions of rows that all carry a label.

    Raises ValidationError when labels and predictions are of different kinds (text
    labels for numeric predictions) or when a label is not one of the classes.
    """
    import numpy as np
    import pandas as pd

    from loopml.evaluation._metrics import Predictions

    labels, predicted = frame["label"], frame["prediction"]
    label_kinds = {_kind(v) for v in pd.unique(labels)}
    if task.name == "regression":
        if label_kinds - {"numbers"}:
            raise ValidationError(
                f"The labels are {' and '.join(sorted(label_kinds))} but the model is a "
                "regressor: log numeric labels (the true values), or pass task= the "
                "classification task if the predictions are class codes."
            )
        return Predictions(
            "regression",
            pd.to_numeric(labels).to_numpy(np.float64),
            pd.to_numeric(predicted).to_numpy(np.float64),
        )
    predicted_kinds = {_kind(v) for v in pd.unique(predicted)}
    if label_kinds and predicted_kinds and not label_kinds & predicted_kinds:
        raise ValidationError(
            f"The labels are {' and '.join(sorted(label_kinds))} but the predictions are "
            f"{' and '.join(sorted(predicted_kinds))}: log labels of the prediction's type "
            f"(e.g. {_plain(predicted.iloc[0])!r})."
        )
    y = _codes(labels, task.classes)
    unknown = sorted({_key(v) for v, code in zip(labels, y, strict=True) if code < 0})
    if unknown:
        raise ValidationError(
            f"Label(s) {unknown[:5]} are not among the model's classes {task.classes[:10]}; "
            "check the labels, or pass classes= every class the model can predict."
        )
    predicted_codes = _codes(predicted, task.classes)
    if (predicted_codes < 0).any():
        strays = sorted({_key(v) for v, c in zip(predicted, predicted_codes, strict=True) if c < 0})
        raise ValidationError(
            f"Prediction(s) {strays[:5]} are not among the classes {task.classes[:10]}; "
            "pass classes= every class the model can predict."
        )
    scores = None
    if task.proba is not None:
        matrix = frame[task.proba].to_numpy(np.float64)
        if np.isfinite(matrix).all():
            scores = matrix[:, 1] if task.name == "binary" else matrix
    return Predictions(
        task.name,
        y,
        predicted_codes,
        scores,
        list(task.classes),
        scores is not None,
    )


def _codes(values: pd.Series, classes: list[str]) -> Any:
    """Class index of each value (-1 when unknown), mapping each distinct value once."""
    import numpy as np
    import pandas as pd

    codes, uniques = pd.factorize(values)
    lookup = pd.Index(classes).get_indexer(pd.Index([_key(v) for v in uniques]))
    return np.append(lookup, -1)[codes].astype(np.int64)  # factorize marks NaN as -1


def duration(value: str | dt.timedelta, name: str) -> pd.Timedelta:
    """A duration from ``"1h"``, ``"1d"``, ``"30min"``, ``"2 days"`` or a timedelta."""
    import pandas as pd

    if isinstance(value, str):  # pandas 3 deprecates lower-case day and week units
        value = re.sub(r"(?<=\d)([dw])(?![a-z])", lambda m: m.group(1).upper(), value.strip())
    try:
        return pd.Timedelta(value)
    except (ValueError, TypeError):
        raise ValidationError(
            f"{name} must be a duration such as '1h' or '1d', or a timedelta, got {value!r}."
        ) from None
