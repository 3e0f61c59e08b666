"""Shared serving fixtures: one workspace with registered models for the whole session,
and an in-process client that runs the app's lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

import loopml
from tests.registry._samples import registered
from tests.serving._samples import plans_version


@pytest.fixture(scope="session")
def serving_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace holding churn versions 1 and 2 (a logistic regression, int classes,
    churn@production -> 1) and plans version 1 (a random forest, string classes)."""
    home = tmp_path_factory.mktemp("serving") / "home"
    with loopml.Workspace.open(home) as ws:
        registered(ws, 2)
        ws.registry.promote("churn", 1, "production", force=True, reason="serving tests")
        plans_version(ws)
    return home


@pytest.fixture(scope="session")
def serving_ws(serving_home: Path) -> Iterator[loopml.Workspace]:
    ws = loopml.Workspace.open(serving_home, create=False)
    yield ws
    ws.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def client_for(app: FastAPI, **options: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to ``app`` in-process, between its startup and shutdown."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://serving.test", **options
        ) as client:
            yield client
