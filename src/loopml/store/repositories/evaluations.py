"""Stored evaluations: one row per ``ws.evaluate`` call, found by id or by run."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert, select

from loopml.errors import NotFoundError
from loopml.store.database import Database
from loopml.store.models import EvaluationRow

__all__ = ["EvaluationRecord", "EvaluationRepository"]


@dataclass(frozen=True)
class EvaluationRecord:
    evaluation_id: str
    run_id: str | None
    version_id: int | None
    created_at: int
    metrics: str  # JSON
    result: str  # JSON


class EvaluationRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def insert(self, record: EvaluationRecord) -> None:
        values = {
            "evaluation_id": record.evaluation_id,
            "run_id": record.run_id,
            "version_id": record.version_id,
            "created_at": record.created_at,
            "metrics": record.metrics,
            "result": record.result,
        }

        def write() -> None:
            with self.db.write() as session:
                session.execute(insert(EvaluationRow), [values])

        self.db.retry(write)

    def get(self, evaluation_id: str) -> EvaluationRecord:
        with self.db.read() as session:
            row = session.get(EvaluationRow, evaluation_id)
            if row is None:
                raise NotFoundError(
                    f"No evaluation {evaluation_id!r}; ws.evaluations(run) lists a run's ones."
                )
            return _record(row)

    def for_run(self, run_id: str) -> list[EvaluationRecord]:
        """A run's evaluations, oldest first."""
        with self.db.read() as session:
            rows = session.scalars(
                select(EvaluationRow)
                .where(EvaluationRow.run_id == run_id)
                .order_by(EvaluationRow.created_at, EvaluationRow.evaluation_id)
            )
            return [_record(row) for row in rows]


def _record(row: EvaluationRow) -> EvaluationRecord:
    return EvaluationRecord(
        row.evaluation_id, row.run_id, row.version_id, row.created_at, row.metrics, row.result
    )
