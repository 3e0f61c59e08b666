"""Runs with their params, tags, metrics (full history and latest) and environments."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from loopml._time import now_ms
from loopml.errors import NotFoundError, ValidationError
from loopml.store.database import Database
from loopml.store.entities import Metric, RunInfo, RunRecord
from loopml.store.models import (
    EnvironmentRow,
    LatestMetricRow,
    MetricRow,
    ParamRow,
    RunRow,
    TagRow,
)
from loopml.store.repositories._util import upsert

__all__ = ["MetricPoint", "RunRepository"]

# (run_id, key, value, step, timestamp): what the background writer batches.
MetricPoint = tuple[str, str, float, int, int]


class RunRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- runs -----------------------------------------------------------------
    def create(self, values: dict[str, Any], tags: dict[str, str]) -> RunInfo:
        def write() -> None:
            with self.db.write() as session:
                session.execute(_INSERT_RUN, values)
                if tags:
                    session.execute(
                        _INSERT_TAG,
                        [
                            {"run_id": values["run_id"], "key": k, "value": v}
                            for k, v in tags.items()
                        ],
                    )

        self.db.retry(write)
        row = RunRow(**{"end_time": None, "error": None, "deleted_at": None, **values})
        return to_run_info(row)

    def get(self, run_id: str) -> RunInfo:
        with self.db.read() as session:
            row = session.get(RunRow, run_id)
            if row is None:
                raise NotFoundError(
                    f"No run {run_id!r}. `loopml runs list` shows run ids; a run removed by "
                    "`loopml gc` cannot come back."
                )
            return to_run_info(row)

    def ids_starting_with(self, prefix: str, limit: int = 10) -> list[str]:
        with self.db.read() as session:
            query = select(RunRow.run_id).where(RunRow.run_id.startswith(prefix, autoescape=True))
            return [str(run_id) for run_id in session.scalars(query.limit(limit))]

    def finish(self, run_id: str, status: str, error: str | None) -> None:
        self.insert_metrics([], finish=(run_id, status, error))

    def set_deleted(self, run_ids: Sequence[str], deleted: bool) -> None:
        with self.db.write() as session:
            session.execute(
                update(RunRow)
                .where(RunRow.run_id.in_(run_ids))
                .values(deleted_at=now_ms() if deleted else None)
            )

    def children(self, run_id: str) -> list[RunInfo]:
        with self.db.read() as session:
            rows = session.scalars(
                select(RunRow).where(RunRow.parent_run_id == run_id).order_by(RunRow.start_time)
            )
            return [to_run_info(row) for row in rows]

    # -- params and tags ------------------------------------------------------
    def log_params(self, run_id: str, params: dict[str, tuple[str, float | None]]) -> None:
        """Stores params; the same value again is a no-op, a different one an error (and
        then none of the call's params is stored)."""
        rows = [
            {"run_id": run_id, "key": k, "value": v, "value_number": n}
            for k, (v, n) in params.items()
        ]

        def write() -> None:
            with self.db.write() as connection:
                stmt = upsert(connection, ParamRow).values(rows).on_conflict_do_nothing()
                if connection.execute(stmt).rowcount == len(rows):
                    return  # the common case costs one statement
                found = connection.execute(
                    select(ParamRow.key, ParamRow.value).where(
                        ParamRow.run_id == run_id, ParamRow.key.in_(list(params))
                    )
                )
                for key, stored in found:
                    value = params[key][0]
                    if stored != value:
                        raise ValidationError(
                            f"Param {key!r} of run {run_id} is already {stored!r}; "
                            f"params are fixed once logged, so it cannot become {value!r}. "
                            "Log a value that changes as a metric or a tag, or start a new run."
                        )

        self.db.retry(write)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        def write() -> None:
            with self.db.write() as session:
                stmt = upsert(session, TagRow)
                session.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["run_id", "key"], set_={"value": stmt.excluded.value}
                    ),
                    [{"run_id": run_id, "key": k, "value": v} for k, v in tags.items()],
                )

        self.db.retry(write)

    def delete_tag(self, run_id: str, key: str) -> None:
        with self.db.write() as session:
            session.execute(delete(TagRow).where(TagRow.run_id == run_id, TagRow.key == key))

    # -- metrics --------------------------------------------------------------
    def insert_metrics(
        self,
        points: Sequence[MetricPoint],
        finish: tuple[str, str, str | None] | None = None,
    ) -> None:
        """Appends metric points to the history and moves each key's latest value forward.

        ``finish`` (run id, status, error) also ends a run in the same transaction, so a
        run's last metrics and its end cost one write.
        """
        history = [
            {
                "run_id": run_id,
                "key": key,
                "value": None if math.isnan(value) else value,
                "is_nan": math.isnan(value),
                "step": step,
                "timestamp": timestamp,
            }
            for run_id, key, value, step, timestamp in points
        ]
        newest: dict[tuple[Any, Any], dict[str, Any]] = {}
        for row in history:
            slot = (row["run_id"], row["key"])
            held = newest.get(slot)
            if held is None or (row["step"], row["timestamp"]) >= (held["step"], held["timestamp"]):
                newest[slot] = row

        def write() -> None:
            with self.db.write() as connection:
                if history:
                    connection.execute(_INSERT_METRIC, history)
                    connection.execute(
                        _latest_upsert(connection.dialect.name), list(newest.values())
                    )
                if finish is not None:
                    run_id, status, error = finish
                    connection.execute(
                        _FINISH_RUN,
                        {
                            "b_run_id": run_id,
                            "b_status": status,
                            "b_end": now_ms(),
                            "b_error": error,
                        },
                    )

        if history or finish is not None:
            self.db.retry(write)

    def metric_history(self, run_id: str, key: str | None = None) -> list[tuple[str, Metric]]:
        with self.db.read() as session:
            query = select(MetricRow).where(MetricRow.run_id == run_id)
            if key is not None:
                query = query.where(MetricRow.key == key)
            rows = session.scalars(query.order_by(MetricRow.key, MetricRow.step, MetricRow.id))
            return [
                (row.key, Metric(row.key, _metric_value(row), row.step, row.timestamp))
                for row in rows
            ]

    # -- records --------------------------------------------------------------
    def records(self, run_ids: Sequence[str]) -> list[RunRecord]:
        """Runs with latest metrics, params and tags, in the order of ``run_ids``."""
        if not run_ids:
            return []
        ids = list(run_ids)
        with self.db.read() as session:
            infos = {
                row.run_id: to_run_info(row)
                for row in session.scalars(select(RunRow).where(RunRow.run_id.in_(ids)))
            }
            params: dict[str, dict[str, str]] = {run_id: {} for run_id in ids}
            for run_id, key, value in session.execute(
                select(ParamRow.run_id, ParamRow.key, ParamRow.value).where(
                    ParamRow.run_id.in_(ids)
                )
            ):
                params[run_id][key] = value
            tags: dict[str, dict[str, str]] = {run_id: {} for run_id in ids}
            for run_id, key, value in session.execute(
                select(TagRow.run_id, TagRow.key, TagRow.value).where(TagRow.run_id.in_(ids))
            ):
                tags[run_id][key] = value
            metrics: dict[str, dict[str, float]] = {run_id: {} for run_id in ids}
            for row in session.scalars(
                select(LatestMetricRow).where(LatestMetricRow.run_id.in_(ids))
            ):
                metrics[row.run_id][row.key] = _metric_value(row)
        return [
            RunRecord(infos[run_id], params[run_id], metrics[run_id], tags[run_id])
            for run_id in ids
            if run_id in infos
        ]

    # -- environments ---------------------------------------------------------
    def ensure_environment(
        self, environment_id: str, python_version: str, platform: str, packages_json: str
    ) -> None:
        def write() -> None:
            with self.db.write() as session:
                stmt = upsert(session, EnvironmentRow).values(
                    environment_id=environment_id,
                    python_version=python_version,
                    platform=platform,
                    packages=packages_json,
                )
                session.execute(stmt.on_conflict_do_nothing(index_elements=["environment_id"]))

        self.db.retry(write)

    def environment(self, environment_id: str) -> tuple[str, str, str] | None:
        with self.db.read() as session:
            row = session.get(EnvironmentRow, environment_id)
            return (row.python_version, row.platform, row.packages) if row else None


# Statements built once: building them (and their cache keys) per call costs more than
# SQLite takes to run them.
_INSERT_RUN = insert(RunRow)
_INSERT_TAG = insert(TagRow)
_INSERT_METRIC = insert(MetricRow)
_FINISH_RUN = (
    update(RunRow)
    .where(RunRow.run_id == bindparam("b_run_id"))
    .values(status=bindparam("b_status"), end_time=bindparam("b_end"), error=bindparam("b_error"))
)


@functools.cache
def _latest_upsert(dialect: str) -> Any:
    """Moves a key's latest value forward only for a higher step (or same step, later time).

    Built once per dialect: making ``excluded`` columns costs more than the write itself.
    """
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(LatestMetricRow)
    current = LatestMetricRow.__table__.c
    newer = or_(
        stmt.excluded.step > current.step,
        and_(stmt.excluded.step == current.step, stmt.excluded.timestamp >= current.timestamp),
    )
    return stmt.on_conflict_do_update(
        index_elements=["run_id", "key"],
        set_={
            "value": stmt.excluded.value,
            "is_nan": stmt.excluded.is_nan,
            "step": stmt.excluded.step,
            "timestamp": stmt.excluded.timestamp,
        },
        where=newer,
    )


def _metric_value(row: MetricRow | LatestMetricRow) -> float:
    return math.nan if row.is_nan or row.value is None else float(row.value)


def to_run_info(row: RunRow) -> RunInfo:
    return RunInfo(
        run_id=row.run_id,
        experiment_id=row.experiment_id,
        name=row.name,
        status=row.status,
        start_time=row.start_time,
        end_time=row.end_time,
        parent_run_id=row.parent_run_id,
        error=row.error,
        user=row.user,
        source=row.source,
        git_commit=row.git_commit,
        git_dirty=row.git_dirty,
        git_diff_sha256=row.git_diff_sha256,
        environment_id=row.environment_id,
        deleted=row.deleted_at is not None,
    )
