"""Shared fixtures: workspaces on every metadata backend, with real servers where they exist."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# Peer tools and Ray phone home by default; nothing leaves this machine.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import loopml

POSTGRES_URL = os.environ.get(
    "LOOPML_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_problem() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[test]')"
    try:
        with psycopg.connect(
            POSTGRES_URL.replace("postgresql+psycopg", "postgresql"), connect_timeout=3
        ):
            return None
    except psycopg.OperationalError as error:
        return f"no PostgreSQL server at {POSTGRES_URL}: {str(error).strip()}"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test PostgreSQL server; skips visibly when it is down, fails under CI."""
    problem = _postgres_problem()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs PostgreSQL: {problem}")
        pytest.skip(problem)
    return POSTGRES_URL


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    """A database URL whose connections live in a fresh schema, dropped afterwards."""
    import psycopg

    schema = f"loopml_test_{uuid.uuid4().hex[:12]}"
    plain = postgres_url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    yield f"{postgres_url}?options=-csearch_path%3D{schema}"
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The metadata store URL, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta.db'}"
    return str(request.getfixturevalue("postgres_schema_url"))


@pytest.fixture
def workspace(tmp_path: Path, db_url: str) -> Iterator[loopml.Workspace]:
    """A fresh workspace on each metadata backend, with a local artifact folder."""
    ws = loopml.Workspace.open(tmp_path / "home", db_url=db_url)
    yield ws
    ws.close()


@pytest.fixture
def sqlite_workspace(tmp_path: Path) -> Iterator[loopml.Workspace]:
    """A workspace on the embedded default (SQLite + local folder)."""
    ws = loopml.Workspace.open(tmp_path / "home")
    yield ws
    ws.close()


@pytest.fixture(autouse=True)
def _outside_any_git_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs record the git state of the current folder; tests start in an empty one."""
    monkeypatch.chdir(tmp_path)
