"""Alembic environment: runs on the connection that ``Database.upgrade`` hands over."""

from __future__ import annotations

from alembic import context

from loopml.store.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
context.run_migrations()
