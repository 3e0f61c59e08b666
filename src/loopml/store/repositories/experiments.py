"""Experiments: create, find, list, soft-delete and restore."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from loopml._time import now_ms
from loopml.errors import NotFoundError, ValidationError
from loopml.store.database import Database
from loopml.store.entities import Experiment
from loopml.store.models import ExperimentRow
from loopml.store.repositories._util import upsert

__all__ = ["ExperimentRepository"]


class ExperimentRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get_or_create(self, name: str) -> Experiment:
        """The live experiment called ``name``, created when missing (safe under races)."""
        _check_name(name)
        found = self.find(name)
        if found is not None:
            if found.deleted:
                raise ValidationError(
                    f"Experiment {name!r} is deleted. Restore it with "
                    f"`loopml experiments restore {name}` or pick another name."
                )
            return found

        def create() -> None:
            with self.db.write() as session:
                stmt = upsert(session, ExperimentRow).values(name=name, created_at=now_ms())
                session.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))

        self.db.retry(create)
        created = self.find(name)
        assert created is not None
        return created

    def find(self, name: str) -> Experiment | None:
        with self.db.read() as session:
            row = session.scalars(select(ExperimentRow).where(ExperimentRow.name == name)).first()
            return _to_entity(row) if row else None

    def get(self, name_or_id: str | int) -> Experiment:
        with self.db.read() as session:
            query = select(ExperimentRow)
            if isinstance(name_or_id, int) or str(name_or_id).isdigit():
                query = query.where(
                    (ExperimentRow.experiment_id == int(name_or_id))
                    | (ExperimentRow.name == str(name_or_id))
                )
            else:
                query = query.where(ExperimentRow.name == name_or_id)
            row = session.scalars(query).first()
            if row is None:
                raise NotFoundError(
                    f"No experiment {name_or_id!r}. `loopml experiments list` shows the "
                    "experiments of this workspace."
                )
            return _to_entity(row)

    def list(self, include_deleted: bool = False) -> list[Experiment]:
        with self.db.read() as session:
            query = select(ExperimentRow).order_by(ExperimentRow.experiment_id)
            if not include_deleted:
                query = query.where(ExperimentRow.deleted_at.is_(None))
            return [_to_entity(row) for row in session.scalars(query)]

    def set_deleted(self, experiment_id: int, deleted: bool) -> None:
        with self.db.write() as session:
            session.execute(
                update(ExperimentRow)
                .where(ExperimentRow.experiment_id == experiment_id)
                .values(deleted_at=now_ms() if deleted else None)
            )

    def rename(self, experiment_id: int, name: str) -> None:
        _check_name(name)
        try:
            with self.db.write() as session:
                session.execute(
                    update(ExperimentRow)
                    .where(ExperimentRow.experiment_id == experiment_id)
                    .values(name=name)
                )
        except IntegrityError:
            raise ValidationError(f"An experiment called {name!r} exists already.") from None


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name.strip() or len(name) > 256:
        raise ValidationError(
            f"Experiment names are non-empty strings of at most 256 characters, got {name!r}."
        )


def _to_entity(row: ExperimentRow) -> Experiment:
    return Experiment(
        experiment_id=row.experiment_id,
        name=row.name,
        description=row.description,
        created_at=row.created_at,
        deleted=row.deleted_at is not None,
    )
