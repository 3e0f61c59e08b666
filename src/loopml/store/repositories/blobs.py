"""Blob rows (one per stored content hash), run artifact links, and what gc may collect.

A blob is referenced by every column listed in ``BLOB_REFERENCES``; later layers add
theirs there. Its reference count is the number of rows naming it, counted by query at
collection time, so the count can never drift from the rows themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, delete, exists, func, select

from loopml._time import now_ms
from loopml.store.database import Database
from loopml.store.entities import ArtifactInfo
from loopml.store.models import (
    BlobRow,
    DatasetVersionRow,
    ExperimentRow,
    ModelVersionFileRow,
    ModelVersionRow,
    PipelineStepRunRow,
    PredictionFileRow,
    RunArtifactRow,
    RunRow,
    SplitRow,
)
from loopml.store.repositories._util import upsert

__all__ = ["BLOB_REFERENCES", "BlobRepository", "GcPlan"]

BLOB_REFERENCES: list[ColumnElement[Any]] = [
    RunArtifactRow.__table__.c.sha256,
    RunRow.__table__.c.git_diff_sha256,
    DatasetVersionRow.__table__.c.blob_sha256,
    SplitRow.__table__.c.assignment_sha256,
    ModelVersionFileRow.__table__.c.sha256,
    ModelVersionRow.__table__.c.manifest_sha256,
    PredictionFileRow.__table__.c.sha256,
    PredictionFileRow.__table__.c.inputs_sha256,
    PipelineStepRunRow.__table__.c.output_sha256,
]


class BlobRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def touch(self, blobs: Sequence[tuple[str, int]]) -> None:
        """Records stored content hashes (or refreshes their touch time)."""
        if not blobs:
            return
        now = now_ms()

        def write() -> None:
            with self.db.write() as session:
                _touch(session, blobs, now)

        self.db.retry(write)

    def link_run_artifacts(self, run_id: str, artifacts: Sequence[ArtifactInfo]) -> None:
        """Registers the blobs and points run paths at them (a path logged again is replaced)."""
        now = now_ms()

        def write() -> None:
            with self.db.write() as session:
                _touch(session, [(a.sha256, a.size) for a in artifacts], now)
                stmt = upsert(session, RunArtifactRow)
                session.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["run_id", "path"],
                        set_={"sha256": stmt.excluded.sha256, "size": stmt.excluded.size},
                    ),
                    [
                        {"run_id": run_id, "path": a.path, "sha256": a.sha256, "size": a.size}
                        for a in artifacts
                    ],
                )

        self.db.retry(write)

    def run_artifacts(self, run_id: str, prefix: str = "") -> list[ArtifactInfo]:
        with self.db.read() as session:
            query = select(RunArtifactRow).where(RunArtifactRow.run_id == run_id)
            if prefix:
                query = query.where(
                    (RunArtifactRow.path == prefix)
                    | RunArtifactRow.path.startswith(prefix.rstrip("/") + "/", autoescape=True)
                )
            rows = session.scalars(query.order_by(RunArtifactRow.path))
            return [ArtifactInfo(row.path, row.sha256, row.size) for row in rows]

    def reference_count(self, sha256: str) -> int:
        with self.db.read() as session:
            return sum(
                session.scalar(select(func.count()).where(column == sha256)) or 0
                for column in BLOB_REFERENCES
            )

    def known(self, sha256s: Sequence[str]) -> set[str]:
        with self.db.read() as session:
            return set(session.scalars(select(BlobRow.sha256).where(BlobRow.sha256.in_(sha256s))))

    # -- garbage collection ---------------------------------------------------
    def collect(self, older_than_ms: int, dry_run: bool = False) -> GcPlan:
        """Removes soft-deleted model versions, runs and experiments, then the blob rows
        nothing references. Runs that a live model version comes from stay (with their
        experiments), deleted or not: a version's lineage starts at its run.

        Blobs touched after ``older_than_ms`` are spared, so content that a writer is
        storing right now is never taken away. It all happens in one transaction, which
        a dry run rolls back: the plan it returns is exactly what a real run would do.
        The caller removes the returned objects from the artifact store.
        """
        with self.db.write() as connection:
            transaction = connection.get_transaction()
            versions = connection.execute(
                delete(ModelVersionRow).where(ModelVersionRow.deleted_at.is_not(None))
            ).rowcount
            doomed_experiments = select(ExperimentRow.experiment_id).where(
                ExperimentRow.deleted_at.is_not(None)
            )
            runs = connection.execute(
                delete(RunRow).where(
                    RunRow.deleted_at.is_not(None) | RunRow.experiment_id.in_(doomed_experiments),
                    ~exists().where(ModelVersionRow.run_id == RunRow.run_id),
                )
            ).rowcount
            experiments = connection.execute(
                delete(ExperimentRow).where(
                    ExperimentRow.deleted_at.is_not(None),
                    ~exists().where(RunRow.experiment_id == ExperimentRow.experiment_id),
                )
            ).rowcount
            unreferenced = [~exists().where(column == BlobRow.sha256) for column in BLOB_REFERENCES]
            blobs = [
                (str(sha), int(size))
                for sha, size in connection.execute(
                    select(BlobRow.sha256, BlobRow.size).where(
                        BlobRow.touched_at < older_than_ms, *unreferenced
                    )
                )
            ]
            for start in range(0, len(blobs), 500):
                chunk = [sha for sha, _ in blobs[start : start + 500]]
                connection.execute(delete(BlobRow).where(BlobRow.sha256.in_(chunk)))
            if dry_run and transaction is not None:
                transaction.rollback()
        return GcPlan(int(versions or 0), int(runs or 0), int(experiments or 0), blobs)


@dataclass(frozen=True)
class GcPlan:
    model_versions: int
    runs: int
    experiments: int
    blobs: list[tuple[str, int]]


def _touch(session: Connection, blobs: Sequence[tuple[str, int]], now: int) -> None:
    stmt = upsert(session, BlobRow)
    unique = {sha: size for sha, size in blobs}
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["sha256"], set_={"touched_at": stmt.excluded.touched_at}
        ),
        [
            {"sha256": sha, "size": size, "created_at": now, "touched_at": now}
            for sha, size in sorted(unique.items())
        ],
    )
