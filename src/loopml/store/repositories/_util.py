"""Helpers shared by the repositories."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite


def upsert(connection: Connection, table: Any) -> Any:
    """An INSERT that supports ``on_conflict_do_update``/``nothing`` on this dialect."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(
        f"loopml's metadata store supports SQLite and PostgreSQL, not {dialect}"
    )


def insert_new(connection: Connection, table: Any, values: Any, unique: str, key: Any) -> Any:
    """Inserts ``values`` unless a row with the same ``unique`` value exists; returns the
    new row's ``key``, or None when one existed. RETURNING, not rowcount: psycopg reports
    -1 for an INSERT that returns."""
    stmt = upsert(connection, table).on_conflict_do_nothing(index_elements=[unique]).returning(key)
    return connection.execute(stmt, values).scalar_one_or_none()
