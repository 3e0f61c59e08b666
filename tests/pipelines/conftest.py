"""Fixtures for pipeline tests: a SQLite workspace (the store tests cover PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import loopml


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[loopml.Workspace]:
    workspace = loopml.Workspace.open(tmp_path / "home")
    yield workspace
    workspace.close()
