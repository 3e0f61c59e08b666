"""Monitored series, alerts and monitor cursors (see ``loopml.monitoring``)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update

from loopml._time import now_ms
from loopml.store.database import Database
from loopml.store.models import AlertRow, MonitorCursorRow, MonitorPointRow
from loopml.store.repositories._util import insert_new, upsert

__all__ = ["AlertRecord", "CursorRecord", "MonitorRepository", "PointRecord"]

_POINT_KEY = ["model", "version", "start_time", "end_time", "kind", "name", "test"]


@dataclass(frozen=True)
class PointRecord:
    model: str
    version: int  # 0: every version
    start_time: int  # epoch ms
    end_time: int
    kind: str
    name: str
    test: str
    value: float | None
    p_value: float | None = None
    threshold: float | None = None
    flagged: bool | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AlertRecord:
    alert_id: int
    rule: str
    model: str
    series: str
    severity: str
    state: str  # firing | resolved
    value: float | None
    threshold: float | None
    message: str
    window_end: int
    fired_at: int
    resolved_at: int | None
    notified_at: int | None
    notify_attempts: int
    notify_error: str | None
    action: dict[str, Any] | None


@dataclass(frozen=True)
class CursorRecord:
    name: str
    position: int | None
    state: dict[str, Any]
    owner: str | None
    lease_until: int | None


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


class MonitorRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- series -----------------------------------------------------------------
    def record_points(self, points: Sequence[PointRecord]) -> None:
        """Stores points; a point of the same model, version, window, kind, name and
        test replaces the stored one."""
        if not points:
            return
        now = now_ms()
        values = {
            tuple(getattr(p, key) for key in _POINT_KEY): {
                "model": p.model, "version": p.version, "start_time": p.start_time,
                "end_time": p.end_time, "kind": p.kind, "name": p.name, "test": p.test,
                "value": _finite(p.value), "p_value": _finite(p.p_value),
                "threshold": _finite(p.threshold), "flagged": p.flagged,
                "detail": json.dumps(p.detail, default=str), "created_at": now,
            }
            for p in points
        }  # fmt: skip
        rows = list(values.values())

        def write() -> None:
            with self.db.write() as connection:
                stmt = upsert(connection, MonitorPointRow)
                excluded = stmt.excluded
                stmt = stmt.on_conflict_do_update(
                    index_elements=_POINT_KEY,
                    set_={
                        name: getattr(excluded, name)
                        for name in (
                            "value",
                            "p_value",
                            "threshold",
                            "flagged",
                            "detail",
                            "created_at",
                        )
                    },
                )
                for start in range(0, len(rows), 2000):
                    connection.execute(stmt, rows[start : start + 2000])

        self.db.retry(write)

    def points(
        self,
        model: str,
        kind: str | None = None,
        name: str | None = None,
        test: str | None = None,
        since: int | None = None,
        until: int | None = None,
        version: int | None = None,
    ) -> list[PointRecord]:
        """Points of ``model`` whose window ends in (since, until], oldest first."""
        table = MonitorPointRow.__table__.c
        query = select(
            table.model, table.version, table.start_time, table.end_time, table.kind,
            table.name, table.test, table.value, table.p_value, table.threshold,
            table.flagged, table.detail,
        ).where(table.model == model)  # fmt: skip
        for column, wanted in (
            (table.kind, kind), (table.name, name), (table.test, test), (table.version, version),
        ):  # fmt: skip
            if wanted is not None:
                query = query.where(column == wanted)
        if since is not None:
            query = query.where(table.end_time > since)
        if until is not None:
            query = query.where(table.end_time <= until)
        with self.db.read() as session:
            rows = session.execute(query.order_by(table.end_time, table.point_id))
            return [
                PointRecord(
                    row.model,
                    row.version,
                    row.start_time,
                    row.end_time,
                    row.kind,
                    row.name,
                    row.test,
                    row.value,
                    row.p_value,
                    row.threshold,
                    row.flagged,
                    json.loads(row.detail),
                )
                for row in rows
            ]

    # -- alerts -----------------------------------------------------------------
    def open_alert(
        self,
        *,
        rule: str,
        model: str,
        series: str,
        severity: str,
        value: float | None,
        threshold: float | None,
        message: str,
        window_end: int,
    ) -> tuple[AlertRecord, bool]:
        """Fires an alert unless one of the same rule and model is open; returns the open
        alert and whether this call fired it. Safe across processes: the open alert's
        key is unique, so of two monitors firing at once one inserts, the other reads."""
        key = f"{rule}|{model}"
        values = {
            "rule": rule, "model": model, "series": series, "severity": severity,
            "state": "firing", "open_key": key, "value": _finite(value),
            "threshold": _finite(threshold), "message": message, "window_end": window_end,
            "fired_at": now_ms(), "notify_attempts": 0,
        }  # fmt: skip

        def write() -> tuple[int, bool]:
            with self.db.write() as connection:
                inserted = insert_new(connection, AlertRow, values, "open_key", AlertRow.alert_id)
                if inserted is not None:
                    return int(inserted), True
                alert_id = connection.execute(
                    select(AlertRow.alert_id).where(AlertRow.open_key == key)
                ).scalar_one()
                return int(alert_id), False

        alert_id, created = self.db.retry(write)
        return self.alert(alert_id), created

    def resolve_alert(self, alert_id: int, at: int | None = None) -> bool:
        """Marks a firing alert resolved; False when it was not firing."""

        def write() -> bool:
            with self.db.write() as connection:
                result = connection.execute(
                    update(AlertRow)
                    .where(AlertRow.alert_id == alert_id, AlertRow.state == "firing")
                    .values(state="resolved", open_key=None, resolved_at=at or now_ms())
                )
                return bool(result.rowcount == 1)

        return self.db.retry(write)

    def update_alert(self, alert_id: int, **values: Any) -> None:
        """Sets notification and action fields: ``notified_at``, ``notify_attempts``,
        ``notify_error``, ``action`` (a JSON-able dict)."""
        allowed = {"notified_at", "notify_attempts", "notify_error", "action", "value", "message"}
        unknown = set(values) - allowed
        if unknown:
            raise ValueError(f"cannot update alert field(s) {sorted(unknown)}")
        if "action" in values and values["action"] is not None:
            values["action"] = json.dumps(values["action"], default=str)

        def write() -> None:
            with self.db.write() as connection:
                connection.execute(
                    update(AlertRow).where(AlertRow.alert_id == alert_id).values(**values)
                )

        self.db.retry(write)

    def alert(self, alert_id: int) -> AlertRecord:
        with self.db.read() as session:
            row = session.get(AlertRow, alert_id)
            if row is None:
                raise KeyError(alert_id)
            return _alert(row)

    def alerts(
        self,
        model: str | None = None,
        state: str | None = None,
        rule: str | None = None,
        since: int | None = None,
        limit: int | None = None,
    ) -> list[AlertRecord]:
        """Alerts fired at or after ``since``, newest first (the first ``limit``)."""
        query = select(AlertRow)
        if model is not None:
            query = query.where(AlertRow.model == model)
        if state is not None:
            query = query.where(AlertRow.state == state)
        if rule is not None:
            query = query.where(AlertRow.rule == rule)
        if since is not None:
            query = query.where(AlertRow.fired_at >= since)
        with self.db.read() as session:
            query = query.order_by(AlertRow.alert_id.desc())
            rows = session.scalars(query if limit is None else query.limit(limit))
            return [_alert(row) for row in rows]

    # -- cursors ----------------------------------------------------------------
    def claim(self, name: str, owner: str, lease_ms: int) -> bool:
        """Takes the cursor ``name`` for ``owner`` until ``lease_ms`` from now, unless
        another owner holds an unexpired lease. Renewing one's own lease succeeds."""

        def write() -> bool:
            now = now_ms()
            with self.db.write() as connection:
                connection.execute(
                    upsert(connection, MonitorCursorRow).on_conflict_do_nothing(
                        index_elements=["name"]
                    ),
                    [{"name": name, "position": None, "state": "{}", "updated_at": now}],
                )
                table = MonitorCursorRow
                result = connection.execute(
                    update(table)
                    .where(
                        table.name == name,
                        table.owner.is_(None) | (table.owner == owner) | (table.lease_until < now),
                    )
                    .values(owner=owner, lease_until=now + lease_ms, updated_at=now)
                )
                return bool(result.rowcount == 1)

        return self.db.retry(write)

    def cursor(self, name: str) -> CursorRecord | None:
        with self.db.read() as session:
            row = session.get(MonitorCursorRow, name)
            if row is None:
                return None
            return CursorRecord(
                row.name, row.position, json.loads(row.state), row.owner, row.lease_until
            )

    def advance(self, name: str, owner: str, position: int, state: dict[str, Any]) -> bool:
        """Moves the cursor to ``position`` with ``state``, if ``owner`` still holds it."""

        def write() -> bool:
            with self.db.write() as connection:
                result = connection.execute(
                    update(MonitorCursorRow)
                    .where(MonitorCursorRow.name == name, MonitorCursorRow.owner == owner)
                    .values(
                        position=position,
                        state=json.dumps(state, default=str),
                        updated_at=now_ms(),
                    )
                )
                return bool(result.rowcount == 1)

        return self.db.retry(write)

    def release(self, name: str, owner: str) -> None:
        def write() -> None:
            with self.db.write() as connection:
                connection.execute(
                    update(MonitorCursorRow)
                    .where(MonitorCursorRow.name == name, MonitorCursorRow.owner == owner)
                    .values(owner=None, lease_until=None)
                )

        self.db.retry(write)


def _alert(row: AlertRow) -> AlertRecord:
    return AlertRecord(
        row.alert_id, row.rule, row.model, row.series, row.severity, row.state, row.value,
        row.threshold, row.message, row.window_end, row.fired_at, row.resolved_at,
        row.notified_at, row.notify_attempts, row.notify_error,
        None if row.action is None else json.loads(row.action),
    )  # fmt: skip
