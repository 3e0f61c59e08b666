"""The prediction log's file index and feedback labels (see ``loopml.serving.predlog``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select

from loopml._time import now_ms
from loopml.store.database import Database
from loopml.store.models import FeedbackRow, PredictionFileRow
from loopml.store.repositories._util import upsert
from loopml.store.repositories.blobs import _touch

__all__ = ["FeedbackRecord", "PredictionFile", "PredictionRepository"]


@dataclass(frozen=True)
class PredictionFile:
    """One indexed Parquet file of the prediction log."""

    file_id: int
    model: str
    version: int
    arm: str | None
    source: str
    min_time: int
    max_time: int
    rows: int
    sha256: str
    size: int
    schema: list[tuple[str, str]]
    """Every column, [name, Arrow type], those of a referenced input included."""
    inputs_sha256: str | None = None
    """The Parquet blob holding the inputs of a batch job's file (row n is logged row n)."""
    inputs_columns: tuple[str, ...] = ()
    """The blob's columns that are the logged inputs (each under ``input.<name>`` in
    ``schema`` when the log has a column of that name)."""


@dataclass(frozen=True)
class FeedbackRecord:
    request_id: str
    row: int
    label: Any
    model: str | None = None
    entity: str | None = None
    time: int | None = None  # epoch ms; when the outcome happened (now when missing)
    created_at: int | None = None  # first recorded, epoch ms
    updated_at: int | None = None  # last recorded


class PredictionRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add_file(
        self,
        *,
        model: str,
        version: int,
        arm: str | None,
        source: str,
        min_time: int,
        max_time: int,
        rows: int,
        sha256: str,
        size: int,
        schema: Sequence[tuple[str, str]],
        inputs: tuple[str, int, Sequence[str]] | None = None,
    ) -> None:
        """Records the blob and indexes the file, in one transaction. ``inputs`` is the
        (sha256, size, columns) of a blob holding the file's inputs, stored already."""
        values = {
            "model": model, "version": version, "arm": arm, "source": source,
            "min_time": min_time, "max_time": max_time, "rows": rows, "sha256": sha256,
            "size": size, "schema": json.dumps([list(pair) for pair in schema]),
            "inputs_sha256": None if inputs is None else inputs[0],
            "inputs_columns": None if inputs is None else json.dumps(list(inputs[2])),
        }  # fmt: skip
        blobs = [(sha256, size)] + ([] if inputs is None else [(inputs[0], inputs[1])])

        def write() -> None:
            now = now_ms()
            with self.db.write() as connection:
                _touch(connection, blobs, now)
                connection.execute(insert(PredictionFileRow), [values | {"created_at": now}])

        self.db.retry(write)

    def files(
        self,
        model: str,
        since: int | None = None,
        until: int | None = None,
        version: int | None = None,
        source: str | None = None,
    ) -> list[PredictionFile]:
        """The files that may hold rows of ``model`` in [since, until) (epoch ms), oldest first."""
        query = select(PredictionFileRow).where(PredictionFileRow.model == model)
        if since is not None:
            query = query.where(PredictionFileRow.max_time >= since)
        if until is not None:
            query = query.where(PredictionFileRow.min_time < until)
        if version is not None:
            query = query.where(PredictionFileRow.version == version)
        if source is not None:
            query = query.where(PredictionFileRow.source == source)
        with self.db.read() as session:
            rows = session.scalars(
                query.order_by(PredictionFileRow.min_time, PredictionFileRow.file_id)
            )
            return [_file(row) for row in rows]

    def delete_files(self, before: int, model: str | None = None) -> tuple[int, int]:
        """Unindexes the files whose rows are all older than ``before`` (epoch ms); returns
        (files, rows). Their blobs become garbage for ``ws.gc``."""

        def write() -> tuple[int, int]:
            condition = PredictionFileRow.max_time < before
            if model is not None:
                condition = condition & (PredictionFileRow.model == model)
            with self.db.write() as connection:
                doomed = connection.execute(
                    select(PredictionFileRow.file_id, PredictionFileRow.rows).where(condition)
                ).all()
                ids = [file_id for file_id, _ in doomed]
                for start in range(0, len(ids), 500):
                    connection.execute(
                        delete(PredictionFileRow).where(
                            PredictionFileRow.file_id.in_(ids[start : start + 500])
                        )
                    )
                return len(ids), sum(int(rows) for _, rows in doomed)

        return self.db.retry(write)

    # -- feedback ---------------------------------------------------------------
    def upsert_feedback(self, records: Sequence[FeedbackRecord]) -> None:
        """Stores labels; a (request id, row) stored before gets the new label, model,
        entity and time, and keeps its first ``created_at``."""
        if not records:
            return
        now = now_ms()
        unique = {(r.request_id, r.row): r for r in records}  # the last one of a batch wins
        values = [
            {
                "request_id": r.request_id, "row": r.row, "label": json.dumps(r.label),
                "model": r.model, "entity": r.entity,
                "time": now if r.time is None else r.time, "created_at": now, "updated_at": now,
            }
            for r in unique.values()
        ]  # fmt: skip

        def write() -> None:
            with self.db.write() as connection:
                stmt = upsert(connection, FeedbackRow)
                excluded = stmt.excluded
                for start in range(0, len(values), 5000):
                    connection.execute(
                        stmt.on_conflict_do_update(
                            index_elements=["request_id", "row"],
                            set_={
                                "label": excluded.label,
                                "model": excluded.model,
                                "entity": excluded.entity,
                                "time": excluded.time,
                                "updated_at": excluded.updated_at,
                            },
                        ),
                        values[start : start + 5000],
                    )

        self.db.retry(write)

    def feedback(self, model: str | None = None, since: int | None = None) -> list[FeedbackRecord]:
        """Labels recorded at or after ``since`` (epoch ms), of ``model`` when given."""
        table = FeedbackRow.__table__.c
        query = select(
            table.request_id, table.row, table.label, table.model, table.entity, table.time,
            table.created_at, table.updated_at,
        )  # fmt: skip
        if model is not None:
            query = query.where(table.model == model)
        if since is not None:
            query = query.where(table.created_at >= since)
        # Plain rows, not ORM objects: a monitoring window can hold millions of labels.
        with self.db.read() as session:
            rows = session.execute(query.order_by(table.created_at))
            return [
                FeedbackRecord(request_id, row, json.loads(label), *rest)
                for request_id, row, label, *rest in rows
            ]


def _file(row: PredictionFileRow) -> PredictionFile:
    return PredictionFile(
        row.file_id, row.model, row.version, row.arm, row.source, row.min_time, row.max_time,
        row.rows, row.sha256, row.size, [(name, kind) for name, kind in json.loads(row.schema)],
        row.inputs_sha256, tuple(json.loads(row.inputs_columns or "[]")),
    )  # fmt: skip
