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
