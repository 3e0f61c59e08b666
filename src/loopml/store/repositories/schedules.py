"""Pipeline schedules, triggers and their firings (see ``loopml.pipelines.scheduler``).

A firing is claimed by inserting its row before anything runs: the unique
``(trigger_id, event)`` key lets exactly one process win each schedule occurrence or
event, on SQLite and PostgreSQL alike. The claim also applies the trigger's rate limit
in the same transaction, so two processes cannot both slip under it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from loopml._time import now_ms
from loopml.errors import ConflictError, NotFoundError
from loopml.store.database import Database
from loopml.store.models import PipelineFiringRow, PipelineTriggerRow
from loopml.store.repositories._util import upsert

__all__ = ["FiringRecord", "ScheduleRepository", "TriggerRecord"]

_TRIGGER_FIELDS = (
    "kind", "target", "params", "enabled", "cron", "timezone", "catch_up", "max_catch_up",
    "start_at", "source", "rule", "data_param", "position", "max_runs", "period_ms",
)  # fmt: skip
# Firings that count against a rate limit: the ones that started a run.
_COUNTED = ("running", "succeeded", "failed", "waiting")


@dataclass(frozen=True)
class TriggerRecord:
    trigger_id: int
    name: str
    kind: str
    target: str
    params: dict[str, Any]
    enabled: bool
    cron: str | None
    timezone: str | None
    catch_up: str | None
    max_catch_up: int | None
    start_at: int
    source: str | None
    rule: str | None
    data_param: str | None
    position: int | None
    max_runs: int | None
    period_ms: int | None
    created_at: int
    updated_at: int


@dataclass(frozen=True)
class FiringRecord:
    firing_id: int
    trigger_id: int
    event: str
    occurrence: int | None
    status: str  # running | succeeded | failed | waiting | suppressed
    reason: dict[str, Any]
    owner: str | None
    lease_until: int | None
    run_id: str | None
    error: str | None
    created_at: int
    finished_at: int | None


class ScheduleRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- triggers ---------------------------------------------------------------
    def add(self, name: str, values: Mapping[str, Any], *, replace: bool = False) -> TriggerRecord:
        """Stores a trigger; with ``replace`` an existing one of that name is updated
        in place (its firings, and so its claimed occurrences, are kept)."""
        unknown = set(values) - set(_TRIGGER_FIELDS)
        if unknown:
            raise ValueError(f"unknown trigger field(s) {sorted(unknown)}")
        row = dict(values)
        row["params"] = json.dumps(row.get("params") or {}, default=str, sort_keys=True)

        def write() -> None:
            now = now_ms()
            with self.db.write() as connection:
                existing = _trigger_id(connection, name)
                if existing is None:
                    connection.execute(
                        insert(PipelineTriggerRow),
                        {**row, "name": name, "created_at": now, "updated_at": now},
                    )
                elif replace:
                    connection.execute(
                        update(PipelineTriggerRow)
                        .where(PipelineTriggerRow.trigger_id == existing)
                        .values(**row, updated_at=now)
                    )
                else:
                    raise ConflictError(
                        f"A schedule or trigger named {name!r} exists already; remove it first "
                        "or pass replace=True (--replace) to change it."
                    )

        self.db.retry(write)
        return self.get(name)

    def get(self, name: str) -> TriggerRecord:
        with self.db.read() as session:
            row = session.scalars(
                select(PipelineTriggerRow).where(PipelineTriggerRow.name == name)
            ).one_or_none()
            if row is None:
                raise NotFoundError(
                    f"No schedule or trigger named {name!r}; list them with `loopml schedule list`."
                )
            return _trigger(row)

    def triggers(self, kind: str | None = None) -> list[TriggerRecord]:
        query = select(PipelineTriggerRow).order_by(PipelineTriggerRow.name)
        if kind is not None:
            query = query.where(PipelineTriggerRow.kind == kind)
        with self.db.read() as session:
            return [_trigger(row) for row in session.scalars(query)]

    def remove(self, name: str) -> bool:
        """Deletes a trigger and its firings; False when there was none."""

        def write() -> bool:
            with self.db.write() as connection:
                found = _trigger_id(connection, name)
                if found is None:
                    return False
                # Explicit, not only ON DELETE CASCADE: a SQLite connection opened
                # without foreign keys on would leave the firings behind.
                connection.execute(
                    delete(PipelineFiringRow).where(PipelineFiringRow.trigger_id == found)
                )
                connection.execute(
                    delete(PipelineTriggerRow).where(PipelineTriggerRow.trigger_id == found)
                )
                return True

        return self.db.retry(write)

    def set_enabled(self, name: str, enabled: bool) -> TriggerRecord:
        def write() -> int:
            with self.db.write() as connection:
                result = connection.execute(
                    update(PipelineTriggerRow)
                    .where(PipelineTriggerRow.name == name)
                    .values(enabled=enabled, updated_at=now_ms())
                )
                return int(result.rowcount)

        self.db.retry(write)
        return self.get(name)

    def advance(self, trigger_id: int, position: int) -> None:
        """Moves a trigger's position forward (never back: a slower poller cannot undo
        a faster one's progress)."""

        def write() -> None:
            table = PipelineTriggerRow
            with self.db.write() as connection:
                connection.execute(
                    update(table)
                    .where(
                        table.trigger_id == trigger_id,
                        table.position.is_(None) | (table.position < position),
                    )
                    .values(position=position)
                )

        self.db.retry(write)

    # -- firings ----------------------------------------------------------------
    def claim(
        self,
        trigger_id: int,
        event: str,
        *,
        reason: Mapping[str, Any],
        owner: str,
        lease_ms: int,
        now: int,
        occurrence: int | None = None,
    ) -> FiringRecord | None:
        """Claims one occurrence or event of a trigger for ``owner``.

        Returns the new firing, ``running`` or, when the trigger's rate limit is used
        up, ``suppressed`` (recorded, never run); None when another process claimed
        this event already. ``now`` (epoch ms, the scheduler's clock) dates the firing
        and sets the rate window; the lease runs on the wall clock.
        """
        reason_text = json.dumps(dict(reason), default=str, sort_keys=True)

        def write() -> int | None:
            with self.db.write() as connection:
                # Serializes claims of this trigger: SQLite's BEGIN IMMEDIATE does it
                # already; on PostgreSQL the row lock makes the rate count exact.
                trigger = connection.execute(
                    select(PipelineTriggerRow.max_runs, PipelineTriggerRow.period_ms)
                    .where(PipelineTriggerRow.trigger_id == trigger_id)
                    .with_for_update()
                ).one_or_none()
                if trigger is None:
                    raise NotFoundError(f"The trigger {trigger_id} was removed.")
                taken = connection.execute(
                    select(PipelineFiringRow.firing_id).where(
                        PipelineFiringRow.trigger_id == trigger_id,
                        PipelineFiringRow.event == event,
                    )
                ).first()
                if taken is not None:
                    return None
                status = "running"
                if trigger.max_runs is not None and trigger.period_ms:
                    used = connection.execute(
                        select(func.count()).where(
                            PipelineFiringRow.trigger_id == trigger_id,
                            PipelineFiringRow.status.in_(_COUNTED),
                            PipelineFiringRow.created_at > now - trigger.period_ms,
                        )
                    ).scalar_one()
                    if used >= trigger.max_runs:
                        status = "suppressed"
                running = status == "running"
                stmt = (
                    upsert(connection, PipelineFiringRow)
                    .on_conflict_do_nothing(index_elements=["trigger_id", "event"])
                    .returning(PipelineFiringRow.firing_id)
                )
                inserted = connection.execute(
                    stmt,
                    {
                        "trigger_id": trigger_id, "event": event, "occurrence": occurrence,
                        "status": status, "reason": reason_text,
                        "owner": owner if running else None,
                        "lease_until": now_ms() + lease_ms if running else None,
                        "created_at": now, "finished_at": None if running else now,
                    },
                ).scalar_one_or_none()  # fmt: skip
                return None if inserted is None else int(inserted)

        firing_id = self.db.retry(write)
        return None if firing_id is None else self.firing(firing_id)

    def heartbeat(self, firing_id: int, owner: str, lease_ms: int) -> bool:
        """Extends a running firing's lease; False when ``owner`` no longer holds it."""

        def write() -> bool:
            table = PipelineFiringRow
            with self.db.write() as connection:
                result = connection.execute(
                    update(table)
                    .where(
                        table.firing_id == firing_id,
                        table.owner == owner,
                        table.status == "running",
                    )
                    .values(lease_until=now_ms() + lease_ms)
                )
                return bool(result.rowcount == 1)

        return self.db.retry(write)

    def finish(
        self,
        firing_id: int,
        owner: str,
        *,
        status: str,
        now: int,
        run_id: str | None = None,
        error: str | None = None,
    ) -> None:
        """Records how a firing ended. A runner that was presumed dead (its lease
        expired) but did finish still records the true outcome."""

        def write() -> None:
            table = PipelineFiringRow
            with self.db.write() as connection:
                connection.execute(
                    update(table)
                    .where(table.firing_id == firing_id, table.owner == owner)
                    .values(
                        status=status,
                        run_id=run_id,
                        error=error,
                        finished_at=now,
                        lease_until=None,
                    )
                )

        self.db.retry(write)

    def reap(self, now: int) -> list[FiringRecord]:
        """Marks failed every running firing whose lease expired (wall clock): its
        runner died mid-way, so it must not look as if it were still running."""

        def write() -> list[int]:
            table = PipelineFiringRow
            wall = now_ms()
            with self.db.write() as connection:
                stale = connection.execute(
                    select(table.firing_id, table.owner, table.lease_until)
                    .where(table.status == "running", table.lease_until < wall)
                    .with_for_update()
                ).all()
                for firing_id, owner, lease_until in stale:
                    connection.execute(
                        update(table)
                        .where(table.firing_id == firing_id, table.status == "running")
                        .values(
                            status="failed",
                            finished_at=now,
                            lease_until=None,
                            error=(
                                f"the runner {owner} stopped (no heartbeat since its lease "
                                f"ran out at {lease_until} ms); this occurrence is not "
                                "retried by itself, re-run it with `loopml trigger fire`"
                                " or resume its pipeline run"
                            ),
                        )
                    )
                return [int(row.firing_id) for row in stale]

        return [self.firing(firing_id) for firing_id in self.db.retry(write)]

    def firing(self, firing_id: int) -> FiringRecord:
        with self.db.read() as session:
            row = session.get(PipelineFiringRow, firing_id)
            if row is None:
                raise NotFoundError(f"No firing {firing_id}.")
            return _firing(row)

    def firings(
        self, trigger_id: int | None = None, status: str | None = None, limit: int | None = None
    ) -> list[FiringRecord]:
        """Firings, newest first."""
        query = select(PipelineFiringRow).order_by(PipelineFiringRow.firing_id.desc())
        if trigger_id is not None:
            query = query.where(PipelineFiringRow.trigger_id == trigger_id)
        if status is not None:
            query = query.where(PipelineFiringRow.status == status)
        if limit is not None:
            query = query.limit(limit)
        with self.db.read() as session:
            return [_firing(row) for row in session.scalars(query)]

    def last_occurrence(self, trigger_id: int) -> int | None:
        """The newest schedule occurrence claimed (whatever became of it)."""
        with self.db.read() as session:
            found = session.execute(
                select(func.max(PipelineFiringRow.occurrence)).where(
                    PipelineFiringRow.trigger_id == trigger_id
                )
            ).scalar_one_or_none()
            return None if found is None else int(found)


def _trigger_id(connection: Connection, name: str) -> int | None:
    found = connection.execute(
        select(PipelineTriggerRow.trigger_id).where(PipelineTriggerRow.name == name)
    ).scalar_one_or_none()
    return None if found is None else int(found)


def _trigger(row: PipelineTriggerRow) -> TriggerRecord:
    return TriggerRecord(
        row.trigger_id, row.name, row.kind, row.target, json.loads(row.params), row.enabled,
        row.cron, row.timezone, row.catch_up, row.max_catch_up, row.start_at, row.source,
        row.rule, row.data_param, row.position, row.max_runs, row.period_ms, row.created_at,
        row.updated_at,
    )  # fmt: skip


def _firing(row: PipelineFiringRow) -> FiringRecord:
    return FiringRecord(
        row.firing_id, row.trigger_id, row.event, row.occurrence, row.status,
        json.loads(row.reason), row.owner, row.lease_until, row.run_id, row.error,
        row.created_at, row.finished_at,
    )  # fmt: skip
