"""Alembic migrations of the metadata store."""

# The newest revision; a test checks it matches the migration scripts' head.
HEAD = "0011"
