"""Pipeline runs, step runs and their links to tracking runs (see ``loopml.pipelines``)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, update

from loopml._time import now_ms
from loopml.store.database import Database
from loopml.store.models import PipelineRunLinkRow, PipelineRunRow, PipelineStepRunRow
from loopml.store.repositories._util import upsert

__all__ = ["PipelineRepository", "PipelineRunRecord", "StepRunRecord"]

_ACTIVE = ("PENDING", "RUNNING")  # a driver owns the run (WAITING has ended: no owner)


@dataclass
class StepRunRecord:
    """One step of a pipeline run as stored."""

    step_run_id: int
    run_id: str
    step: str
    function: str
    status: str  # PENDING | RUNNING | SUCCEEDED | CACHED | FAILED | SKIPPED | WAITING
    cache_key: str | None
    code_hash: str | None
    cached_from: int | None
    attempts: int
    params: dict[str, Any]
    inputs: dict[str, Any]
    outputs: dict[str, Any] | None
    logs: str | None
    error: str | None
    traceback: str | None
    started_at: int | None
    ended_at: int | None
    tracking_runs: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at) / 1000


@dataclass
class PipelineRunRecord:
    """One pipeline run as stored, with its step runs in the DAG's order."""

    run_id: str
    pipeline: str
    target: str | None
    status: str  # RUNNING | SUCCEEDED | FAILED | WAITING
    executor: str
    params: dict[str, Any]
    graph: dict[str, Any]
    reason: str | None
    trigger: str | None
    resumed_from: str | None
    user: str | None
    error: str | None
    owner: str | None
    heartbeat_at: int | None
    started_at: int
    ended_at: int | None
    steps: list[StepRunRecord] = field(default_factory=list)


def _run(row: PipelineRunRow) -> PipelineRunRecord:
    return PipelineRunRecord(
        run_id=row.run_id,
        pipeline=row.pipeline,
        target=row.target,
        status=row.status,
        executor=row.executor,
        params=json.loads(row.params),
        graph=json.loads(row.graph),
        reason=row.reason,
        trigger=row.trigger,
        resumed_from=row.resumed_from,
        user=row.user,
        error=row.error,
        owner=row.owner,
        heartbeat_at=row.heartbeat_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
    )


def _step(row: PipelineStepRunRow, links: Sequence[str] = ()) -> StepRunRecord:
    return StepRunRecord(
        step_run_id=row.step_run_id,
        run_id=row.run_id,
        step=row.step,
        function=row.function,
        status=row.status,
        cache_key=row.cache_key,
        code_hash=row.code_hash,
        cached_from=row.cached_from,
        attempts=row.attempts,
        params=json.loads(row.params),
        inputs=json.loads(row.inputs),
        outputs=json.loads(row.outputs) if row.outputs else None,
        logs=row.logs,
        error=row.error,
        traceback=row.traceback,
        started_at=row.started_at,
        ended_at=row.ended_at,
        tracking_runs=list(links),
    )


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


class PipelineRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- pipeline runs ------------------------------------------------------------
    def create_run(self, values: Mapping[str, Any], steps: Sequence[Mapping[str, Any]]) -> None:
        """Inserts a run and its steps (PENDING, or already decided) in one transaction."""
        run = {**values, "params": _json(values["params"]), "graph": _json(values["graph"])}

        def write() -> None:
            with self.db.write() as connection:
                connection.execute(insert(PipelineRunRow), [run])
                if steps:
                    connection.execute(
                        insert(PipelineStepRunRow),
                        [_step_values(s) for s in steps],
                    )

        self.db.retry(write)

    def finish_run(self, run_id: str, status: str, error: str | None) -> None:
        self._update_run(run_id, status=status, error=error, ended_at=now_ms())

    def heartbeat(self, run_id: str) -> None:
        self._update_run(run_id, heartbeat_at=now_ms(), only_active=True)

    def _update_run(self, run_id: str, only_active: bool = False, **values: Any) -> None:
        statement = update(PipelineRunRow).where(PipelineRunRow.run_id == run_id)
        if only_active:
            statement = statement.where(PipelineRunRow.status.in_(_ACTIVE))

        def write() -> None:
            with self.db.write() as connection:
                connection.execute(statement.values(**values))

        self.db.retry(write)

    def get_run(self, run_id: str) -> PipelineRunRecord | None:
        with self.db.read() as session:
            row = session.get(PipelineRunRow, run_id)
            if row is None:
                return None
            record = _run(row)
            record.steps = self._steps(session, [run_id]).get(run_id, [])
        order = {s["name"]: i for i, s in enumerate(record.graph.get("steps", []))}
        record.steps.sort(key=lambda s: (order.get(s.step, len(order)), s.step_run_id))
        return record

    def ids_starting_with(self, prefix: str) -> list[str]:
        with self.db.read() as session:
            return list(
                session.scalars(
                    select(PipelineRunRow.run_id)
                    .where(PipelineRunRow.run_id.like(prefix + "%"))
                    .limit(5)
                )
            )

    def list_runs(
        self, pipeline: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[PipelineRunRecord]:
        """Newest first, each with its step runs."""
        statement = select(PipelineRunRow).order_by(PipelineRunRow.started_at.desc()).limit(limit)
        if pipeline is not None:
            statement = statement.where(PipelineRunRow.pipeline == pipeline)
        if status is not None:
            statement = statement.where(PipelineRunRow.status == status)
        with self.db.read() as session:
            records = [_run(row) for row in session.scalars(statement)]
            steps = self._steps(session, [r.run_id for r in records])
        for record in records:
            record.steps = steps.get(record.run_id, [])
        return records

    def _steps(self, session: Any, run_ids: Sequence[str]) -> dict[str, list[StepRunRecord]]:
        if not run_ids:
            return {}
        rows = list(
            session.scalars(
                select(PipelineStepRunRow)
                .where(PipelineStepRunRow.run_id.in_(run_ids))
                .order_by(PipelineStepRunRow.step_run_id)
            )
        )
        links: dict[int, list[str]] = {}
        if rows:
            for tracking, step_run in session.execute(
                select(PipelineRunLinkRow.tracking_run_id, PipelineRunLinkRow.step_run_id).where(
                    PipelineRunLinkRow.step_run_id.in_([r.step_run_id for r in rows])
                )
            ):
                links.setdefault(step_run, []).append(tracking)
        found: dict[str, list[StepRunRecord]] = {}
        for row in rows:
            found.setdefault(row.run_id, []).append(_step(row, links.get(row.step_run_id, ())))
        return found

    def expire_stale(self, older_than_ms: int, dead_owners: Sequence[str] = ()) -> list[str]:
        """Marks FAILED the active runs whose heartbeat is older than ``older_than_ms``
        (or whose owner is known dead), with their unfinished steps; returns their ids."""
        with self.db.read() as session:
            rows = list(
                session.execute(
                    select(
                        PipelineRunRow.run_id, PipelineRunRow.heartbeat_at, PipelineRunRow.owner
                    ).where(PipelineRunRow.status.in_(_ACTIVE))
                )
            )
        stale = [
            (run_id, beat)
            for run_id, beat, owner in rows
            if (beat or 0) < older_than_ms or (owner is not None and owner in dead_owners)
        ]
        if not stale:
            return []
        now = now_ms()

        def write() -> None:
            with self.db.write() as connection:
                for run_id, beat in stale:
                    since = _iso(beat) if beat else "it started"
                    message = f"no heartbeat since {since}: the process running it died"
                    done = connection.execute(
                        update(PipelineRunRow)
                        .where(
                            PipelineRunRow.run_id == run_id,
                            PipelineRunRow.status.in_(_ACTIVE),
                        )
                        .values(status="FAILED", error=message, ended_at=now)
                    ).rowcount
                    if not done:
                        continue
                    for was, becomes, why in (
                        ("RUNNING", "FAILED", message),
                        ("PENDING", "SKIPPED", "the run died before this step started"),
                    ):
                        connection.execute(
                            update(PipelineStepRunRow)
                            .where(
                                PipelineStepRunRow.run_id == run_id,
                                PipelineStepRunRow.status == was,
                            )
                            .values(status=becomes, error=why, ended_at=now)
                        )

        self.db.retry(write)
        return [run_id for run_id, _ in stale]

    # -- step runs ------------------------------------------------------------------
    def update_step(self, run_id: str, step: str, values: Mapping[str, Any]) -> None:
        values = dict(values)
        for key in ("params", "inputs"):
            if key in values:
                values[key] = _json(values[key])
        if "outputs" in values:
            values["output_sha256"] = _blob(values["outputs"])
            if values["outputs"] is not None:
                values["outputs"] = _json(values["outputs"])
        links = values.pop("tracking_runs", None) or []
        statement = (
            update(PipelineStepRunRow)
            .where(PipelineStepRunRow.run_id == run_id, PipelineStepRunRow.step == step)
            .values(**values)
        )

        def write() -> None:
            with self.db.write() as connection:
                connection.execute(statement)
                if links:
                    step_run_id = connection.execute(
                        select(PipelineStepRunRow.step_run_id).where(
                            PipelineStepRunRow.run_id == run_id, PipelineStepRunRow.step == step
                        )
                    ).scalar_one()
                    insert = upsert(connection, PipelineRunLinkRow).on_conflict_do_nothing()
                    connection.execute(
                        insert, [{"tracking_run_id": t, "step_run_id": step_run_id} for t in links]
                    )

        self.db.retry(write)

    def cached(self, cache_key: str) -> StepRunRecord | None:
        """The newest successful execution with this cache key."""
        with self.db.read() as session:
            row = session.scalars(
                select(PipelineStepRunRow)
                .where(
                    PipelineStepRunRow.cache_key == cache_key,
                    PipelineStepRunRow.status == "SUCCEEDED",
                )
                .order_by(PipelineStepRunRow.step_run_id.desc())
                .limit(1)
            ).first()
            return None if row is None else _step(row)

    def step_for_tracking_run(self, tracking_run_id: str) -> StepRunRecord | None:
        """The step run inside which a tracking run was started, if any."""
        with self.db.read() as session:
            row = session.scalars(
                select(PipelineStepRunRow)
                .join(
                    PipelineRunLinkRow,
                    PipelineRunLinkRow.step_run_id == PipelineStepRunRow.step_run_id,
                )
                .where(PipelineRunLinkRow.tracking_run_id == tracking_run_id)
            ).first()
            return None if row is None else _step(row, [tracking_run_id])


def _step_values(values: Mapping[str, Any]) -> dict[str, Any]:
    row = {
        "cache_key": None,
        "code_hash": None,
        "cached_from": None,
        "attempts": 0,
        "outputs": None,
        "logs": None,
        "error": None,
        "traceback": None,
        "started_at": None,
        "ended_at": None,
        **values,
    }
    row["params"] = _json(row.get("params", {}))
    row["inputs"] = _json(row.get("inputs", {}))
    row["output_sha256"] = _blob(row["outputs"])
    if row["outputs"] is not None:
        row["outputs"] = _json(row["outputs"])
    return row


def _blob(descriptor: Mapping[str, Any] | None) -> str | None:
    """The artifact a step output descriptor stores (inline JSON values have none)."""
    if descriptor is None or descriptor.get("kind") == "json":
        return None
    return str(descriptor["sha256"])


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds")
