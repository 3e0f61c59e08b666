"""Stored validation gates: one row per ``ws.gate`` call, found by id or by candidate run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select

from loopml.errors import NotFoundError
from loopml.store.database import Database
from loopml.store.models import GateRow

__all__ = ["GateRecord", "GateRepository", "latest_gate"]


@dataclass(frozen=True)
class GateRecord:
    gate_id: str
    run_id: str | None
    champion_run_id: str | None
    evaluation_id: str | None
    passed: bool
    created_at: int
    result: str  # JSON


class GateRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def insert(self, record: GateRecord) -> None:
        values = {
            "gate_id": record.gate_id,
            "run_id": record.run_id,
            "champion_run_id": record.champion_run_id,
            "evaluation_id": record.evaluation_id,
            "passed": record.passed,
            "created_at": record.created_at,
            "result": record.result,
        }

        def write() -> None:
            with self.db.write() as session:
                session.execute(insert(GateRow), [values])

        self.db.retry(write)

    def get(self, gate_id: str) -> GateRecord:
        with self.db.read() as session:
            row = session.get(GateRow, gate_id)
            if row is None:
                raise NotFoundError(f"No gate {gate_id!r}; gates(ws, run) lists a run's gates.")
            return _record(row)

    def for_run(self, run_id: str) -> list[GateRecord]:
        """A candidate run's gates, oldest first."""
        with self.db.read() as session:
            rows = session.scalars(
                select(GateRow)
                .where(GateRow.run_id == run_id)
                .order_by(GateRow.created_at, GateRow.gate_id)
            )
            return [_record(row) for row in rows]


def _record(row: Any) -> GateRecord:
    """A GateRecord from an ORM row or a Core row of the gates table."""
    return GateRecord(
        row.gate_id,
        row.run_id,
        row.champion_run_id,
        row.evaluation_id,
        row.passed,
        row.created_at,
        row.result,
    )


def latest_gate(
    connection: Connection, run_id: str, champion_run_id: str | None
) -> GateRecord | None:
    """A candidate run's newest gate against ``champion_run_id`` (any champion when None),
    read inside the caller's transaction."""
    query = select(GateRow).where(GateRow.run_id == run_id)
    if champion_run_id is not None:
        query = query.where(GateRow.champion_run_id == champion_run_id)
    row = connection.execute(
        query.order_by(GateRow.created_at.desc(), GateRow.gate_id.desc()).limit(1)
    ).one_or_none()
    return None if row is None else _record(row)
