"""Deployments beside an alias's holder: canary (advance, promote, roll back, refuse),
shadow copies, A/B splits with sticky routing, and the report over the prediction log."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import loopml
from loopml.errors import ValidationError
from loopml.serving import create_app
from loopml.serving.deployment import DeploySpec
from loopml.serving.policies import CanaryPlan
from loopml.serving.report import deployment_report
from tests.registry._samples import registered
from tests.servers import wait_until_ready
from tests.serving._process import free_port
from tests.serving._samples import CHURN_ROW, failing_version
from tests.serving.conftest import client_for


async def eventually(check: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        await asyncio.sleep(0.05)


def traffic(rows: int, seed: int = 0) -> list[dict[str, Any]]:
    """Varied rows, as real traffic is (the canary's prediction-drift guard needs spread)."""
    rng = np.random.default_rng(seed)
    return [
        {**CHURN_ROW, "tenure": float(t), "spend": float(s)}
        for t, s in zip(rng.normal(size=rows), rng.normal(size=rows) * 0.2, strict=True)
    ]


pytestmark = pytest.mark.anyio


@pytest.fixture
def ws(tmp_path: Path) -> Any:
    with loopml.Workspace.open(tmp_path / "home") as workspace:
        registered(workspace, 2)
        workspace.registry.promote("churn", 1, "champion")
        yield workspace


def fast(steps: tuple[float, ...] = (50.0, 100.0), **plan: Any) -> CanaryPlan:
    return CanaryPlan(steps=steps, interval_s=0.3, min_requests=5, **plan)


async def predict(
    client: httpx.AsyncClient, row: dict[str, Any], key: str | None = None
) -> httpx.Response:
    headers = {"X-Routing-Key": key} if key else {}
    return await client.post("/models/churn/predict", json={"records": [row]}, headers=headers)


async def test_a_canary_that_holds_its_guards_advances_and_is_promoted(
    ws: loopml.Workspace,
) -> None:
    # Latency on a loaded test machine is noise; the guards themselves are unit-tested.
    spec = DeploySpec("canary", "models:/churn/2", fast(max_latency_ratio=1e6), check_seconds=0.1)
    app = create_app(ws, "models:/churn@champion", deployment=spec, poll_seconds=0)
    async with client_for(app) as client:
        rows = iter(traffic(5000))

        async def promoted() -> bool:
            for _ in range(10):
                assert (await predict(client, next(rows))).status_code == 200
            return ws.registry.get("models:/churn@champion").version == 2

        await eventually(promoted, seconds=30)
        assert {(await predict(client, CHURN_ROW)).json()["version"] for _ in range(5)} == {2}
    actions = [(e.action, e.to_version) for e in ws.registry.history("churn", "champion")]
    assert actions[1:] == [("canary-start", 2), ("canary-step", 2), ("promote", 2)]
    assert ws.registry.history("churn", "champion")[-1].reason.startswith("canary completed")


async def test_a_failing_canary_rolls_back_by_itself_and_stable_keeps_serving(
    ws: loopml.Workspace,
) -> None:
    bad = failing_version(ws, "churn")
    spec = DeploySpec("canary", f"models:/churn/{bad}", fast(), check_seconds=0.1)
    app = create_app(ws, "models:/churn@champion", deployment=spec, poll_seconds=0)
    row = {**CHURN_ROW, "spend": 1.0}
    async with client_for(app) as client:

        async def rolled_back() -> bool:
            for _ in range(10):
                await predict(client, row)
            return app.state.serving.deployment.state_name == "rolled_back"

        await eventually(rolled_back, seconds=30)
        answers = [await predict(client, row) for _ in range(20)]
    assert {a.status_code for a in answers} == {200} and {a.json()["version"] for a in answers} == {
        1
    }
    last = ws.registry.history("churn", "champion")[-1]
    assert (last.action, last.to_version) == ("canary-rollback", bad) and "error rate" in (
        last.reason or ""
    )
    assert ws.registry.get("models:/churn@champion").version == 1  # the alias never moved


async def test_a_canary_that_fails_to_load_stays_on_stable(ws: loopml.Workspace) -> None:
    bad = failing_version(ws, "churn")
    (ws.registry.local_bundle(f"models:/churn/{bad}") / "model.joblib").write_bytes(b"damaged")
    spec = DeploySpec("canary", f"models:/churn/{bad}", fast(), check_seconds=0.1)
    app = create_app(ws, "models:/churn@champion", deployment=spec, poll_seconds=0)
    async with client_for(app) as client:
        answer = await predict(client, CHURN_ROW)
    assert answer.status_code == 200 and answer.json()["version"] == 1
    assert ws.registry.history("churn", "champion")[-1].action == "canary-failed"


async def test_a_canary_that_could_never_take_a_protected_alias_is_refused(
    ws: loopml.Workspace,
) -> None:
    ws.registry.promote("churn", 1, "production", force=True, reason="test")
    spec = DeploySpec("canary", "models:/churn/2", fast())
    app = create_app(ws, "models:/churn@production", deployment=spec, poll_seconds=0)
    with pytest.raises(ValidationError, match=r"could never be promoted.*needs a passing gate"):
        async with client_for(app):
            pass


async def test_shadow_gets_copies_and_the_report_pairs_them(ws: loopml.Workspace) -> None:
    spec = DeploySpec("shadow", "models:/churn/2")
    app = create_app(ws, "models:/churn@champion", deployment=spec, poll_seconds=0)
    async with client_for(app) as client:
        answers = [
            await predict(client, {**CHURN_ROW, "tenure": t}) for t in np.linspace(-2, 2, 12)
        ]
    assert {a.json()["version"] for a in answers} == {1}  # the shadow never answers
    logged = ws.predictions("churn")
    assert sorted(logged["arm"].value_counts().to_dict().items()) == [
        ("shadow", 12),
        ("stable", 12),
    ]
    report = deployment_report(ws, "churn", "champion")
    assert report.shadow is not None and report.shadow.rows == 12
    assert report.shadow.label_agreement is not None and 0.5 <= report.shadow.label_agreement <= 1


async def test_ab_routes_by_key_and_the_report_tests_the_arms(ws: loopml.Workspace) -> None:
    spec = DeploySpec("ab", "models:/churn/2", split=50)
    app = create_app(ws, "models:/churn@champion", deployment=spec, poll_seconds=0)
    async with client_for(app) as client:
        sticky = {
            (await predict(client, CHURN_ROW, key="customer-42")).json()["version"]
            for _ in range(10)
        }
        answers = [await predict(client, CHURN_ROW, key=f"c{i}") for i in range(60)]
        for answer in answers:  # the truth, to score both arms
            body = answer.json()
            label = (
                body["predictions"][0]
                if int(body["request_id"], 16) % 4
                else 1 - body["predictions"][0]
            )
            await client.post("/feedback", json={"request_id": body["request_id"], "label": label})
    assert len(sticky) == 1
    assert {a.json()["version"] for a in answers} == {1, 2}
    assert ws.registry.history("churn", "champion")[-1].action == "ab-start"
    report = deployment_report(ws, "churn", "champion")
    assert report.ab is not None and report.ab.n_a + report.ab.n_b == 60
    assert report.ab.metric == "accuracy"


def test_a_real_deployment_rolls_a_failing_canary_back_under_load(ws: loopml.Workspace) -> None:
    import os
    import signal
    import subprocess
    import sys

    bad = failing_version(ws, "churn")
    home = ws.settings.home
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "loopml"), "deploy", "churn", "--alias", "champion",
        "--canary", f"models:/churn/{bad}", "--steps", "50,100", "--interval", "1m",
        "--min-requests", "5", "--check-every", "0.2s", "--port", str(port), "--home", str(home),
    ]  # fmt: skip
    # The failing model's class lives in the tests package: the server must import it.
    root = str(Path(__file__).resolve().parents[2])
    environment = {**os.environ, "DO_NOT_TRACK": "1", "PYTHONPATH": root}
    server = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=environment
    )
    url = f"http://127.0.0.1:{port}"
    row = {**CHURN_ROW, "spend": 1.0}
    try:
        wait_until_ready(url, lambda: server.poll() is None)

        def hammer(_: int) -> tuple[int, int | None]:
            answer = httpx.post(f"{url}/models/churn/predict", json={"records": [row]}, timeout=10)
            return answer.status_code, answer.json().get("version")

        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            first = list(pool.map(hammer, range(120)))
            time.sleep(0.5)  # the controller's next check after the failures
            after = list(pool.map(hammer, range(60)))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert any(status == 500 for status, _ in first)  # the canary did fail on real traffic
    assert {status for status, _ in after} == {200} and {v for _, v in after} == {1}
    history = ws.registry.history("churn", "champion")
    assert [e.action for e in history][-2:] == ["canary-start", "canary-rollback"]
