"""The monitored time series: one :class:`Point` per window, kind, series name and test.

Every monitor writes here: drift (one point per feature and test, plus ``share``),
performance (one per metric, with its bootstrap interval in ``detail``), concept-drift
detections and service health. Alert rules read it by series key, ``<kind>.<name>``
(``drift.share``, ``performance.auc``, ``health.p99_ms``). Recording the same window,
kind, name and test again replaces the point, so re-evaluating a window is idempotent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopml._time import from_ms, to_ms
from loopml.errors import ValidationError
from loopml.store.repositories.monitoring import MonitorRepository, PointRecord

if TYPE_CHECKING:
    import pandas as pd

    from loopml.workspace import Workspace

__all__ = ["COLUMNS", "KINDS", "Point", "points", "record", "series"]

# Point's fields, in the order of series()'s columns.
COLUMNS = ["model", "version", "start", "end", "kind", "name", "test", "value", "p_value",
           "threshold", "flagged", "detail"]  # fmt: skip

KINDS = ("drift", "performance", "concept", "health")


@dataclass(frozen=True)
class Point:
    """One value of one series in one window ``[start, end)`` of a model's traffic.

    Attributes:
        model: The registered model's name.
        version: The model version the window's rows came from; None for all versions.
        start: The window's start (UTC, inclusive).
        end: The window's end (UTC, exclusive).
        kind: One of :data:`KINDS`.
        name: The series within its kind: ``share``, a feature name, ``auc``, ``p99_ms``.
        test: For per-feature drift rows the test (``ks``, ``psi``, ``wasserstein``,
            ``jensenshannon``, ``chisquare``, ``missing``, ``categories``); else "".
        value: The statistic, score or metric.
        p_value: The test's p-value, where the test has one.
        threshold: The value the statistic was compared with.
        flagged: Whether the point crossed its threshold (drifted, changed); None when
            the series has no threshold of its own.
        detail: Small JSON-able extras: an interval, a count, a coverage share.
    """

    model: str
    version: int | None
    start: dt.datetime
    end: dt.datetime
    kind: str
    name: str
    value: float
    test: str = ""
    p_value: float | None = None
    threshold: float | None = None
    flagged: bool | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The series key alert rules use: ``<kind>.<name>``."""
        return f"{self.kind}.{self.name}"


def record(ws: Workspace, new: Sequence[Point]) -> None:
    """Stores ``new`` points; a point of a window already recorded replaces it."""
    for point in new:
        if point.kind not in KINDS:
            raise ValidationError(
                f"A monitored point's kind must be one of {', '.join(KINDS)}, got {point.kind!r}."
            )
        if point.end <= point.start:
            raise ValidationError(
                f"A window must end after it starts; got {point.start} .. {point.end}."
            )
    MonitorRepository(ws.db).record_points(
        [
            PointRecord(
                p.model,
                p.version or 0,
                to_ms(p.start),
                to_ms(p.end),
                p.kind,
                p.name,
                p.test,
                p.value,
                p.p_value,
                p.threshold,
                p.flagged,
                p.detail,
            )
            for p in new
        ]
    )


def points(
    ws: Workspace,
    model: str,
    key: str | None = None,
    *,
    kind: str | None = None,
    name: str | None = None,
    test: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    version: int | None = None,
) -> list[Point]:
    """Stored points of ``model`` whose window ends in (since, until], oldest first.
    ``key`` (``drift.share``) is short for ``kind`` and ``name``."""
    if key is not None:
        kind, _, name = key.partition(".")
        if kind not in KINDS or not name:
            raise ValidationError(
                f"A series key is <kind>.<name> with kind one of {', '.join(KINDS)} "
                f"(e.g. drift.share, performance.auc, health.p99_ms), got {key!r}."
            )
    records = MonitorRepository(ws.db).points(
        model, kind, name, test,
        None if since is None else to_ms(since), None if until is None else to_ms(until), version,
    )  # fmt: skip
    return [
        Point(
            r.model,
            r.version or None,
            from_ms(r.start_time),
            from_ms(r.end_time),
            r.kind,
            r.name,
            float("nan") if r.value is None else r.value,
            r.test,
            r.p_value,
            r.threshold,
            r.flagged,
            r.detail,
        )
        for r in records
    ]


def series(ws: Workspace, model: str, key: str | None = None, **filters: Any) -> pd.DataFrame:
    """:func:`points` as a DataFrame with :data:`COLUMNS`, one row per point."""
    import pandas as pd

    found = points(ws, model, key, **filters)
    frame = pd.DataFrame([vars(point) for point in found], columns=COLUMNS)
    for column in ("start", "end"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame
