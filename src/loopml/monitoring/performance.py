"""Model performance over time from delayed feedback labels: windowed metrics with intervals.

Labels reach the prediction log late (hours or days), so every window reports its label
coverage (labelled rows / rows) and is ``complete`` only once coverage reaches
``min_coverage``; an incomplete window still reports what its labels say, marked so.
Metrics and bootstrap intervals are the evaluation layer's (:mod:`loopml.evaluation`),
computed on the labelled rows of each window. Time windows are aligned to the epoch
(``1h`` windows start on the hour), so evaluating a window again later gives the same
``start`` and ``end`` and its points replace the earlier ones.

Joining labels and encoding labelled rows live in :mod:`loopml.monitoring.labels`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopml.errors import ValidationError
from loopml.monitoring.labels import (
    METRICS,
    LabelJoin,
    _require,
    _utc,
    duration,
    infer_task,
    join_labels,
    labelled_predictions,
)
from loopml.monitoring.series import Point

if TYPE_CHECKING:
    import pandas as pd

    from loopml.evaluation._metrics import Predictions
    from loopml.serving.feedback import TimeLike
    from loopml.workspace import Workspace

__all__ = [
    "METRICS",
    "LabelJoin",
    "PerformanceReport",
    "WindowPerformance",
    "join_labels",
    "performance",
    "performance_from_log",
]


_FRAME_COLUMNS = ["start", "end", "metric", "value", "low", "high", "n", "labelled", "coverage",
                  "complete"]  # fmt: skip


# -- windows ----------------------------------------------------------------------------------
@dataclass
class WindowPerformance:
    """The performance of one window ``[start, end)`` of logged predictions.

    Attributes:
        start: The window's start (UTC, inclusive).
        end: Its end (UTC, exclusive).
        rows: Logged predictions in the window.
        labelled: Those with a label.
        coverage: ``labelled / rows``.
        complete: Whether coverage reached ``min_coverage``.
        metrics: Metric values on the labelled rows (empty without labels).
        intervals: 95% bootstrap intervals of the headline metrics.
    """

    start: dt.datetime
    end: dt.datetime
    rows: int
    labelled: int
    coverage: float
    complete: bool
    metrics: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)


@dataclass
class PerformanceReport:
    """Windowed performance of a model's logged predictions (see :func:`performance`)."""

    task: str | None
    classes: list[str]
    windows: list[WindowPerformance]
    unmatched_labels: int = 0
    settings: dict[str, Any] = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        """One row per window and metric (and a ``coverage`` row per window): start, end,
        metric, value, low, high, n (rows), labelled, coverage, complete."""
        import pandas as pd

        records = []
        for w in self.windows:
            common = (w.rows, w.labelled, w.coverage, w.complete)
            records.append((w.start, w.end, "coverage", w.coverage, math.nan, math.nan, *common))
            for name, value in w.metrics.items():
                low, high = w.intervals.get(name, (math.nan, math.nan))
                records.append((w.start, w.end, name, value, low, high, *common))
        return pd.DataFrame.from_records(records, columns=_FRAME_COLUMNS)

    def to_points(self, model: str, version: int | None = None) -> list[Point]:
        """The report as monitored series: kind ``performance``, one point per window and
        finite metric (interval, coverage, completeness and counts in ``detail``), plus
        ``coverage``."""
        points = []
        for w in self.windows:
            counts = {"n": w.rows, "labelled": w.labelled, "complete": w.complete}
            window = (model, version, w.start, w.end, "performance")
            points.append(Point(*window, "coverage", w.coverage, detail=counts))
            for name, value in w.metrics.items():
                if not math.isfinite(value):
                    continue
                low, high = w.intervals.get(name, (None, None))
                detail = {"low": low, "high": high, "coverage": w.coverage, **counts}
                points.append(Point(*window, name, value, detail=detail))
        return points


def performance(
    frame: pd.DataFrame | LabelJoin,
    *,
    task: str | None = None,
    metrics: Sequence[str] | None = None,
    window: str | dt.timedelta | int = "1h",
    min_coverage: float = 0.5,
    resamples: int = 200,
    seed: int = 0,
    classes: Sequence[Any] | None = None,
) -> PerformanceReport:
    """Metrics per window of logged predictions, on the rows whose label has arrived.

    Example:
        >>> report = performance(ws.predictions_with_feedback("churn"), window="1d")
        >>> report.to_frame().query("metric == 'roc_auc'")   # value, low, high, coverage
        >>> [w.start for w in report.windows if not w.complete]

    Args:
        frame: Predictions with ``time``, ``prediction``, ``label`` (missing while
            unlabelled) and optionally ``proba_<class>`` columns, or a :class:`LabelJoin`
            (whose ``unmatched_labels`` the report carries). A frame with no rows gives a
            report with no windows.
        task: ``binary``, ``multiclass`` or ``regression``; inferred when None (see
            :func:`infer_task`).
        metrics: The metrics to report; all of the task's (:data:`METRICS`) when None.
        window: A duration (``"1h"``, a timedelta) for epoch-aligned time windows by
            prediction time, or a number of rows for windows of that many predictions.
        min_coverage: The labelled share from which a window counts as complete.
        resamples: Bootstrap resamples of each window's 95% intervals (0: none).
        seed: Seed of the resamples (the same for every window, so a window's interval
            does not depend on which other windows were evaluated).
        classes: Every class the model can predict, when the data may not show them all.
    """
    import numpy as np

    from loopml.evaluation._metrics import classification_metrics, regression_metrics

    unmatched = frame.unmatched_labels if isinstance(frame, LabelJoin) else 0
    frame = frame.frame if isinstance(frame, LabelJoin) else frame
    if not 0 <= min_coverage <= 1:
        raise ValidationError(f"min_coverage must be a share in [0, 1], got {min_coverage}.")
    if resamples < 0:
        raise ValidationError(f"resamples must be 0 or more, got {resamples}.")
    size = _window(window)
    settings = {
        "window": str(window),
        "min_coverage": min_coverage,
        "resamples": resamples,
        "seed": seed,
    }
    _require(frame, ["time", "prediction", "label"], "The predictions")
    if frame.empty:
        return PerformanceReport(task, [], [], unmatched, settings)
    kind = infer_task(frame, task, classes)
    names = list(METRICS[kind.name] if metrics is None else metrics)
    unknown = [m for m in names if m not in METRICS[kind.name]]
    if unknown:
        raise ValidationError(
            f"Unknown metric(s) {unknown} for a {kind.name} task; choose from "
            f"{', '.join(METRICS[kind.name])}."
        )

    times = _utc(frame["time"])
    order = np.argsort(times.to_numpy(np.int64), kind="stable")
    frame, times = frame.iloc[order], times.iloc[order]
    stamps = times.to_numpy(np.int64)
    labelled = frame["label"].notna().to_numpy()
    bounds = _bounds(stamps, size)
    windows = []
    for first, last, start, end in bounds:
        rows = last - first
        mask = labelled[first:last]
        count = int(mask.sum())
        coverage = count / rows
        found: dict[str, float] = {}
        intervals: dict[str, tuple[float, float]] = {}
        if count:
            p = labelled_predictions(frame.iloc[first:last][mask], kind)
            every = (
                regression_metrics(p) if kind.name == "regression" else classification_metrics(p)
            )
            found = {m: float(every[m]) for m in names if m in every}
            intervals = {m: v for m, v in _intervals(p, resamples, seed).items() if m in found}
        window_ = WindowPerformance(
            _datetime(start),
            _datetime(end),
            rows,
            count,
            coverage,
            coverage >= min_coverage,
            found,
            intervals,
        )
        windows.append(window_)
    return PerformanceReport(kind.name, kind.classes, windows, unmatched, settings)


_SCORE_BINS = 512


def _intervals(p: Predictions, resamples: int, seed: int) -> dict[str, tuple[float, float]]:
    """The evaluation layer's bootstrap intervals, with binary scores grouped into at most
    512 rank bins first and the ROC AUC interval shifted by what the grouping changed.

    Its resampling costs O(distinct scores) per resample, whatever the rows: 175 ms for a
    window of 6,000 scored rows, 15 s for a week of hourly windows over 1M rows. Binned,
    32 ms and 6.6 s; the interval's ends moved by about 0.003, as much as the Monte Carlo
    noise of 200 resamples.
    """
    import numpy as np

    from loopml.evaluation._metrics import (
        Predictions,
        bootstrap_intervals,
        classification_metrics,
    )

    if p.task != "binary" or p.scores is None:
        return bootstrap_intervals(p, resamples, seed)
    groups, n_groups = p.score_groups()
    if n_groups <= _SCORE_BINS:
        return bootstrap_intervals(p, resamples, seed)
    binned = Predictions(
        "binary", p.y, p.predicted, (groups * _SCORE_BINS // n_groups).astype(np.float64),
        p.classes,
    )  # fmt: skip
    intervals = bootstrap_intervals(binned, resamples, seed)
    if "roc_auc" in intervals:
        exact = classification_metrics(p)["roc_auc"]
        shift = exact - classification_metrics(binned)["roc_auc"]
        low, high = intervals["roc_auc"]
        intervals["roc_auc"] = (low + shift, high + shift)
    return intervals


def _window(window: str | dt.timedelta | int) -> int | pd.Timedelta:
    import pandas as pd

    if isinstance(window, bool):
        raise ValidationError(f"window must be a duration or a number of rows, got {window!r}.")
    if isinstance(window, int):
        if window < 1:
            raise ValidationError(f"A window of rows needs at least 1 row, got {window}.")
        return window
    size = duration(window, "window (or a number of rows)")
    if size <= pd.Timedelta(0):
        raise ValidationError(f"window must be a positive duration, got {window!r}.")
    return size


def _bounds(stamps: Any, size: int | pd.Timedelta) -> list[tuple[int, int, int, int]]:
    """(first row, end row, start ns, end ns) of each non-empty window of sorted times."""
    import numpy as np

    n = len(stamps)
    if isinstance(size, int):
        firsts = np.arange(0, n, size)
        lasts = np.minimum(firsts + size, n)
        starts = stamps[firsts]
        # A window of rows ends where the next begins; the last just after its last row.
        ends = np.append(stamps[firsts[1:]], stamps[-1] + 1000)
        ends = np.maximum(ends, starts + 1000)  # equal times: keep [start, end) non-empty
    else:
        width = int(size.value)
        bins = stamps // width
        firsts = np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]])
        lasts = np.append(firsts[1:], n)
        starts = bins[firsts] * width
        ends = starts + width
    return [
        (int(a), int(b), int(s), int(e))
        for a, b, s, e in zip(firsts, lasts, starts, ends, strict=True)
    ]


def _datetime(nanoseconds: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(
        microseconds=int(nanoseconds) // 1000
    )


# -- from the workspace -------------------------------------------------------------------
def performance_from_log(
    ws: Workspace,
    model: str,
    since: TimeLike | None = None,
    until: TimeLike | None = None,
    version: int | None = None,
    *,
    label_lookback: str | dt.timedelta = "7D",
    **kwargs: Any,
) -> PerformanceReport:
    """:func:`performance` of the logged predictions of ``model`` in ``[since, until)``
    with the labels that have arrived so far. Reads only; stores nothing.

    ``unmatched_labels`` counts the labels logged with this model's name, recorded since
    ``since``, whose outcome time is before ``until``, and that match no prediction of the
    model logged from ``label_lookback`` before ``since`` to ``until`` (any version).
    Labels logged without a model name cannot be attributed and are not counted.

    Args:
        kwargs: Passed to :func:`performance` (``window``, ``min_coverage``, ...).
    """
    from loopml.serving.feedback import predictions_with_feedback

    frame = predictions_with_feedback(ws, model, since, until, version)
    unmatched = _unmatched(ws, model, frame, since, until, label_lookback)
    labelled = int(frame["label"].notna().sum()) if "label" in frame.columns else 0
    return performance(LabelJoin(frame, labelled, unmatched), **kwargs)


def _unmatched(
    ws: Workspace,
    model: str,
    frame: pd.DataFrame,
    since: TimeLike | None,
    until: TimeLike | None,
    lookback: str | dt.timedelta,
) -> int:
    """Labels of ``model`` in the period that match no logged prediction of it."""
    import pandas as pd

    from loopml.serving.feedback import _ms, predictions

    labels = ws.feedback(model, since)
    high = _ms(until, "until")
    if high is not None:
        labels = labels[labels["time"] < pd.Timestamp(high, unit="ms", tz="UTC")]
    # Most labels match the window's own rows; only the others need a look further back.
    candidates = labels[~_keys(labels).isin(_keys(frame))]
    if candidates.empty:
        return 0
    low = _ms(since, "since")
    start = (
        None if low is None else low / 1000 - duration(lookback, "label_lookback").total_seconds()
    )
    known = predictions(ws, model, start, until, columns=["request_id", "row"])
    return int((~_keys(candidates).isin(_keys(known))).sum())


def _keys(frame: pd.DataFrame) -> pd.MultiIndex:
    import pandas as pd

    return pd.MultiIndex.from_frame(frame[["request_id", "row"]].astype({"row": "int64"}))
