"""``loopml deploy NAME --canary models:/NAME/N --request``, ``loopml deploy requests`` and
``loopml deploy cancel ID``: canaries recorded for the servers already running."""

from __future__ import annotations

from pathlib import Path

import pytest

import loopml
from loopml.serving import list_deployments
from loopml.store.repositories.deployments import DeploymentRepository
from tests.cli import assert_clean_failure, invoke, table_line
from tests.registry._samples import registered

REQUEST = (
    "deploy", "m", "--alias", "staging", "--canary", "models:/m/2", "--request",
    "--steps", "50,100", "--interval", "30s", "--min-requests", "5", "--check-every", "1s",
)  # fmt: skip


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """m versions 1 and 2, m@staging -> 1 (an unprotected alias)."""
    home = tmp_path / "home"
    with loopml.Workspace.open(home) as ws:
        registered(ws, 2, name="m")
        ws.registry.promote("m", 1, "staging")
    return home


def test_a_request_is_recorded_listed_and_cancelled(home: Path) -> None:
    made = invoke(home, *REQUEST, "--reason", "weekly retrain")
    assert made.exit_code == 0, made.output
    with loopml.Workspace.open(home, create=False) as ws:
        [request] = list_deployments(ws, "m")
    assert request.state == "pending" and request.reason == "weekly retrain"
    assert request.request_id in made.output
    assert "loopml deploy requests --model m" in made.output

    listed = invoke(home, "deploy", "requests", "--model", "m")
    assert listed.exit_code == 0, listed.output
    line = table_line(listed.output, request.request_id[:8])
    assert "m@staging" in line and "canary of v2" in line and "pending" in line
    assert "weekly retrain" in line

    again = invoke(home, *REQUEST)
    assert_clean_failure(again, "live deployment request already", request.request_id)

    cancelled = invoke(home, "deploy", "cancel", request.request_id[:8], "--reason", "bad data")
    assert cancelled.exit_code == 0, cancelled.output
    assert f"Cancelled deployment request {request.request_id}" in cancelled.output
    shown = invoke(home, "deploy", "requests", "--state", "cancelled")
    assert "cancelled" in table_line(shown.output, request.request_id[:8])
    assert (
        "No deployment requests for other."
        in invoke(home, "deploy", "requests", "--model", "other").output
    )


def test_bad_requests_fail_cleanly_and_store_nothing(home: Path) -> None:
    holder = [arg if arg != "models:/m/2" else "models:/m/1" for arg in REQUEST]
    assert_clean_failure(invoke(home, *holder), "holds m@staging already")
    shadow = ("deploy", "m", "--alias", "staging", "--shadow", "models:/m/2", "--request")
    assert_clean_failure(invoke(home, *shadow), "is a canary")
    other = [arg if arg != "models:/m/2" else "models:/n/2" for arg in REQUEST]
    assert_clean_failure(invoke(home, *other), "not a version of 'm'")
    steps = [arg if arg != "50,100" else "50,90" for arg in REQUEST]
    assert_clean_failure(invoke(home, *steps), "end at 100")
    assert_clean_failure(invoke(home, "deploy", "cancel", "0123456789ab"), "needs a reason")
    assert_clean_failure(
        invoke(home, "deploy", "cancel", "0123456789ab", "--reason", "x"),
        "No deployment request",
    )
    assert_clean_failure(invoke(home, "deploy", "requests", "--state", "odd"), "state must be")
    with loopml.Workspace.open(home, create=False) as ws:
        assert list_deployments(ws) == []


def test_the_canary_guards_given_reach_the_requested_plan(home: Path) -> None:
    made = invoke(home, *REQUEST, "--max-latency-ratio", "2", "--latency-slack-ms", "25")
    assert made.exit_code == 0, made.output
    with loopml.Workspace.open(home, create=False) as ws:
        [request] = list_deployments(ws, "m")
        plan = DeploymentRepository(ws.db).get(request.request_id).plan
    assert (plan["max_latency_ratio"], plan["latency_slack_ms"]) == (2.0, 25.0)
    assert (plan["min_requests"], plan["steps"]) == (5, [50.0, 100.0])


def test_a_negative_latency_slack_fails_cleanly_and_stores_nothing(home: Path) -> None:
    failed = invoke(home, *REQUEST, "--latency-slack-ms", "-5")
    assert_clean_failure(failed, "latency_slack_ms must be a number of ms, 0 or more")
    with loopml.Workspace.open(home, create=False) as ws:
        assert list_deployments(ws) == []
