"""Opens the metadata database, brings its schema to the current revision, hands out sessions.

SQLite runs in WAL mode with a busy timeout, and write transactions start with
``BEGIN IMMEDIATE``: a deferred transaction that later wants to write can fail at
once with "database is locked" (SQLite refuses to wait to avoid a deadlock), while
an immediate one waits its turn. Reads stay deferred so they never block writers.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from loopml.errors import ConfigError, SchemaVersionError
from loopml.store.migrations import HEAD

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["Database"]

_MIGRATIONS = Path(__file__).parent / "migrations"
_BUSY_TIMEOUT_MS = 60_000
T = TypeVar("T")


class Database:
    """The metadata store's connection: one engine, migrations, and session factories.

    Args:
        url: SQLAlchemy URL (``sqlite:///path`` or ``postgresql+psycopg://...``).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise ConfigError(
                f"{url!r} is not a database URL; use sqlite:///path/to/loopml.db or "
                "postgresql+psycopg://user@host/db."
            ) from None
        self.dialect = parsed.get_backend_name()
        self.engine = self._create_engine(url)
        self._write_engine = self.engine.execution_options(loopml_write=True)
        self._reads = sessionmaker(self.engine, expire_on_commit=False)

    def _create_engine(self, url: str) -> Engine:
        connect_args: dict[str, Any] = {}
        if self.dialect == "sqlite":
            connect_args = {"timeout": _BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
        try:
            engine = create_engine(url, connect_args=connect_args, pool_pre_ping=True)
        except ModuleNotFoundError as error:
            raise ConfigError(
                f"The driver for {self.dialect} is not installed ({error.name}); "
                "run: pip install 'loopml[postgres]'."
            ) from None
        if self.dialect == "sqlite":
            _configure_sqlite(engine)
        return engine

    def upgrade(self) -> None:
        """Creates or upgrades the schema with Alembic; refuses a newer schema.

        A database already at ``HEAD`` costs one query: Alembic (a fifth of a second to
        import) is loaded only when there is something to migrate.
        """
        try:
            current = self.revision()
        except OperationalError as error:
            raise ConfigError(
                f"Cannot open the metadata database {self.safe_url()}: {error.orig}. "
                "Check LOOPML_DB_URL, that the server runs and that the folder is writable."
            ) from None
        if current == HEAD:
            return
        from alembic import command
        from alembic.script import ScriptDirectory

        script = ScriptDirectory.from_config(self._alembic_config())
        if current is not None and current not in {rev.revision for rev in script.walk_revisions()}:
            raise SchemaVersionError(
                f"The workspace database {self.safe_url()} has schema revision {current!r}, "
                "written by a newer loopml than this one. Upgrade loopml "
                "(pip install -U loopml); nothing was changed."
            )
        # The write lock (or an advisory lock) makes concurrent first opens take turns;
        # Alembic re-reads the revision under it, so the later ones find nothing to do.
        with self._write_engine.begin() as connection:
            if self.dialect == "postgresql":
                connection.exec_driver_sql("SELECT pg_advisory_xact_lock(727001)")
            config = self._alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def exists(self) -> bool:
        """Whether the database holds a loopml schema (never creates a SQLite file)."""
        if self.dialect == "sqlite":
            database = make_url(self.url).database
            if database and database != ":memory:" and not Path(database).exists():
                return False
        try:
            return self.revision() is not None
        except OperationalError:
            return False

    def revision(self) -> str | None:
        """The schema revision the database is at (None for an empty database)."""
        with self.engine.connect() as connection:
            if not connection.dialect.has_table(connection, "alembic_version"):
                return None
            found = connection.exec_driver_sql("SELECT version_num FROM alembic_version")
            return found.scalar()

    def _alembic_config(self) -> Config:
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        return config

    def safe_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A connection in a write transaction, committed on success, rolled back on error.

        Writes use Core statements on a plain connection: the ORM unit of work would
        only add overhead to the inserts and updates that tracking does in bulk.
        """
        with self._write_engine.begin() as connection:
            yield connection

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reads."""
        with self._reads() as session:
            yield session

    def retry(self, operation: Callable[[], T], attempts: int = 8) -> T:
        """Runs ``operation`` again when the database reports a transient lock or conflict."""
        for attempt in range(attempts):
            try:
                return operation()
            except OperationalError as error:
                if attempt == attempts - 1 or not _is_transient(error):
                    raise
                time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        self.engine.dispose()


def _is_transient(error: OperationalError) -> bool:
    text = str(error.orig).lower()
    return "locked" in text or "busy" in text or "deadlock" in text


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get("loopml_write"):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")
