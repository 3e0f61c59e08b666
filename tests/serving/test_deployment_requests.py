"""Deployments requested of running servers: a real uvicorn server following
models:/m@production claims a requested canary and runs it to promotion, rollback or
failure; requests no server picks up expire; cancel, one live request per alias, an
exclusive claim on every metadata backend, and the inputs refused up front."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import update

import loopml
from loopml.errors import ConflictError, NotFoundError, ValidationError
from loopml.serving import (
    CanaryPlan,
    DeploySpec,
    cancel_deployment,
    get_deployment,
    list_deployments,
    request_deployment,
    wait_for_deployment,
)
from loopml.store.models import DeploymentRequestRow
from loopml.store.repositories.deployments import DeploymentRepository
from tests.registry._samples import PASSING, gate, registered
from tests.servers import in_background, serve_in_thread
from tests.serving._samples import CHURN_ROW, failing_version

pytestmark = pytest.mark.slow

# Latency on a loaded test machine is noise: the guards themselves are unit-tested.
FAST = CanaryPlan(steps=(50.0, 100.0), interval_s=0.3, min_requests=5, max_latency_ratio=1e6)
SLOW = CanaryPlan(steps=(50.0, 100.0), interval_s=3600.0, min_requests=5, max_latency_ratio=1e6)


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[loopml.Workspace]:
    """m versions 1 and 2, m@production -> 1 (a protected alias)."""
    with loopml.Workspace.open(tmp_path / "home") as workspace:
        registered(workspace, 2, name="m")
        workspace.registry.promote("m", 1, "production", force=True, reason="first")
        yield workspace


@pytest.fixture(scope="module")
def refusing_ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[loopml.Workspace]:
    """As ``ws``, shared by the tests of refused requests (which store nothing)."""
    with loopml.Workspace.open(tmp_path_factory.mktemp("refusing") / "home") as workspace:
        registered(workspace, 2, name="m")
        workspace.registry.promote("m", 1, "production", force=True, reason="first")
        yield workspace


@pytest.fixture
def unprotected_ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[loopml.Workspace]:
    """As ``ws``, with production unprotected: a model that fails on traffic could not
    pass the gate a protected alias needs."""
    monkeypatch.setenv("LOOPML_PROTECTED_ALIASES", "")
    with loopml.Workspace.open(tmp_path / "home") as workspace:
        registered(workspace, 1, name="m")
        workspace.registry.promote("m", 1, "production", reason="first")
        yield workspace


def passing_gate(ws: loopml.Workspace, version: int) -> None:
    gate(ws, f"models:/m/{version}", PASSING, "models:/m@production")


def serving(ws: loopml.Workspace, **options: Any) -> AbstractContextManager[str]:
    """A real uvicorn server following models:/m@production, in a thread."""
    return serve_in_thread(ws, "models:/m@production", **options)


@contextmanager
def traffic(url: str, spend: float | None = None) -> Iterator[list[httpx.Response]]:
    """Varied single-row requests (the drift guard needs spread) from a thread until the
    block ends; yields the answers so far."""
    answers: list[httpx.Response] = []
    rng = np.random.default_rng(0)

    def send(stop: threading.Event) -> None:
        with httpx.Client(base_url=url, timeout=10) as client:
            while not stop.is_set():
                row = {
                    **CHURN_ROW,
                    "tenure": float(rng.normal()),
                    "spend": spend if spend is not None else float(rng.normal() * 0.2),
                }
                answers.append(client.post("/models/m/predict", json={"records": [row]}))

    with in_background(send, "test-traffic"):
        yield answers


def versions_served(url: str, requests: int = 20) -> set[int]:
    with httpx.Client(base_url=url, timeout=10) as client:
        return {
            client.post("/models/m/predict", json={"records": [CHURN_ROW]}).json()["version"]
            for _ in range(requests)
        }


def test_a_requested_canary_is_claimed_run_and_promoted(ws: loopml.Workspace) -> None:
    passing_gate(ws, 2)
    with serving(ws) as url, traffic(url):
        made = request_deployment(
            ws, "models:/m/2", plan=FAST, check_seconds=0.2, reason="pipeline run 3f2a: alert 12"
        )
        assert made.state == "pending" and not made.done and made.candidate == "models:/m/2"
        ended = wait_for_deployment(ws, made.request_id, timeout=120)
        assert ended.state == "promoted", ended
        # Several alias polls later the server still serves the new version only.
        for _ in range(5):
            assert versions_served(url) == {2}
    assert ended.done and ended.claimed_by is not None and ":" in ended.claimed_by
    assert ended.reason == "pipeline run 3f2a: alert 12" and "canary completed" in (
        ended.detail or ""
    )
    assert ws.registry.get("models:/m@production").version == 2
    actions = [e.action for e in ws.registry.history("m", "production")]
    assert actions[-3:] == ["canary-start", "canary-step", "promote"]
    assert [r.request_id for r in list_deployments(ws, "m", "promoted")] == [made.request_id]


def test_a_failing_canary_is_rolled_back_and_the_alias_stays(
    unprotected_ws: loopml.Workspace,
) -> None:
    ws = unprotected_ws
    bad = failing_version(ws, "m")
    with serving(ws) as url, traffic(url, spend=1.0):
        made = request_deployment(ws, f"models:/m/{bad}", plan=FAST, check_seconds=0.2)
        ended = wait_for_deployment(ws, made.request_id, timeout=120)
        assert ended.state == "rolled_back", ended
        assert versions_served(url) == {1}
    assert "error rate" in (ended.detail or "")
    assert ws.registry.get("models:/m@production").version == 1
    assert ws.registry.history("m", "production")[-1].action == "canary-rollback"


def test_a_candidate_that_cannot_load_fails_and_stable_keeps_serving(
    ws: loopml.Workspace,
) -> None:
    passing_gate(ws, 2)
    (ws.registry.local_bundle("models:/m/2") / "model.joblib").write_bytes(b"damaged")
    with serving(ws) as url:
        made = request_deployment(ws, "models:/m/2", plan=FAST, check_seconds=0.2)
        ended = wait_for_deployment(ws, made.request_id, timeout=120)
        assert versions_served(url) == {1}
    assert ended.state == "failed" and "did not load" in (ended.detail or ""), ended
    assert ws.registry.get("models:/m@production").version == 1


def test_a_request_no_server_picks_up_expires_and_a_later_server_never_runs_it(
    ws: loopml.Workspace,
) -> None:
    passing_gate(ws, 2)
    made = request_deployment(ws, "models:/m/2", plan=SLOW, check_seconds=0.2)
    expired = wait_for_deployment(ws, made.request_id, timeout=30, pickup_timeout=0.3)
    assert expired.state == "expired" and "loopml serve models:/m@production" in (
        expired.detail or ""
    )
    with serving(ws) as url, traffic(url):
        # A new request for the alias is allowed, and is what the server runs.
        second = request_deployment(ws, "models:/m/2", plan=SLOW, check_seconds=0.2)
        running = wait_for_deployment(ws, second.request_id, timeout=0, pickup_timeout=30)
        while running.state == "pending":
            running = wait_for_deployment(ws, second.request_id, timeout=0.2, pickup_timeout=30)
        assert running.state == "running" and running.claimed_by is not None
        # Cancelled while running: the server rolls the canary back at its next check.
        asked = cancel_deployment(ws, second.request_id, "the data was bad")
        assert asked.state == "running"
        cancelled = wait_for_deployment(ws, second.request_id, timeout=60)
        assert versions_served(url) == {1}
    assert cancelled.state == "cancelled" and "the data was bad" in (cancelled.detail or "")
    first = get_deployment(ws, made.request_id)
    assert first.state == "expired" and first.claimed_by is None
    assert ws.registry.get("models:/m@production").version == 1
    last = ws.registry.history("m", "production")[-1]
    assert last.action == "canary-rollback" and "cancelled" in (last.reason or "")


def test_a_server_stopping_mid_canary_fails_its_request(ws: loopml.Workspace) -> None:
    passing_gate(ws, 2)
    with serving(ws):
        made = request_deployment(ws, "models:/m/2", plan=SLOW, check_seconds=0.2)
        state = made.state
        while state == "pending":
            state = wait_for_deployment(ws, made.request_id, timeout=0.2).state
        assert state == "running"
    ended = get_deployment(ws, made.request_id)
    assert ended.state == "failed" and "stopped before the canary ended" in (ended.detail or "")
    assert ws.registry.get("models:/m@production").version == 1


def test_an_alias_moved_during_a_canary_cancels_it_and_the_server_follows(
    ws: loopml.Workspace,
) -> None:
    passing_gate(ws, 2)
    [third] = registered(ws, 1, name="m")
    with serving(ws) as url, traffic(url):
        made = request_deployment(ws, "models:/m/2", plan=SLOW, check_seconds=0.2)
        state = made.state
        while state == "pending":
            state = wait_for_deployment(ws, made.request_id, timeout=0.2).state
        assert state == "running"
        ws.registry.promote("m", third.version, "production", force=True, reason="hotfix")
        ended = wait_for_deployment(ws, made.request_id, timeout=60)
        deadline = time.monotonic() + 30
        while versions_served(url, 5) != {third.version}:
            assert time.monotonic() < deadline, "the server did not follow the alias"
    assert ended.state == "cancelled" and f"moved to version {third.version}" in (
        ended.detail or ""
    )
    assert ws.registry.get("models:/m@production").version == third.version


def test_a_server_running_a_deployment_does_not_claim_another(ws: loopml.Workspace) -> None:
    passing_gate(ws, 2)
    shadow = DeploySpec("shadow", "models:/m/2")
    with serving(ws, deployment=shadow):
        made = request_deployment(ws, "models:/m/2", plan=FAST, check_seconds=0.2)
        ended = wait_for_deployment(ws, made.request_id, timeout=30, pickup_timeout=1.0)
    assert ended.state == "expired" and ended.claimed_by is None


def test_one_live_request_per_alias_and_cancel_of_a_pending_one(ws: loopml.Workspace) -> None:
    passing_gate(ws, 2)
    first = request_deployment(ws, "models:/m/2", plan=FAST)
    with pytest.raises(
        ConflictError, match=rf"live deployment request already: {first.request_id}"
    ):
        request_deployment(ws, "models:/m/2", plan=FAST)
    cancelled = cancel_deployment(ws, first.request_id[:8], "wrong version")
    assert cancelled.state == "cancelled" and "wrong version" in (cancelled.detail or "")
    assert cancel_deployment(ws, first.request_id, "again").state == "cancelled"
    with pytest.raises(ValidationError, match="needs a reason"):
        cancel_deployment(ws, first.request_id, " ")
    second = request_deployment(ws, "models:/m/2", plan=FAST)  # the alias is free again
    expired = wait_for_deployment(ws, second.request_id, timeout=10, pickup_timeout=0)
    assert expired.state == "expired"
    with pytest.raises(ConflictError, match="ended already"):
        cancel_deployment(ws, second.request_id, "too late")
    assert [r.state for r in list_deployments(ws)] == ["expired", "cancelled"]
    with pytest.raises(NotFoundError, match="No deployment request 'nope'"):
        get_deployment(ws, "nope")
    with pytest.raises(ValidationError, match="state must be one of"):
        list_deployments(ws, state="done")


def test_a_request_whose_server_vanished_does_not_block_the_alias(ws: loopml.Workspace) -> None:
    passing_gate(ws, 2)
    first = request_deployment(ws, "models:/m/2", plan=FAST)
    assert DeploymentRepository(ws.db).claim(first.request_id, "gone:1", "loading")
    with ws.db.write() as connection:  # its server crashed long ago
        connection.execute(
            update(DeploymentRequestRow)
            .where(DeploymentRequestRow.request_id == first.request_id)
            .values(heartbeat_at=1_000)
        )
    second = request_deployment(ws, "models:/m/2", plan=FAST)
    assert second.state == "pending"
    ended = get_deployment(ws, first.request_id)
    assert ended.state == "failed" and "gone:1 stopped reporting" in (ended.detail or "")


@pytest.mark.parametrize(
    ("candidate", "options", "error", "message"),
    [
        ("models:/nope/1", {}, NotFoundError, "nope"),
        ("models:/m/9", {}, NotFoundError, "Version 9 of model 'm' does not exist"),
        ("models:/m/1", {}, ValidationError, "holds m@production already"),
        ("models:/m@production", {}, ValidationError, "must name a version"),
        ("m/2", {}, ValidationError, "not a model reference"),
        ("models:/m/2", {"alias": "nope"}, NotFoundError, "no alias 'nope'"),
        ("models:/m/2", {"strategy": "shadow"}, ValidationError, "is a canary"),
        (
            "models:/m/2",
            {"check_seconds": 0},
            ValidationError,
            "check_seconds must be a positive number",
        ),
        (
            "models:/m/2",
            {"plan": CanaryPlan(steps=(50.0, 90.0))},
            ValidationError,
            "end at 100",
        ),
        (
            "models:/m/2",
            {"plan": CanaryPlan(interval_s=0, min_requests=0, max_error_rate=2.0)},
            ValidationError,
            "interval_s must be a positive.*min_requests must be.*max_error_rate must be",
        ),
        *(
            (
                "models:/m/2",
                {"plan": CanaryPlan(latency_slack_ms=slack)},
                ValidationError,
                "latency_slack_ms must be a number of ms, 0 or more",
            )
            for slack in (-1.0, float("nan"), "10")
        ),
    ],
)
def test_bad_requests_are_refused_up_front_and_nothing_is_stored(
    refusing_ws: loopml.Workspace,
    candidate: str,
    options: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        request_deployment(refusing_ws, candidate, **options)
    assert list_deployments(refusing_ws) == []


@pytest.mark.parametrize("slack", [-0.5, float("nan"), float("inf"), "10", None, True])
def test_a_canary_latency_slack_must_be_a_number_of_ms_0_or_more(slack: Any) -> None:
    with pytest.raises(ValidationError, match=r"latency_slack_ms must be a number of ms"):
        DeploySpec("canary", "models:/m/2", CanaryPlan(latency_slack_ms=slack))
    for fine in (0, 0.0, 25):  # 0: the ratio alone
        assert DeploySpec("canary", "models:/m/2", CanaryPlan(latency_slack_ms=fine))


def test_a_canary_the_protected_alias_could_never_take_is_refused(
    refusing_ws: loopml.Workspace,
) -> None:
    with pytest.raises(ValidationError, match=r"could never be promoted.*needs a passing gate"):
        request_deployment(refusing_ws, "models:/m/2", plan=FAST)
    assert list_deployments(refusing_ws) == []


def _pending(ws: loopml.Workspace) -> str:
    """A pending request stored directly (the claim is the store's business)."""
    record, created = DeploymentRepository(ws.db).add(
        "a" * 32,
        model="m",
        alias="production",
        candidate_version=2,
        strategy="canary",
        plan={},
        check_seconds=1.0,
        reason=None,
        requested_by="test",
    )
    assert created
    return record.request_id


def test_exactly_one_server_claims_a_request(tmp_path: Path, db_url: str) -> None:
    first = loopml.Workspace.open(tmp_path / "a", db_url=db_url)
    second = loopml.Workspace.open(tmp_path / "b", db_url=db_url)
    try:
        request_id = _pending(first)
        repositories = [DeploymentRepository(first.db), DeploymentRepository(second.db)]
        barrier = threading.Barrier(2)
        won: list[bool] = [False, False]

        def claim(index: int) -> None:
            barrier.wait()
            won[index] = repositories[index].claim(request_id, f"server:{index}", "loading")

        threads = [threading.Thread(target=claim, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(won) == [False, True]
        record = repositories[1].get(request_id)
        assert record.state == "running" and record.claimed_by == f"server:{won.index(True)}"
        # Claimed, it can no longer expire; the loser cannot take it either.
        assert not repositories[0].finish(request_id, "expired", None, when=("pending",))
        assert not repositories[1].claim(request_id, "server:late", "loading")
    finally:
        first.close()
        second.close()


def test_an_expired_request_cannot_be_claimed(tmp_path: Path, db_url: str) -> None:
    first = loopml.Workspace.open(tmp_path / "a", db_url=db_url)
    second = loopml.Workspace.open(tmp_path / "b", db_url=db_url)
    try:
        request_id = _pending(first)
        assert DeploymentRepository(first.db).finish(
            request_id, "expired", "nobody", when=("pending",)
        )
        assert not DeploymentRepository(second.db).claim(request_id, "server:late", "loading")
        assert DeploymentRepository(second.db).live("m", "production") is None
    finally:
        first.close()
        second.close()
