"""Following an alias in-process: a version that fails to load leaves the server on the
current one, and a later move is still followed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest

import loopml
from loopml.serving import create_app
from tests.serving._samples import CHURN_ROW
from tests.serving.conftest import client_for

pytestmark = pytest.mark.anyio


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the condition did not hold in time")


async def test_a_version_that_fails_to_load_keeps_the_current_one(
    serving_ws: loopml.Workspace,
) -> None:
    registry = serving_ws.registry
    good = registry.load("models:/churn/1")
    broken = registry.register(
        good.model, name="churn", signature=good.signature, input_example=[CHURN_ROW]
    )
    (registry.local_bundle(broken.uri) / "model.joblib").write_bytes(b"damaged")
    registry.promote("churn", 1, "flaky")
    app = create_app(serving_ws, "models:/churn@flaky", poll_seconds=0.05)

    async def version(client: httpx.AsyncClient) -> int:
        response = await client.post("/models/churn/predict", json={"records": [CHURN_ROW]})
        assert response.status_code == 200, response.text
        return int(response.json()["version"])

    async with client_for(app) as client:
        assert await version(client) == 1
        registry.promote("churn", broken.version, "flaky")

        async def failed() -> bool:
            return 'outcome="failed"} 1.0' in (await client.get("/metrics")).text

        await eventually(failed)
        assert await version(client) == 1
        assert (await client.get("/health/ready")).status_code == 200
        registry.promote("churn", 2, "flaky")

        async def swapped() -> bool:
            return await version(client) == 2

        await eventually(swapped)
        metrics = (await client.get("/metrics")).text
        document = (await client.get("/openapi.json")).json()
    assert 'loopml_model_served{model="churn",runtime="pickle",version="2"} 1.0' in metrics
    assert 'loopml_model_served{model="churn",runtime="pickle",version="1"}' not in metrics
    assert "Record" in document["components"]["schemas"]
