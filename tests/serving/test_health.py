"""Service health in the monitored series: per-version request counts, error rates and
latency percentiles written by the running server, a last snapshot at shutdown, and a
store that fails without breaking requests."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import loopml
from loopml.serving import create_app
from loopml.serving.deployment import DeploySpec
from loopml.serving.health import TrafficWindow, VersionTraffic, instance_id
from loopml.store.repositories.monitoring import MonitorRepository, PointRecord
from tests.registry._samples import registered
from tests.serving._samples import CHURN_ROW
from tests.serving.conftest import client_for

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[loopml.Workspace]:
    """churn versions 1 and 2, production -> 1; each test reads only its own points."""
    with loopml.Workspace.open(tmp_path_factory.mktemp("health") / "home") as workspace:
        registered(workspace, 2)
        workspace.registry.promote("churn", 1, "production", force=True, reason="health tests")
        yield workspace


def health_points(ws: loopml.Workspace, since: float) -> list[PointRecord]:
    return MonitorRepository(ws.db).points("churn", kind="health", since=int(since * 1000))


def totals(points: list[PointRecord], version: int) -> dict[str, float]:
    """Sums over windows: requests, and errors recovered from each window's rates."""
    summed: Counter[str] = Counter()
    for point in points:
        if point.version != version:
            continue
        requests = point.detail["requests"]
        if point.name == "requests":
            summed["requests"] += point.value or 0
            summed["windows"] += 1
        elif point.name == "error_rate":
            summed["errors"] += (point.value or 0) * requests
        elif point.name == "client_error_rate":
            summed["client_errors"] += (point.value or 0) * requests
    return {name: round(value, 6) for name, value in summed.items()}


async def predict(client: httpx.AsyncClient, row: dict[str, Any], key: str) -> httpx.Response:
    return await client.post(
        "/models/churn/predict", json={"records": [row]}, headers={"X-Routing-Key": key}
    )


async def test_points_count_requests_errors_and_latency_per_version(
    ws: loopml.Workspace,
) -> None:
    since = time.time() - 0.001
    spec = DeploySpec("ab", "models:/churn/2", split=50)
    app = create_app(
        ws, "models:/churn@production", deployment=spec, poll_seconds=0, health_interval=0.25
    )
    answered: Counter[tuple[int, int]] = Counter()  # (version, status) -> requests
    slowest = 0.0
    async with client_for(app) as client:
        version_2 = next(a.served for a in app.state.serving.router.arms if a.served.version == 2)
        estimator = version_2.model.model
        originals = {name: getattr(estimator, name) for name in ("predict", "predict_proba")}

        def fragile(name: str) -> Any:
            def method(frame: Any) -> Any:
                if (frame["tenure"] == 99).any():
                    raise RuntimeError("cannot handle tenure 99")
                return originals[name](frame)

            return method

        for name in originals:
            setattr(estimator, name, fragile(name))
        keys = [f"customer-{i}" for i in range(40)]
        version_of: dict[str, int] = {}
        for index, key in enumerate(keys):
            started = time.perf_counter()
            response = await predict(client, {**CHURN_ROW, "tenure": index / 10}, key)
            slowest = max(slowest, time.perf_counter() - started)
            assert response.status_code == 200, response.text
            version_of[key] = response.json()["version"]
            answered[version_of[key], 200] += 1
            if index == 20:
                await asyncio.sleep(0.3)  # the traffic spans more than one window
        for key in keys[:7]:  # the data does not fit the signature: the client's fault
            response = await predict(client, {"tenure": 1.0, "spend": 0.1}, key)
            assert response.status_code == 422, response.text
            answered[version_of[key], 422] += 1
        on_2 = next(key for key in keys if version_of[key] == 2)
        failed = await predict(client, {**CHURN_ROW, "tenure": 99}, on_2)
        assert failed.status_code == 500 and failed.json()["error"] == "model_error"
        answered[2, 500] += 1
        for path in ("/health/ready", "/metrics", "/v2/health/live"):  # not traffic
            assert (await client.get(path)).status_code == 200
    assert {version for version, _ in answered} == {1, 2}
    points = health_points(ws, since)
    assert {point.test for point in points} == {instance_id()}
    assert {point.version for point in points} == {0, 1, 2}
    for version in (1, 2):
        mine = {status: answered[version, status] for status in (200, 422, 500)}
        total = sum(mine.values())
        assert totals(points, version) == {
            "requests": total,
            "windows": pytest.approx(totals(points, 0)["windows"]),
            "errors": mine[500],
            "client_errors": mine[422],
        }
    everything = totals(points, 0)
    assert everything["requests"] == sum(answered.values()) == 48
    assert everything["errors"] == 1 and everything["client_errors"] == 7
    assert everything["windows"] >= 2
    for point in points:
        if point.name == "throughput_rps":
            seconds = (point.end_time - point.start_time) / 1000
            assert point.value * seconds == pytest.approx(point.detail["requests"], abs=1e-6)
    by_window: dict[tuple[int, int], dict[str, float]] = {}
    for point in points:
        by_window.setdefault((point.version, point.end_time), {})[point.name] = point.value or 0
    with_traffic = [values for values in by_window.values() if values["requests"] > 0]
    assert with_traffic
    for values in with_traffic:
        # Server time is within the client's; the sketch's buckets are 2% wide.
        assert 0 < values["p50_ms"] <= values["p95_ms"] <= values["p99_ms"]
        assert values["p99_ms"] <= slowest * 1000 * 1.02
        # One request at a time: a snapshot finds at most its row waiting for a batch.
        assert values["queue_depth"] in (0, 1)
    server = [values for (version, _), values in by_window.items() if version == 0]
    assert all(values["log_dropped"] == 0 for values in server)
    assert all(values["log_backlog"] >= 0 for values in server)


async def test_a_stopped_app_writes_its_last_snapshot(ws: loopml.Workspace) -> None:
    since = time.time() - 0.001
    app = create_app(ws, "models:/churn/2", health_interval=3600)
    async with client_for(app) as client:
        for index in range(5):
            response = await predict(client, {**CHURN_ROW, "spend": index / 5}, "k")
            assert response.status_code == 200
        assert health_points(ws, since) == []  # the interval has not passed
        stopping = time.time()
    points = health_points(ws, since)
    assert {(p.version, p.name): p.value for p in points if p.name == "requests"} == {
        (0, "requests"): 5,
        (2, "requests"): 5,
    }
    (end,) = {point.end_time for point in points}
    (start,) = {point.start_time for point in points}
    assert since * 1000 < start < stopping * 1000 <= end <= time.time() * 1000


async def test_a_failing_store_breaks_no_request_and_its_points_are_written_later(
    ws: loopml.Workspace, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    since = time.time() - 0.001
    original = MonitorRepository.record_points
    failures = []

    def unavailable(self: MonitorRepository, points: Any) -> None:
        failures.append(len(points))
        raise ConnectionError("the database is restarting")

    monkeypatch.setattr(MonitorRepository, "record_points", unavailable)
    app = create_app(ws, "models:/churn/1", health_interval=0.05)
    async with client_for(app) as client:
        for index in range(6):
            response = await predict(client, {**CHURN_ROW, "spend": index / 6}, "k")
            assert response.status_code == 200
            await asyncio.sleep(0.03)
        deadline = time.monotonic() + 10
        while len(failures) < 2:
            assert time.monotonic() < deadline, "the recorder never tried to write"
            await asyncio.sleep(0.02)
        monkeypatch.setattr(MonitorRepository, "record_points", original)  # the store is back
    assert "Could not store" in caplog.text and "the database is restarting" in caplog.text
    points = health_points(ws, since)
    assert totals(points, 1)["requests"] == totals(points, 0)["requests"] == 6


async def test_no_workspace_or_a_zero_interval_records_nothing(
    ws: loopml.Workspace, tmp_path: Path
) -> None:
    bundle = ws.registry.local_bundle("models:/churn/1")
    for app in (
        create_app(tmp_path / "no-such-home", bundle),
        create_app(ws, "models:/churn/1", health_interval=0),
    ):
        async with client_for(app) as client:
            name = app.state.serving.router.name
            response = await client.post(f"/models/{name}/predict", json={"records": [CHURN_ROW]})
            assert response.status_code == 200, response.text
            assert app.state.serving.metrics.traffic is None


def test_the_latency_sketch_is_within_one_percent_and_counts_status_classes() -> None:
    window = TrafficWindow()
    latencies = np.random.default_rng(3).lognormal(np.log(0.004), 0.6, 5000)
    for index, seconds in enumerate(latencies.tolist()):
        status = 503 if index % 100 == 0 else 404 if index % 50 == 0 else 200
        window.observe("3", "/v2/models/{name}/infer", status, seconds)
    window.observe("3", "/metrics", 200, 1.0)  # not a prediction
    window.observe("3", "/feedback", 500, 1.0)
    (traffic,) = window.take().values()
    assert (traffic.requests, traffic.errors, traffic.client_errors) == (5000, 50, 50)
    for share in (0.5, 0.95, 0.99):
        exact = float(np.quantile(latencies, share, method="inverted_cdf")) * 1000
        assert traffic.percentile_ms(share) == pytest.approx(exact, rel=0.011)
    assert window.take() == {}
    assert np.isnan(VersionTraffic().percentile_ms(0.5))
