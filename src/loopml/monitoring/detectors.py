"""Streaming concept-drift detection on a model's error stream: ADWIN, DDM, Page-Hinkley.

A window's metrics wait for the window to close and its labels to arrive; a streaming
detector reads the errors one labelled row at a time and signals a change as soon as the
error rate moves, often well before the window closes. The detectors are river's
(``river.drift``), wrapped so that every method has one API and validated parameters;
a :class:`ChangeDetector` pickles, so a long-running monitor can persist it between
evaluations and across restarts.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from loopml.errors import ConfigError, ValidationError
from loopml.monitoring.labels import LabelJoin, infer_task, labelled_predictions
from loopml.monitoring.performance import _datetime
from loopml.monitoring.series import Point

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["METHODS", "ChangeDetector", "detect_concept_drift"]

METHODS = ("adwin", "ddm", "page_hinkley")
# Error increases are what a model's monitor cares about; Page-Hinkley watches one side.
# Defaults measured on stable 0/1 error streams (seeds 0-5, 100,000 rows each): DDM with
# river's warm_start=30 and drift_threshold=3 raised 27 false alarms per 100,000 rows at a
# 10% error rate, these 3, for ~20 more rows of delay on a jump to 40%. Page-Hinkley's
# fading factor (river's alpha=0.9999) lets its sum wander back above an old minimum:
# 30 false alarms per 600,000 rows at 25% errors; without fading and with delta=0.02,
# none at 10%, 25% or 50%, for a delay of ~270 rows (river's: ~210) on a +0.2 jump.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "adwin": {},
    "ddm": {"warm_start": 300, "drift_threshold": 3.5},
    "page_hinkley": {"mode": "up", "delta": 0.02, "alpha": 1.0},
}
_RECENT = 50  # errors averaged into a detection's value


def _river_class(method: str) -> Any:
    try:
        from river import drift
    except ImportError:  # pragma: no cover - river is a dependency
        raise ConfigError(
            "Streaming change detection needs the river package: pip install river"
        ) from None
    return {
        "adwin": drift.ADWIN,
        "ddm": drift.binary.DDM,
        "page_hinkley": drift.PageHinkley,
    }[method]


class ChangeDetector:
    """One streaming change detector over a sequence of values (a model's errors).

    Example:
        >>> detector = ChangeDetector("adwin", delta=0.002)
        >>> detector.scan(errors)                  # [1042]: positions of detected changes
        >>> state = pickle.dumps(detector)         # persist; pickle.loads resumes exactly

    Args:
        method: ``"adwin"`` (adaptive windowing; any bounded values), ``"ddm"`` (drift
            detection method; 0/1 values only) or ``"page_hinkley"`` (a cumulative-sum
            test, watching increases by default: ``mode="up"``).
        scale: Values are divided by this before the test (None: used as given).
            Page-Hinkley's ``delta`` and ``threshold`` are in the values' units, so
            :func:`detect_concept_drift` sets this for regression errors.
        params: The method's parameters, as river names them: ADWIN ``delta``,
            ``clock``, ``grace_period``, ``min_window_length``; DDM ``warm_start``
            (default 300 here), ``warning_threshold``, ``drift_threshold`` (default 3.5
            here); Page-Hinkley ``min_instances``, ``delta`` (0.02 here), ``threshold``,
            ``alpha`` (1.0 here: no fading) and ``mode`` (``"up"`` here). Why these
            defaults differ from river's: see the figures in this module's source.
    """

    def __init__(self, method: str = "adwin", *, scale: float | None = None, **params: Any):
        if method not in METHODS:
            raise ValidationError(f"method must be one of {', '.join(METHODS)}, got {method!r}.")
        if scale is not None and not (math.isfinite(scale) and scale > 0):
            raise ValidationError(f"scale must be a positive number, got {scale!r}.")
        kind = _river_class(method)
        accepted = [name for name in inspect.signature(kind).parameters if name != "self"]
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            raise ValidationError(
                f"Unknown parameter(s) {unknown} for {method}; it takes {', '.join(accepted)}."
            )
        self.method = method
        self.scale = scale
        self.params = {**_DEFAULTS[method], **params}
        try:
            self._detector = kind(**self.params)
        except (TypeError, ValueError) as error:
            raise ValidationError(f"Invalid {method} parameters {self.params}: {error}") from None
        self.seen = 0
        """Values read so far, over this detector's whole life."""
        self.detections: list[int] = []
        """Positions (counted over :attr:`seen`) where a change was detected."""

    def __repr__(self) -> str:
        return f"ChangeDetector({self.method!r}, seen={self.seen}, detections={self.detections})"

    @property
    def drift_detected(self) -> bool:
        """Whether the last value read signalled a change."""
        return bool(self._detector.drift_detected)

    def update(self, value: float) -> bool:
        """Reads one value; True when it signals a change."""
        return bool(self.scan([value]))

    def scan(self, values: Iterable[float]) -> list[int]:
        """Reads values in order; the positions among them (from 0) that signalled a change."""
        import numpy as np

        array = np.asarray(values if isinstance(values, np.ndarray) else list(values), float)
        if not np.isfinite(array).all():
            raise ValidationError(f"{self.method} reads finite numbers; got NaN or infinity.")
        if self.method == "ddm" and not np.isin(array, (0.0, 1.0)).all():
            raise ValidationError(
                "ddm reads a stream of 0 (right) and 1 (wrong); use adwin or page_hinkley "
                "for real-valued errors."
            )
        if self.scale is not None:
            array = array / self.scale
        # The loop is river's update and nothing else: ~1 µs a value.
        detector, found = self._detector, []
        for position, value in enumerate(array.tolist()):
            detector.update(value)
            if detector.drift_detected:
                found.append(position)
        self.detections.extend(self.seen + position for position in found)
        self.seen += len(array)
        return found


def detect_concept_drift(
    frame: pd.DataFrame | LabelJoin,
    *,
    methods: Sequence[str] = METHODS,
    detectors: Sequence[ChangeDetector] | None = None,
    task: str | None = None,
    classes: Sequence[Any] | None = None,
    model: str | None = None,
    version: int | None = None,
    warmup: int = 100,
) -> list[Point]:
    """Change points in the error stream of a labelled prediction frame, as series points.

    The labelled rows, ordered by prediction time, become an error stream: 0 or 1 per
    row (misclassified) for a classifier, the absolute error for a regressor (divided by
    twice the standard deviation of its first ``warmup`` errors, giving them the spread of
    the noisiest 0/1 stream, for which Page-Hinkley's default thresholds are set). Each
    detection is a point of kind ``concept`` named after the method, flagged, whose
    value is the mean error of the last 50 rows up to the detection and whose window
    runs from the previous detection (or the first row) to the detecting row; ``detail``
    holds the row's ``time`` and ``index`` (its position among the frame's labelled
    rows), ``sample`` (its position in the detector's whole stream) and
    ``baseline_error`` (the mean error before those last 50 rows).

    Example:
        >>> detectors = [ChangeDetector("adwin"), ChangeDetector("ddm")]
        >>> points = detect_concept_drift(new_labelled_rows, detectors=detectors)
        >>> store(pickle.dumps(detectors))  # the next call continues the same streams

    Args:
        frame: Predictions with ``time``, ``prediction`` and ``label`` (unlabelled rows
            are skipped), as :func:`~loopml.monitoring.performance.performance` takes.
        methods: The methods to run, with default parameters (ignored with ``detectors``).
        detectors: Detectors to feed, updated in place, so a monitor can continue them
            on the next batch of labelled rows.
        task: ``binary``, ``multiclass`` or ``regression``; inferred when None.
        classes: Every class the model can predict.
        model: The model name of the points; by default the frame's ``model`` column.
        version: The model version of the points; by default the frame's ``version``
            column when it holds one version.
        warmup: Rows whose errors' spread scales regression errors (on a detector's
            first call only; the scale stays with the detector).
    """
    import numpy as np
    import pandas as pd

    frame = frame.frame if isinstance(frame, LabelJoin) else frame
    if detectors is None:
        detectors = [ChangeDetector(method) for method in methods]
    missing = [c for c in ("time", "prediction", "label") if c not in frame.columns]
    if missing:
        raise ValidationError(
            f"The predictions lack the column(s) {', '.join(missing)}; pass a labelled "
            "prediction frame (ws.predictions_with_feedback or join_labels)."
        )
    rows = frame[frame["label"].notna()]
    if rows.empty:
        return []
    model, version = _identity(rows, model, version)
    times = pd.to_datetime(rows["time"], utc=True)
    order = np.argsort(times.to_numpy(np.int64), kind="stable")
    rows, times = rows.iloc[order], times.iloc[order]
    kind = infer_task(rows, task, classes)
    p = labelled_predictions(rows, kind)
    if kind.name == "regression":
        errors = np.abs(np.asarray(p.predicted) - np.asarray(p.y))
        for detector in detectors:
            if detector.method == "ddm":
                raise ValidationError(
                    "ddm reads a 0/1 error stream and this model is a regressor; use "
                    "methods=('adwin', 'page_hinkley')."
                )
            if detector.scale is None:
                spread = 2 * float(np.std(errors[: max(warmup, 2)]))
                detector.scale = spread if spread > 0 else 1.0
    else:
        errors = (np.asarray(p.y) != np.asarray(p.predicted)).astype(np.float64)

    stamps = times.dt.as_unit("ns").to_numpy(np.int64)
    points = []
    for detector in detectors:
        begin, first = 0, detector.seen
        for index in detector.scan(errors):
            recent = errors[max(begin, index + 1 - _RECENT) : index + 1]
            before = errors[begin : max(begin, index + 1 - _RECENT)]
            detail = {
                "time": _datetime(stamps[index]).isoformat(),
                "index": index,
                "sample": first + index,
                "baseline_error": float(before.mean()) if len(before) else None,
            }
            points.append(
                Point(
                    model, version, _datetime(stamps[begin]), _datetime(stamps[index] + 1000),
                    "concept", detector.method, float(recent.mean()), flagged=True,
                    detail=detail,
                )
            )  # fmt: skip
            begin = index + 1
    return points


def _identity(rows: pd.DataFrame, model: str | None, version: int | None) -> tuple[str, int | None]:
    if model is None:
        names = list(rows["model"].dropna().unique()) if "model" in rows.columns else []
        if len(names) != 1:
            raise ValidationError(
                "Pass model= the model's name: the frame has no single 'model' value."
            )
        model = str(names[0])
    if version is None and "version" in rows.columns:
        versions = rows["version"].dropna().unique()
        version = int(versions[0]) if len(versions) == 1 else None
    return model, version
