"""Registered models, their versions and files, aliases, alias events and approvals.

Every change of a model's versions or aliases happens in one write transaction that
first locks the model's row (``FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE``
already serializes writers), so two processes moving the same alias take turns and the
event history always agrees with where the alias points.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError

from loopml._time import now_ms
from loopml.errors import ConflictError, NotFoundError
from loopml.store.database import Database
from loopml.store.models import (
    AliasEventRow,
    ApprovalRow,
    ModelAliasRow,
    ModelVersionFileRow,
    ModelVersionRow,
    ModelVersionTagRow,
    RegisteredModelRow,
    RegisteredModelTagRow,
    RunArtifactRow,
)
from loopml.store.repositories._util import upsert

__all__ = [
    "AliasEventRecord",
    "ApprovalRecord",
    "ModelRecord",
    "ModelVersionRecord",
    "RegistryRepository",
]


@dataclass(frozen=True)
class ModelRecord:
    model_id: int
    name: str
    description: str | None
    created_at: int
    created_by: str | None
    updated_at: int


@dataclass(frozen=True)
class ModelVersionRecord:
    version_id: int
    model_id: int
    name: str
    version: int
    run_id: str
    model_path: str
    manifest_sha256: str
    flavor: str
    source: str
    description: str | None
    parent_version_id: int | None
    created_at: int
    created_by: str | None
    deleted_at: int | None


@dataclass(frozen=True)
class AliasEventRecord:
    event_id: int
    name: str
    alias: str
    action: str
    from_version: int | None
    to_version: int | None
    user: str | None
    created_at: int
    reason: str | None
    forced: bool
    gate_id: str | None
    approvals: list[str]


@dataclass(frozen=True)
class ApprovalRecord:
    version_id: int
    alias: str
    user: str
    created_at: int
    comment: str | None


# Decides, inside the alias move's transaction, whether the move may happen; returns the
# gate id and the approving users it relied on (or raises to refuse).
MoveCheck = Callable[
    [Connection, ModelVersionRecord, "ModelVersionRecord | None"],
    tuple[str | None, list[str]],
]

_VERSION_COLUMNS = (
    ModelVersionRow.version_id,
    ModelVersionRow.model_id,
    RegisteredModelRow.name,
    ModelVersionRow.version,
    ModelVersionRow.run_id,
    ModelVersionRow.model_path,
    ModelVersionRow.manifest_sha256,
    ModelVersionRow.flavor,
    ModelVersionRow.source,
    ModelVersionRow.description,
    ModelVersionRow.parent_version_id,
    ModelVersionRow.created_at,
    ModelVersionRow.created_by,
    ModelVersionRow.deleted_at,
)
_VERSIONS = select(*_VERSION_COLUMNS).join(
    RegisteredModelRow, RegisteredModelRow.model_id == ModelVersionRow.model_id
)


_ALIASED = _VERSIONS.join(
    ModelAliasRow, ModelAliasRow.version_id == ModelVersionRow.version_id
).where(RegisteredModelRow.name == bindparam("name"), ModelAliasRow.alias == bindparam("alias"))


class RegistryRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- models -----------------------------------------------------------------
    def models(self) -> list[ModelRecord]:
        with self.db.read() as session:
            rows = session.scalars(select(RegisteredModelRow).order_by(RegisteredModelRow.name))
            return [_model(row) for row in rows]

    def model(self, name: str) -> ModelRecord:
        with self.db.read() as session:
            row = session.scalar(select(RegisteredModelRow).where(RegisteredModelRow.name == name))
            if row is None:
                raise NotFoundError(_no_model(name, self._names(session)))
            return _model(row)

    def _names(self, session: Any) -> list[str]:
        return list(session.scalars(select(RegisteredModelRow.name).order_by("name").limit(10)))

    def set_model_description(self, name: str, description: str | None) -> None:
        def write() -> None:
            with self.db.write() as connection:
                model_id = _lock_model(connection, name)
                connection.execute(
                    update(RegisteredModelRow)
                    .where(RegisteredModelRow.model_id == model_id)
                    .values(description=description, updated_at=now_ms())
                )

        self.db.retry(write)

    def model_tags(self, model_id: int) -> dict[str, str]:
        return self._tags(RegisteredModelTagRow, RegisteredModelTagRow.model_id, model_id)

    def _tags(self, table: Any, owner_column: Any, owner: int) -> dict[str, str]:
        with self.db.read() as session:
            rows = session.execute(select(table.key, table.value).where(owner_column == owner))
            return {str(k): str(v) for k, v in rows}

    def set_model_tags(self, name: str, tags: Mapping[str, str]) -> None:
        def write() -> None:
            with self.db.write() as connection:
                model_id = _lock_model(connection, name)
                _upsert_tags(connection, RegisteredModelTagRow, "model_id", model_id, tags)

        self.db.retry(write)

    # -- versions ---------------------------------------------------------------
    def register(
        self,
        name: str,
        run_id: str,
        model_path: str,
        values: Mapping[str, Any],
        tags: Mapping[str, str],
        user: str | None,
    ) -> tuple[ModelVersionRecord, bool]:
        """Adds the next version of ``name`` (creating the model) for the bundle a run
        stored under ``model_path``; the same run and path again give the stored version.

        ``values`` holds the version's other columns (manifest_sha256, flavor, source,
        description, parent_version_id). Returns the version and whether it is new.
        """

        def write() -> tuple[int, bool]:
            with self.db.write() as connection:
                now = now_ms()
                connection.execute(
                    upsert(connection, RegisteredModelRow)
                    .values(name=name, created_at=now, created_by=user, updated_at=now)
                    .on_conflict_do_nothing(index_elements=["name"])
                )
                model_id = _lock_model(connection, name)
                found = connection.scalar(
                    select(ModelVersionRow.version_id).where(
                        ModelVersionRow.model_id == model_id,
                        ModelVersionRow.run_id == run_id,
                        ModelVersionRow.model_path == model_path,
                    )
                )
                if found is not None:
                    return int(found), False
                number = 1 + (
                    connection.scalar(
                        select(func.max(ModelVersionRow.version)).where(
                            ModelVersionRow.model_id == model_id
                        )
                    )
                    or 0
                )
                version_id = connection.execute(
                    insert(ModelVersionRow)
                    .values(
                        model_id=model_id,
                        version=number,
                        run_id=run_id,
                        model_path=model_path,
                        created_at=now,
                        created_by=user,
                        **values,
                    )
                    .returning(ModelVersionRow.version_id)
                ).scalar_one()
                # The version's files are its own references to the run's blobs: no bytes move.
                prefix = f"{model_path}/"
                relative = func.substr(RunArtifactRow.path, len(prefix) + 1)
                connection.execute(
                    insert(ModelVersionFileRow).from_select(
                        ["version_id", "path", "sha256", "size"],
                        select(
                            literal(version_id),
                            relative,
                            RunArtifactRow.sha256,
                            RunArtifactRow.size,
                        ).where(
                            RunArtifactRow.run_id == run_id,
                            RunArtifactRow.path.startswith(prefix, autoescape=True),
                        ),
                    )
                )
                _upsert_tags(connection, ModelVersionTagRow, "version_id", version_id, tags)
                connection.execute(
                    update(RegisteredModelRow)
                    .where(RegisteredModelRow.model_id == model_id)
                    .values(updated_at=now)
                )
                return int(version_id), True

        try:
            version_id, created = self.db.retry(write)
        except IntegrityError:  # another process registered the same run first
            version_id, created = self.db.retry(write)
        return self.version_by_id(version_id), created

    def version_by_id(self, version_id: int) -> ModelVersionRecord:
        with self.db.read() as session:
            row = session.execute(
                _VERSIONS.where(ModelVersionRow.version_id == version_id)
            ).one_or_none()
        if row is None:
            raise NotFoundError(f"No model version with id {version_id}.")
        return _record(row)

    def version(self, name: str, number: int) -> ModelVersionRecord | None:
        with self.db.read() as session:
            row = session.execute(
                _VERSIONS.where(RegisteredModelRow.name == name, ModelVersionRow.version == number)
            ).one_or_none()
        return _record(row) if row is not None else None

    def aliased(self, name: str, alias: str) -> ModelVersionRecord | None:
        """The version ``alias`` points to: the warm path of serving and of every
        ``models:/name@alias``, so one prepared Core statement, no ORM session."""
        with self.db.engine.connect() as connection:
            row = connection.execute(_ALIASED, {"name": name, "alias": alias}).one_or_none()
        return _record(row) if row is not None else None

    def latest(self, name: str) -> ModelVersionRecord | None:
        with self.db.read() as session:
            row = session.execute(
                _VERSIONS.where(
                    RegisteredModelRow.name == name, ModelVersionRow.deleted_at.is_(None)
                )
                .order_by(ModelVersionRow.version.desc())
                .limit(1)
            ).one_or_none()
        return _record(row) if row is not None else None

    def versions(self, name: str, include_deleted: bool = False) -> list[ModelVersionRecord]:
        query = _VERSIONS.where(RegisteredModelRow.name == name)
        if not include_deleted:
            query = query.where(ModelVersionRow.deleted_at.is_(None))
        with self.db.read() as session:
            rows = session.execute(query.order_by(ModelVersionRow.version))
            return [_record(row) for row in rows]

    def versions_of_run(self, run_ids: Sequence[str]) -> list[ModelVersionRecord]:
        """Live versions registered from any of ``run_ids``."""
        with self.db.read() as session:
            rows = session.execute(
                _VERSIONS.where(
                    ModelVersionRow.run_id.in_(list(run_ids)), ModelVersionRow.deleted_at.is_(None)
                )
            )
            return [_record(row) for row in rows]

    def files(self, version_id: int) -> list[tuple[str, str, int]]:
        """A version's bundle files: (relative path, sha256, size)."""
        with self.db.read() as session:
            rows = session.execute(
                select(
                    ModelVersionFileRow.path, ModelVersionFileRow.sha256, ModelVersionFileRow.size
                )
                .where(ModelVersionFileRow.version_id == version_id)
                .order_by(ModelVersionFileRow.path)
            )
            return [(str(p), str(s), int(n)) for p, s, n in rows]

    def add_files(self, version_id: int, files: Sequence[tuple[str, str, int]]) -> None:
        """Adds (or replaces) files of a version beside its bundle, such as exports."""
        if not files:
            return

        def write() -> None:
            with self.db.write() as connection:
                stmt = upsert(connection, ModelVersionFileRow)
                connection.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["version_id", "path"],
                        set_={"sha256": stmt.excluded.sha256, "size": stmt.excluded.size},
                    ),
                    [
                        {"version_id": version_id, "path": p, "sha256": s, "size": n}
                        for p, s, n in files
                    ],
                )

        self.db.retry(write)

    def version_tags(self, version_id: int) -> dict[str, str]:
        return self._tags(ModelVersionTagRow, ModelVersionTagRow.version_id, version_id)

    def set_version_tags(self, version_id: int, tags: Mapping[str, str]) -> None:
        def write() -> None:
            with self.db.write() as connection:
                _upsert_tags(connection, ModelVersionTagRow, "version_id", version_id, tags)

        self.db.retry(write)

    def set_version_description(self, version_id: int, description: str | None) -> None:
        def write() -> None:
            with self.db.write() as connection:
                connection.execute(
                    update(ModelVersionRow)
                    .where(ModelVersionRow.version_id == version_id)
                    .values(description=description)
                )

        self.db.retry(write)

    def delete_version(self, name: str, number: int) -> None:
        """Soft-deletes a version (gc frees its files); refused while an alias names it."""

        def write() -> None:
            with self.db.write() as connection:
                model_id = _lock_model(connection, name)
                row = connection.execute(
                    select(ModelVersionRow.version_id, ModelVersionRow.deleted_at).where(
                        ModelVersionRow.model_id == model_id, ModelVersionRow.version == number
                    )
                ).one_or_none()
                if row is None or row.deleted_at is not None:
                    raise NotFoundError(f"Model {name!r} has no version {number}.")
                aliases = list(
                    connection.scalars(
                        select(ModelAliasRow.alias).where(
                            ModelAliasRow.version_id == row.version_id
                        )
                    )
                )
                if aliases:
                    raise ConflictError(
                        f"Version {number} of {name!r} holds the alias(es) "
                        f"{', '.join(sorted(aliases))}; move them first (`loopml models promote "
                        f"{name} <other version> --alias {sorted(aliases)[0]}` or rollback), "
                        "then delete it."
                    )
                connection.execute(
                    update(ModelVersionRow)
                    .where(ModelVersionRow.version_id == row.version_id)
                    .values(deleted_at=now_ms())
                )

        self.db.retry(write)

    # -- aliases ----------------------------------------------------------------
    def aliases(self, model_id: int) -> dict[str, int]:
        """alias -> version number, for one model."""
        with self.db.read() as session:
            rows = session.execute(
                select(ModelAliasRow.alias, ModelVersionRow.version)
                .join(ModelVersionRow, ModelVersionRow.version_id == ModelAliasRow.version_id)
                .where(ModelAliasRow.model_id == model_id)
                .order_by(ModelAliasRow.alias)
            )
            return {str(a): int(v) for a, v in rows}

    def move_alias(
        self,
        name: str,
        alias: str,
        target: int | Callable[[list[AliasEventRecord]], int] | None,
        *,
        action: str,
        user: str | None,
        reason: str | None,
        forced: bool,
        check: MoveCheck | None,
    ) -> AliasEventRecord | None:
        """Points ``alias`` at a version (None removes it) and records the event.

        ``target`` is a version number, or a function of the alias's event history that
        picks one (rollback), evaluated under the lock. ``check`` may refuse the move.
        Returns None when the alias already points at the target (nothing to record).
        """

        def write() -> AliasEventRecord | None:
            with self.db.write() as connection:
                model_id = _lock_model(connection, name)
                current_row = connection.execute(
                    _VERSIONS.join(
                        ModelAliasRow, ModelAliasRow.version_id == ModelVersionRow.version_id
                    ).where(ModelAliasRow.model_id == model_id, ModelAliasRow.alias == alias)
                ).one_or_none()
                current = _record(current_row) if current_row is not None else None
                number = (
                    target(_events(connection, model_id, name, alias))
                    if callable(target)
                    else target
                )
                if number is None:
                    if current is None:
                        raise NotFoundError(f"Model {name!r} has no alias {alias!r}.")
                    connection.execute(
                        delete(ModelAliasRow).where(
                            ModelAliasRow.model_id == model_id, ModelAliasRow.alias == alias
                        )
                    )
                    gate_id, approvers = None, list[str]()
                else:
                    row = connection.execute(
                        _VERSIONS.where(
                            ModelVersionRow.model_id == model_id, ModelVersionRow.version == number
                        )
                    ).one_or_none()
                    if row is None or row.deleted_at is not None:
                        raise NotFoundError(_no_version(name, number, connection, model_id))
                    candidate = _record(row)
                    if current is not None and current.version_id == candidate.version_id:
                        return None
                    gate_id, approvers = (
                        check(connection, candidate, current) if check else (None, [])
                    )
                    values = {"version_id": candidate.version_id, "updated_at": now_ms()}
                    stmt = upsert(connection, ModelAliasRow).values(
                        model_id=model_id, alias=alias, **values
                    )
                    connection.execute(
                        stmt.on_conflict_do_update(
                            index_elements=["model_id", "alias"], set_=values
                        )
                    )
                event_id = connection.execute(
                    insert(AliasEventRow)
                    .values(
                        model_id=model_id,
                        alias=alias,
                        action=action,
                        from_version=current.version if current else None,
                        to_version=number,
                        user=user,
                        created_at=now_ms(),
                        reason=reason,
                        forced=forced,
                        gate_id=gate_id,
                        approvals=json.dumps(approvers) if approvers else None,
                    )
                    .returning(AliasEventRow.event_id)
                ).scalar_one()
                return _events(connection, model_id, name, alias, event_id)[-1]

        return self.db.retry(write)

    def add_event(
        self,
        name: str,
        alias: str,
        action: str,
        from_version: int | None,
        to_version: int | None,
        user: str | None,
        reason: str | None,
    ) -> AliasEventRecord:
        """Records an event that does not move the alias (a canary step, an A/B decision)."""

        def write() -> AliasEventRecord:
            with self.db.write() as connection:
                model_id = _lock_model(connection, name)
                event_id = connection.execute(
                    insert(AliasEventRow)
                    .values(
                        model_id=model_id,
                        alias=alias,
                        action=action,
                        from_version=from_version,
                        to_version=to_version,
                        user=user,
                        created_at=now_ms(),
                        reason=reason,
                        forced=False,
                    )
                    .returning(AliasEventRow.event_id)
                ).scalar_one()
                return _events(connection, model_id, name, alias, event_id)[-1]

        return self.db.retry(write)

    def events(self, name: str, alias: str | None = None) -> list[AliasEventRecord]:
        """The alias moves of a model (of one alias), oldest first."""
        with self.db.read() as session:
            connection = session.connection()
            model_id = connection.scalar(
                select(RegisteredModelRow.model_id).where(RegisteredModelRow.name == name)
            )
            if model_id is None:
                raise NotFoundError(_no_model(name, []))
            return _events(connection, model_id, name, alias)

    # -- approvals --------------------------------------------------------------
    def approve(self, version_id: int, alias: str, user: str, comment: str | None) -> bool:
        """Records ``user``'s approval; False when that user had approved already."""

        def write() -> bool:
            with self.db.write() as connection:
                stmt = upsert(connection, ApprovalRow).values(
                    version_id=version_id,
                    alias=alias,
                    user=user,
                    created_at=now_ms(),
                    comment=comment,
                )
                result = connection.execute(
                    stmt.on_conflict_do_nothing(index_elements=["version_id", "alias", "user"])
                )
                return bool(result.rowcount)

        return self.db.retry(write)

    def approvals(self, version_id: int, alias: str) -> list[ApprovalRecord]:
        with self.db.read() as session:
            rows = session.execute(
                select(
                    ApprovalRow.version_id,
                    ApprovalRow.alias,
                    ApprovalRow.user,
                    ApprovalRow.created_at,
                    ApprovalRow.comment,
                )
                .where(ApprovalRow.version_id == version_id, ApprovalRow.alias == alias)
                .order_by(ApprovalRow.created_at)
            )
            return [ApprovalRecord(*row) for row in rows]


def approving_users(connection: Connection, version_id: int, alias: str) -> list[str]:
    """Distinct users who approved a version for an alias (inside a move's transaction)."""
    rows = connection.scalars(
        select(ApprovalRow.user)
        .where(ApprovalRow.version_id == version_id, ApprovalRow.alias == alias)
        .order_by(ApprovalRow.created_at)
    )
    return list(dict.fromkeys(str(u) for u in rows))


def _lock_model(connection: Connection, name: str) -> int:
    model_id = connection.scalar(
        select(RegisteredModelRow.model_id).where(RegisteredModelRow.name == name).with_for_update()
    )
    if model_id is None:
        raise NotFoundError(_no_model(name, []))
    return int(model_id)


def _events(
    connection: Connection,
    model_id: int,
    name: str,
    alias: str | None,
    event_id: int | None = None,
) -> list[AliasEventRecord]:
    query = select(
        AliasEventRow.event_id,
        AliasEventRow.alias,
        AliasEventRow.action,
        AliasEventRow.from_version,
        AliasEventRow.to_version,
        AliasEventRow.user,
        AliasEventRow.created_at,
        AliasEventRow.reason,
        AliasEventRow.forced,
        AliasEventRow.gate_id,
        AliasEventRow.approvals,
    ).where(AliasEventRow.model_id == model_id)
    if alias is not None:
        query = query.where(AliasEventRow.alias == alias)
    if event_id is not None:
        query = query.where(AliasEventRow.event_id == event_id)
    return [
        AliasEventRecord(
            event_id=row.event_id,
            name=name,
            alias=row.alias,
            action=row.action,
            from_version=row.from_version,
            to_version=row.to_version,
            user=row.user,
            created_at=row.created_at,
            reason=row.reason,
            forced=bool(row.forced),
            gate_id=row.gate_id,
            approvals=json.loads(row.approvals) if row.approvals else [],
        )
        for row in connection.execute(query.order_by(AliasEventRow.event_id))
    ]


def _upsert_tags(
    connection: Connection, table: Any, id_column: str, owner: int, tags: Mapping[str, str]
) -> None:
    if not tags:
        return
    stmt = upsert(connection, table)
    connection.execute(
        stmt.on_conflict_do_update(
            index_elements=[id_column, "key"], set_={"value": stmt.excluded.value}
        ),
        [{id_column: owner, "key": k, "value": v} for k, v in tags.items()],
    )


def _record(row: Any) -> ModelVersionRecord:
    return ModelVersionRecord(**row._asdict())


def _model(row: RegisteredModelRow) -> ModelRecord:
    return ModelRecord(
        row.model_id, row.name, row.description, row.created_at, row.created_by, row.updated_at
    )


def _no_model(name: str, known: list[str]) -> str:
    hint = f" Registered models: {', '.join(known)}." if known else ""
    return (
        f"No registered model {name!r}.{hint} `loopml models list` shows them; "
        "ws.registry.register(run, name=...) creates one."
    )


def _no_version(name: str, number: int, connection: Connection, model_id: int) -> str:
    numbers = list(
        connection.scalars(
            select(ModelVersionRow.version)
            .where(ModelVersionRow.model_id == model_id, ModelVersionRow.deleted_at.is_(None))
            .order_by(ModelVersionRow.version)
        )
    )
    have = f"it has versions {_ranges(numbers)}" if numbers else "it has no versions"
    return (
        f"Model {name!r} has no version {number} ({have}); `loopml models show {name}` lists them."
    )


def _ranges(numbers: list[int]) -> str:
    if len(numbers) > 6:
        return f"{numbers[0]}-{numbers[-1]}"
    return ", ".join(str(n) for n in numbers)
