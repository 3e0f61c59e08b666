"""The metadata database: migrations, schema versions, SQLite settings, bad configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

import loopml
from loopml.store import Database
from loopml.store.models import Base


def _head(db: Database) -> str:
    return ScriptDirectory.from_config(db._alembic_config()).get_current_head() or ""


def test_open_creates_the_schema_by_migration(workspace: loopml.Workspace) -> None:
    assert workspace.db.revision() == _head(workspace.db)
    tables = set(inspect(workspace.db.engine).get_table_names())
    assert {"alembic_version", "experiments", "runs", "metrics", "latest_metrics"} <= tables


def test_head_constant_is_the_newest_migration(workspace: loopml.Workspace) -> None:
    from loopml.store.migrations import HEAD

    assert _head(workspace.db) == HEAD


def test_migrated_schema_matches_the_models(workspace: loopml.Workspace) -> None:
    with workspace.db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_every_older_revision_upgrades_to_head(tmp_path: Path, db_url: str) -> None:
    db = Database(db_url)
    script = ScriptDirectory.from_config(db._alembic_config())
    revisions = [rev.revision for rev in script.walk_revisions()][::-1]
    for revision in [None, *revisions[:-1]]:
        fresh = Database(db_url)
        with fresh.engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
            for table in reversed(Base.metadata.sorted_tables):
                connection.exec_driver_sql(f"DROP TABLE IF EXISTS {table.name}")
            if revision is not None:
                config = fresh._alembic_config()
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
        ws = loopml.Workspace.open(tmp_path / f"home-{revision}", db_url=db_url)
        assert ws.db.revision() == _head(ws.db)
        ws.close()
        fresh.dispose()


def test_a_newer_schema_is_refused_and_nothing_is_lost(tmp_path: Path, db_url: str) -> None:
    ws = loopml.Workspace.open(tmp_path / "home", db_url=db_url)
    with ws.start_run(experiment="keep") as run:
        run.log_param("kept", "yes")
    ws.close()
    db = Database(db_url)
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'f999_future'"))
    with pytest.raises(loopml.SchemaVersionError, match="newer loopml"):
        loopml.Workspace.open(tmp_path / "home", db_url=db_url)
    with db.engine.begin() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
            "f999_future"
        )
        connection.execute(
            text("UPDATE alembic_version SET version_num = :head"), {"head": _head(db)}
        )
    db.dispose()
    reopened = loopml.Workspace.open(tmp_path / "home", db_url=db_url)
    assert reopened.get_run(run.id).params == {"kept": "yes"}
    reopened.close()


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(sqlite_workspace: loopml.Workspace) -> None:
    with sqlite_workspace.db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000


def test_default_workspace_lives_in_loopml_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPML_HOME", str(tmp_path / "elsewhere"))
    ws = loopml.Workspace.open()
    assert ws.settings.home == tmp_path / "elsewhere"
    assert (tmp_path / "elsewhere" / "loopml.db").is_file()
    assert (tmp_path / "elsewhere" / "artifacts" / "objects").is_dir()
    ws.close()


def test_default_workspace_is_dot_loopml_in_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOOPML_HOME", raising=False)
    monkeypatch.delenv("LOOPML_DB_URL", raising=False)
    monkeypatch.delenv("LOOPML_ARTIFACTS_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    ws = loopml.Workspace.open()
    assert ws.settings.home == tmp_path / ".loopml"
    ws.close()


def test_env_urls_point_the_stores_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPML_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LOOPML_DB_URL", f"sqlite:///{tmp_path / 'other.db'}")
    monkeypatch.setenv("LOOPML_ARTIFACTS_URL", str(tmp_path / "blobs"))
    ws = loopml.Workspace.open()
    with ws.start_run() as run:
        run.log_text("hello", "note.txt")
    ws.close()
    assert (tmp_path / "other.db").is_file()
    assert not (tmp_path / "home" / "loopml.db").exists()
    assert list((tmp_path / "blobs" / "objects").rglob("*"))


def test_an_unwritable_home_gets_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(loopml.ConfigError, match="LOOPML_HOME"):
        loopml.Workspace.open(blocker / "home")
    assert blocker.read_text() == "not a folder"


def test_a_bad_database_url_gets_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(loopml.ConfigError, match="database URL"):
        loopml.Workspace.open(tmp_path, db_url="not a url")


def test_an_unreachable_database_gets_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(loopml.ConfigError, match="LOOPML_DB_URL"):
        loopml.Workspace.open(tmp_path, db_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
