"""Deployment requests: canaries asked of running servers (see
``loopml.serving.deployment``).

Every change of state is one conditional UPDATE (``... WHERE state = 'pending'``), so
of two processes racing for the same request exactly one wins, on SQLite and
PostgreSQL alike: the server that claims it, or the waiter that expires it. The unique
``live_key`` (``model@alias`` while pending or running, NULL after) keeps one live
request per alias without a dialect's partial index.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from loopml._time import now_ms
from loopml.errors import NotFoundError, ValidationError
from loopml.store.database import Database
from loopml.store.models import DeploymentRequestRow
from loopml.store.repositories._util import insert_new

__all__ = ["LIVE_STATES", "DeploymentRepository", "DeploymentRequestRecord", "live_key"]

LIVE_STATES = ("pending", "running")
_PREFIX_MIN = 8


def live_key(model: str, alias: str) -> str:
    return f"{model}@{alias}"


@dataclass(frozen=True)
class DeploymentRequestRecord:
    request_id: str
    model: str
    alias: str
    candidate_version: int
    strategy: str
    plan: dict[str, Any]
    check_seconds: float
    state: str
    detail: str | None
    reason: str | None
    cancel_reason: str | None
    requested_by: str
    requested_at: int
    claimed_by: str | None
    claimed_at: int | None
    heartbeat_at: int | None
    updated_at: int


class DeploymentRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(
        self,
        request_id: str,
        *,
        model: str,
        alias: str,
        candidate_version: int,
        strategy: str,
        plan: Mapping[str, Any],
        check_seconds: float,
        reason: str | None,
        requested_by: str,
    ) -> tuple[DeploymentRequestRecord, bool]:
        """Stores a pending request; returns it and True, or the live request of the same
        alias and False (nothing stored)."""
        key = live_key(model, alias)
        now = now_ms()
        values = {
            "request_id": request_id, "model": model, "alias": alias,
            "candidate_version": candidate_version, "strategy": strategy,
            "plan": json.dumps(dict(plan), sort_keys=True), "check_seconds": check_seconds,
            "state": "pending", "live_key": key, "detail": None, "reason": reason,
            "cancel_reason": None, "requested_by": requested_by, "requested_at": now,
            "claimed_by": None, "claimed_at": None, "heartbeat_at": None, "updated_at": now,
        }  # fmt: skip

        def write() -> tuple[str, bool]:
            with self.db.write() as connection:
                inserted = insert_new(
                    connection, DeploymentRequestRow, values, "live_key",
                    DeploymentRequestRow.request_id,
                )  # fmt: skip
                if inserted is not None:
                    return str(inserted), True
                live = connection.execute(
                    select(DeploymentRequestRow.request_id).where(
                        DeploymentRequestRow.live_key == key
                    )
                ).scalar_one()
                return str(live), False

        found, created = self.db.retry(write)
        return self.get(found), created

    def get(self, request_id: str) -> DeploymentRequestRecord:
        """A request by its id or a unique prefix of it (at least 8 characters)."""
        table = DeploymentRequestRow
        with self.db.read() as session:
            row = session.get(table, request_id)
            if row is None and len(request_id) >= _PREFIX_MIN:
                found = session.scalars(
                    select(table)
                    .where(table.request_id.startswith(request_id, autoescape=True))
                    .limit(2)
                ).all()
                if len(found) > 1:
                    raise ValidationError(
                        f"{request_id!r} starts more than one deployment request; give more "
                        "of the id."
                    )
                row = found[0] if found else None
            if row is None:
                raise NotFoundError(
                    f"No deployment request {request_id!r}; `loopml deploy requests` lists them."
                )
            return _record(row)

    def find(
        self,
        model: str | None = None,
        states: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[DeploymentRequestRecord]:
        """Requests, newest first."""
        table = DeploymentRequestRow
        query = select(table).order_by(table.requested_at.desc(), table.request_id)
        if model is not None:
            query = query.where(table.model == model)
        if states is not None:
            query = query.where(table.state.in_(list(states)))
        if limit is not None:
            query = query.limit(limit)
        with self.db.read() as session:
            return [_record(row) for row in session.scalars(query)]

    def live(self, model: str, alias: str) -> DeploymentRequestRecord | None:
        """The pending or running request of ``model@alias``, if any (one lookup in the
        unique index: what a following server polls)."""
        table = DeploymentRequestRow
        with self.db.read() as session:
            row = session.scalars(
                select(table).where(table.live_key == live_key(model, alias))
            ).one_or_none()
            return None if row is None else _record(row)

    def claim(self, request_id: str, owner: str, detail: str) -> bool:
        """Moves a pending request to running for ``owner``; False when it is no longer
        pending (another server claimed it, or it expired or was cancelled)."""
        now = now_ms()
        return self._update(
            request_id,
            ("pending",),
            state="running",
            claimed_by=owner,
            claimed_at=now,
            heartbeat_at=now,
            detail=detail,
        )

    def finish(
        self,
        request_id: str,
        state: str,
        detail: str | None,
        *,
        when: Sequence[str],
        owner: str | None = None,
        heartbeat_at: int | None = None,
    ) -> bool:
        """Ends a request in ``state`` if it is in one of ``when`` (and, given, still held
        by ``owner``, or still at the ``heartbeat_at`` the caller saw); False otherwise."""
        if state in LIVE_STATES:
            raise ValueError(f"{state!r} is not an end state")
        return self._update(
            request_id,
            when,
            held_by=owner,
            beat_at=heartbeat_at,
            state=state,
            detail=detail,
            live_key=None,
        )

    def beat(self, request_id: str, owner: str, detail: str | None) -> tuple[bool, str | None]:
        """The running server's heartbeat: records its progress; returns whether the
        request is still its own and running, and the cancel reason if one was asked."""
        table = DeploymentRequestRow

        def write() -> tuple[bool, str | None]:
            now = now_ms()
            with self.db.write() as connection:
                result = connection.execute(
                    update(table)
                    .where(
                        table.request_id == request_id,
                        table.state == "running",
                        table.claimed_by == owner,
                    )
                    .values(heartbeat_at=now, updated_at=now, detail=detail)
                )
                if result.rowcount != 1:
                    return False, None
                cancel = connection.execute(
                    select(table.cancel_reason).where(table.request_id == request_id)
                ).scalar_one()
                return True, cancel

        return self.db.retry(write)

    def ask_cancel(self, request_id: str, reason: str) -> bool:
        """Asks the server running a request to roll it back; False when not running."""
        return self._update(request_id, ("running",), cancel_reason=reason)

    def _update(
        self,
        request_id: str,
        when: Sequence[str],
        *,
        held_by: str | None = None,
        beat_at: int | None = None,
        **values: Any,
    ) -> bool:
        """Sets ``values`` on the request if it is in one of the states ``when`` (and
        held by ``held_by``, last heard of at ``beat_at``, when given)."""
        table = DeploymentRequestRow
        conditions = [table.request_id == request_id, table.state.in_(list(when))]
        if held_by is not None:
            conditions.append(table.claimed_by == held_by)
        if beat_at is not None:
            conditions.append(table.heartbeat_at == beat_at)

        def write() -> bool:
            with self.db.write() as connection:
                result = connection.execute(
                    update(table).where(*conditions).values(**values, updated_at=now_ms())
                )
                return bool(result.rowcount == 1)

        return self.db.retry(write)


def _record(row: DeploymentRequestRow) -> DeploymentRequestRecord:
    return DeploymentRequestRecord(
        row.request_id, row.model, row.alias, row.candidate_version, row.strategy,
        json.loads(row.plan), row.check_seconds, row.state, row.detail, row.reason,
        row.cancel_reason, row.requested_by, row.requested_at, row.claimed_by, row.claimed_at,
        row.heartbeat_at, row.updated_at,
    )  # fmt: skip
