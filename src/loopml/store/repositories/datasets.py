"""Datasets, their immutable versions, contracts, run inputs and stored splits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from loopml._time import now_ms
from loopml.errors import NotFoundError, ValidationError
from loopml.store.database import Database
from loopml.store.models import (
    ContractRow,
    DatasetRow,
    DatasetVersionRow,
    RunInputRow,
    RunRow,
    SplitRow,
)
from loopml.store.repositories._util import upsert

__all__ = ["ContractRecord", "DatasetRepository", "VersionRecord"]


@dataclass(frozen=True)
class VersionRecord:
    """A stored dataset version (see ``loopml.data.DatasetVersion`` for the public view)."""

    version_id: int
    name: str
    version: int
    content_sha256: str
    blob_sha256: str
    rows: int
    columns: int
    schema: str
    source: str
    contract_id: int | None
    on_invalid: str
    report: str | None
    parent_version_id: int | None
    created_at: int
    created_by: str | None
    run_id: str | None


@dataclass(frozen=True)
class ContractRecord:
    contract_id: int
    name: str
    version: int
    sha256: str
    body: str
    created_at: int


class DatasetRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- datasets and versions --------------------------------------------------
    def dataset_id(self, name: str, create: bool = False) -> int | None:
        with self.db.read() as session:
            found = session.scalar(select(DatasetRow.dataset_id).where(DatasetRow.name == name))
        if found is not None or not create:
            return found

        def write() -> None:
            with self.db.write() as connection:
                stmt = upsert(connection, DatasetRow).values(name=name, created_at=now_ms())
                connection.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))

        self.db.retry(write)
        return self.dataset_id(name)

    def names(self) -> list[tuple[str, int, int | None]]:
        """Every dataset: name, number of versions, newest version number."""
        with self.db.read() as session:
            rows = session.execute(
                select(
                    DatasetRow.name,
                    func.count(DatasetVersionRow.version_id),
                    func.max(DatasetVersionRow.version),
                )
                .outerjoin(DatasetVersionRow, DatasetVersionRow.dataset_id == DatasetRow.dataset_id)
                .group_by(DatasetRow.name)
                .order_by(DatasetRow.name)
            )
            return [(str(n), int(c), v) for n, c, v in rows]

    def add_version(self, name: str, values: dict[str, Any]) -> tuple[VersionRecord, bool]:
        """Records a version; returns (record, created). Identical content returns the
        existing version instead of a new number."""
        dataset_id = self.dataset_id(name, create=True)
        assert dataset_id is not None
        for _ in range(20):
            existing = self._by_content(dataset_id, values["content_sha256"])
            if existing is not None:
                return existing, False
            scope = DatasetVersionRow.dataset_id == dataset_id
            if not self._insert_next(
                DatasetVersionRow, scope, {"dataset_id": dataset_id, **values}
            ):
                continue  # another writer took the number or stored the same content
            found = self._by_content(dataset_id, values["content_sha256"])
            assert found is not None
            return found, True
        raise ValidationError(f"Could not record a version of {name!r}; try again.")

    def _by_content(self, dataset_id: int, content_sha256: str) -> VersionRecord | None:
        with self.db.read() as session:
            row = session.execute(
                _version_query().where(
                    DatasetVersionRow.dataset_id == dataset_id,
                    DatasetVersionRow.content_sha256 == content_sha256,
                )
            ).first()
            return VersionRecord(*row) if row else None

    def version(
        self, name: str, number: int | None = None, prefix: str | None = None
    ) -> VersionRecord:
        """The newest version of ``name``, or version ``number``, or the one whose content
        hash starts with ``prefix``."""
        query = _version_query().where(DatasetRow.name == name)
        if number is not None:
            query = query.where(DatasetVersionRow.version == number)
        elif prefix is not None:
            query = query.where(DatasetVersionRow.content_sha256.startswith(prefix))
        query = query.order_by(DatasetVersionRow.version.desc()).limit(2)
        with self.db.read() as session:
            rows = session.execute(query).all()
        if not rows:
            known = [n for n, _, _ in self.names()]
            what = f"{name}@{number}" if number else f"{name}@{prefix}" if prefix else name
            hint = (
                f"`loopml data versions {name}` lists its versions"
                if name in known and (number or prefix)
                else f"known datasets: {', '.join(known[:10]) or 'none yet'}"
            )
            raise NotFoundError(f"No dataset version {what!r}; {hint}.")
        if prefix is not None and len(rows) > 1:
            raise ValidationError(
                f"More than one version of {name!r} has a hash starting with {prefix!r}; give "
                "more characters."
            )
        return VersionRecord(*rows[0])

    def version_by_id(self, version_id: int) -> VersionRecord:
        with self.db.read() as session:
            row = session.execute(
                _version_query().where(DatasetVersionRow.version_id == version_id)
            ).first()
        if row is None:
            raise NotFoundError(f"No dataset version with id {version_id}.")
        return VersionRecord(*row)

    def versions(self, name: str) -> list[VersionRecord]:
        with self.db.read() as session:
            rows = session.execute(
                _version_query().where(DatasetRow.name == name).order_by(DatasetVersionRow.version)
            ).all()
        return [VersionRecord(*row) for row in rows]

    def quarantine_of(self, version_id: int) -> VersionRecord | None:
        with self.db.read() as session:
            row = session.execute(
                _version_query().where(DatasetVersionRow.parent_version_id == version_id)
            ).first()
        return VersionRecord(*row) if row else None

    def _insert_next(self, model: Any, scope: Any, values: dict[str, Any]) -> bool:
        """Inserts ``values`` under the next version number within ``scope``; False when a
        concurrent writer took that number (or stored the same content) first."""
        try:
            with self.db.write() as connection:
                number = connection.scalar(
                    select(func.coalesce(func.max(model.version), 0)).where(scope)
                )
                connection.execute(
                    insert(model).values(
                        version=int(number or 0) + 1, created_at=now_ms(), **values
                    )
                )
        except IntegrityError:
            return False
        return True

    # -- contracts --------------------------------------------------------------
    def save_contract(self, name: str, sha256: str, body: str) -> ContractRecord:
        """Stores a contract version; the same body again returns the existing version."""
        for _ in range(20):
            with self.db.read() as session:
                row = session.scalars(
                    select(ContractRow).where(
                        ContractRow.name == name, ContractRow.sha256 == sha256
                    )
                ).first()
                if row is not None:
                    return _contract(row)
            values = {"name": name, "sha256": sha256, "body": body}
            self._insert_next(ContractRow, ContractRow.name == name, values)
        raise ValidationError(f"Could not store a contract for {name!r}; try again.")

    def contract(self, name: str, version: int | None = None) -> ContractRecord | None:
        query = select(ContractRow).where(ContractRow.name == name)
        if version is not None:
            query = query.where(ContractRow.version == version)
        with self.db.read() as session:
            row = session.scalars(query.order_by(ContractRow.version.desc())).first()
            return _contract(row) if row else None

    def contract_by_id(self, contract_id: int) -> ContractRecord:
        with self.db.read() as session:
            row = session.get(ContractRow, contract_id)
            if row is None:
                raise NotFoundError(f"No contract with id {contract_id}.")
            return _contract(row)

    # -- lineage ----------------------------------------------------------------
    def add_input(self, run_id: str, version_id: int, role: str) -> None:
        def write() -> None:
            with self.db.write() as connection:
                stmt = upsert(connection, RunInputRow).values(
                    run_id=run_id, version_id=version_id, role=role
                )
                connection.execute(stmt.on_conflict_do_nothing())

        self.db.retry(write)

    def inputs_of(self, run_id: str) -> list[tuple[VersionRecord, str]]:
        with self.db.read() as session:
            rows = session.execute(
                select(RunInputRow.version_id, RunInputRow.role).where(RunInputRow.run_id == run_id)
            ).all()
        return [(self.version_by_id(int(v)), str(role)) for v, role in rows]

    def runs_using(self, version_id: int) -> list[tuple[str, str]]:
        """(run id, role) of every live run that read the version."""
        with self.db.read() as session:
            rows = session.execute(
                select(RunInputRow.run_id, RunInputRow.role)
                .join(RunRow, RunRow.run_id == RunInputRow.run_id)
                .where(RunInputRow.version_id == version_id, RunRow.deleted_at.is_(None))
                .order_by(RunRow.start_time)
            ).all()
        return [(str(r), str(role)) for r, role in rows]

    # -- splits -----------------------------------------------------------------
    def split(self, version_id: int, definition_sha256: str) -> str | None:
        with self.db.read() as session:
            return session.scalar(
                select(SplitRow.assignment_sha256).where(
                    SplitRow.version_id == version_id,
                    SplitRow.definition_sha256 == definition_sha256,
                )
            )

    def save_split(
        self, version_id: int, definition: str, definition_sha256: str, assignment_sha256: str
    ) -> str:
        """Stores a split; when one with the same definition exists, returns its assignment."""

        def write() -> None:
            with self.db.write() as connection:
                stmt = upsert(connection, SplitRow).values(
                    version_id=version_id,
                    definition=definition,
                    definition_sha256=definition_sha256,
                    assignment_sha256=assignment_sha256,
                    created_at=now_ms(),
                )
                connection.execute(stmt.on_conflict_do_nothing())

        self.db.retry(write)
        stored = self.split(version_id, definition_sha256)
        assert stored is not None
        return stored


def _version_query() -> Any:
    return select(
        DatasetVersionRow.version_id,
        DatasetRow.name,
        DatasetVersionRow.version,
        DatasetVersionRow.content_sha256,
        DatasetVersionRow.blob_sha256,
        DatasetVersionRow.rows,
        DatasetVersionRow.columns,
        DatasetVersionRow.schema,
        DatasetVersionRow.source,
        DatasetVersionRow.contract_id,
        DatasetVersionRow.on_invalid,
        DatasetVersionRow.report,
        DatasetVersionRow.parent_version_id,
        DatasetVersionRow.created_at,
        DatasetVersionRow.created_by,
        DatasetVersionRow.run_id,
    ).join(DatasetRow, DatasetRow.dataset_id == DatasetVersionRow.dataset_id)


def _contract(row: ContractRow) -> ContractRecord:
    return ContractRecord(
        row.contract_id, row.name, row.version, row.sha256, row.body, row.created_at
    )
