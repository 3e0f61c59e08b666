"""Notifiers (log, webhook against a real local server, callables) and alert actions."""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import sys
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import loopml
from loopml.errors import ValidationError
from loopml.monitoring import notify
from loopml.monitoring.alerts import AlertChange, evaluate_alerts, load_rules
from loopml.monitoring.notify import WebhookNotifier, deliver, register_action_kind
from loopml.monitoring.series import Point, record
from loopml.store.repositories.monitoring import AlertRecord, MonitorRepository

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def end(window: int) -> dt.datetime:
    return T0 + (window + 1) * HOUR


def put(ws: loopml.Workspace, window: int, value: float, key: str = "drift.share") -> None:
    kind, _, name = key.partition(".")
    start = T0 + window * HOUR
    record(ws, [Point("churn", None, start, start + HOUR, kind, name, value)])


class Hook:
    """A local HTTP server answering each POST with the next status of ``statuses``
    (the last one repeats) and keeping the JSON bodies it got."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.bodies: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                hook.bodies.append(json.loads(self.rfile.read(length)))
                status = hook.statuses[min(len(hook.bodies), len(hook.statuses)) - 1]
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Hook]]:
    """Start hooks with ``Hook(statuses)`` and append them here; all are closed after."""
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    started: list[Hook] = []
    yield started
    for hook in started:
        hook.close()


def webhook_config(url: str, retries: int = 2, **rule: Any) -> dict[str, Any]:
    return {
        "rules": [{"name": "drift", "condition": "drift.share > 0.3", "notify": ["hook"], **rule}],
        "notifiers": {"hook": {"type": "webhook", "url": url, "retries": retries,
                               "backoff": 0.25, "timeout": 5}},
    }  # fmt: skip


# -- notifiers ---------------------------------------------------------------------------
def test_webhook_posts_the_alert_as_json(workspace: loopml.Workspace, hooks: list[Hook]) -> None:
    hook = Hook([200])
    hooks.append(hook)
    put(workspace, 0, 0.55)
    (change,) = evaluate_alerts(workspace, "churn", webhook_config(hook.url), at=end(0))
    (body,) = hook.bodies
    assert change.alert is not None
    assert (body["status"], body["rule"], body["model"], body["value"]) == (
        "fired", "drift", "churn", 0.55,
    )  # fmt: skip
    assert body["alert"]["alert_id"] == change.alert.alert_id
    assert body["alert"]["window_end"] == end(0).isoformat()
    assert (change.alert.notify_attempts, change.alert.notify_error) == (1, None)
    assert change.alert.notified_at is not None
    # Resolution is posted too.
    put(workspace, 1, 0.1)
    evaluate_alerts(workspace, "churn", webhook_config(hook.url), at=end(1))
    assert [b["status"] for b in hook.bodies] == ["fired", "resolved"]
    assert hook.bodies[1]["alert"]["state"] == "resolved"


def test_a_webhook_failing_twice_is_delivered_after_retries_with_backoff(
    sqlite_workspace: loopml.Workspace, hooks: list[Hook]
) -> None:
    hook = Hook([500, 503, 200])
    hooks.append(hook)
    put(sqlite_workspace, 0, 0.5)
    slept: list[float] = []
    (change,) = evaluate_alerts(
        sqlite_workspace, "churn", webhook_config(hook.url, retries=3), at=end(0),
        sleep=slept.append,
    )  # fmt: skip
    assert len(hook.bodies) == 3
    assert slept == [0.25, 0.5]  # doubling from the configured backoff
    (delivery,) = change.deliveries
    assert (delivery.ok, delivery.attempts, delivery.error) == (True, 3, None)
    assert change.alert is not None
    assert (change.alert.notify_attempts, change.alert.notify_error) == (3, None)
    assert change.alert.notified_at is not None


def test_a_failing_notifier_is_recorded_and_stops_neither_other_notifiers_nor_rules(
    workspace: loopml.Workspace, hooks: list[Hook], caplog: pytest.LogCaptureFixture
) -> None:
    hook = Hook([500])
    hooks.append(hook)
    told: list[tuple[str, str]] = []
    config = load_rules(
        {
            "rules": [
                {"name": "drift", "condition": "drift.share > 0.3", "notify": ["hook", "rec"]},
                {"name": "auc", "condition": "performance.auc < 0.75", "notify": ["rec"]},
            ],
            "notifiers": {"hook": {"type": "webhook", "url": hook.url, "retries": 2}},
        },
        notifiers={"rec": lambda change: told.append((change.rule, change.status))},
    )
    put(workspace, 0, 0.5)
    put(workspace, 0, 0.6, key="performance.auc")
    slept: list[float] = []
    with caplog.at_level(logging.WARNING, logger="loopml.monitoring"):
        changes = evaluate_alerts(workspace, "churn", config, at=end(0), sleep=slept.append)
    assert [(c.rule, c.status) for c in changes] == [("drift", "fired"), ("auc", "fired")]
    assert told == [("drift", "fired"), ("auc", "fired")]
    assert len(hook.bodies) == 3 and slept == [0.5, 1.0]
    drift = changes[0].alert
    assert drift is not None
    assert drift.notify_attempts == 4  # 3 webhook attempts + 1 delivered callable
    assert drift.notify_error is not None
    assert drift.notify_error.startswith("fired: hook failed 3 time(s)")
    assert "HTTP 500" in drift.notify_error
    assert drift.notified_at is not None  # the callable did deliver
    assert "notifier 'hook' failed 3 time(s)" in caplog.text


def test_an_unreachable_webhook_and_a_raising_callable_are_recorded_not_raised(
    sqlite_workspace: loopml.Workspace,
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    def broken(change: AlertChange) -> None:
        raise RuntimeError("pager is down")

    config = load_rules(
        {
            "rules": [
                {"name": "drift", "condition": "drift.share > 0.3", "notify": ["hook", "pager"]}
            ],
            "notifiers": {
                "hook": {"type": "webhook", "url": f"http://127.0.0.1:{port}/", "retries": 0},
                "pager": {"type": "callable", "function": broken, "retries": 1},
            },
        }
    )
    put(sqlite_workspace, 0, 0.5)
    (change,) = evaluate_alerts(sqlite_workspace, "churn", config, at=end(0), sleep=lambda s: None)
    assert [(d.notifier, d.ok, d.attempts) for d in change.deliveries] == [
        ("hook", False, 1), ("pager", False, 2),
    ]  # fmt: skip
    assert change.alert is not None and change.alert.notified_at is None
    error = change.alert.notify_error or ""
    assert "could not be reached" in error and "RuntimeError: pager is down" in error


def test_the_log_notifier_logs_by_severity(
    sqlite_workspace: loopml.Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_rules(
        [{"name": "drift", "condition": "drift.share > 0.3", "severity": "critical"},
         {"name": "auc", "condition": "performance.auc < 0.75", "severity": "info"}]
    )  # fmt: skip
    put(sqlite_workspace, 0, 0.5)
    put(sqlite_workspace, 0, 0.5, key="performance.auc")
    with caplog.at_level(logging.INFO, logger="loopml.monitoring"):
        evaluate_alerts(sqlite_workspace, "churn", config, at=end(0))
    fired = [(r.levelno, r.getMessage()) for r in caplog.records if "alert fired" in r.getMessage()]
    assert [level for level, _ in fired] == [logging.ERROR, logging.INFO]
    assert "drift.share = 0.5 > 0.3" in fired[0][1]


def test_deliver_caps_backoff_and_counts_attempts() -> None:
    calls: list[str] = []

    def flaky(change: AlertChange) -> None:
        calls.append(change.status)
        raise OSError("no")

    notifier = notify.CallableNotifier(flaky, "flaky", retries=9, backoff=10.0)
    slept: list[float] = []
    change = AlertChange("fired", "r", "m", "drift.share", "warning", 1.0, 0.3, T0, "msg")
    delivery = deliver(notifier, change, sleep=slept.append)
    assert (delivery.ok, delivery.attempts, len(calls)) == (False, 10, 10)
    assert slept == [10.0, 20.0, 40.0] + [60.0] * 6
    assert delivery.error == "OSError: no"


def test_webhook_notifier_rejects_bad_configuration() -> None:
    with pytest.raises(ValidationError, match="timeout must be more than 0"):
        notify.build_notifier("h", {"type": "webhook", "url": "http://x", "timeout": 0})
    with pytest.raises(ValidationError, match=r"unknown key\(s\) \['retry'\]"):
        notify.build_notifier("h", {"type": "webhook", "url": "http://x", "retry": 1})
    with pytest.raises(ValidationError, match="whole number"):
        notify.build_notifier("h", {"type": "webhook", "url": "http://x", "retries": -1})
    built = notify.build_notifier("h", {"type": "webhook", "url": "https://x", "headers": {"A": 1}})
    assert isinstance(built, WebhookNotifier) and built.headers == {"A": "1"}


# -- actions -----------------------------------------------------------------------------
def test_a_callable_action_runs_once_when_the_alert_fires_with_it_as_reason(
    workspace: loopml.Workspace,
) -> None:
    got: list[AlertRecord] = []
    config = load_rules([{"name": "drift", "condition": "drift.share > 0.3", "action": got.append}])
    changes = []
    for window, value in enumerate([0.5, 0.6, 0.7]):
        put(workspace, window, value)
        changes += evaluate_alerts(workspace, "churn", config, at=end(window))
    assert [c.status for c in changes] == ["fired", "firing", "firing"]
    (alert,) = got  # not again while the alert stays open
    stored = MonitorRepository(workspace.db).alert(alert.alert_id)
    assert stored.action is not None
    assert (stored.action["kind"], stored.action["status"]) == ("callable", "ok")
    assert stored.action["reason"] == {
        "alert_id": alert.alert_id, "rule": "drift", "model": "churn", "message": alert.message,
    }  # fmt: skip
    assert changes[1].action is None and changes[2].action is None


def test_a_command_action_gets_the_alert_as_json_and_in_its_environment(
    sqlite_workspace: loopml.Workspace, tmp_path: Path
) -> None:
    out = tmp_path / "got.json"
    script = (
        "import json, os, sys\n"
        "alert = json.load(sys.stdin)\n"
        "env = {k: v for k, v in os.environ.items() if k.startswith('LOOPML_ALERT_')}\n"
        "open(sys.argv[1], 'w').write(json.dumps({'alert': alert, 'env': env}))\n"
        "print('retraining for', alert['rule'])\n"
    )
    config = load_rules(
        [{"name": "drift", "condition": "drift.share > 0.3",
          "action": {"command": [sys.executable, "-c", script, str(out)], "timeout": 60}}]
    )  # fmt: skip
    put(sqlite_workspace, 0, 0.5)
    (change,) = evaluate_alerts(sqlite_workspace, "churn", config, at=end(0))
    assert change.alert is not None
    got = json.loads(out.read_text())
    alert_id = change.alert.alert_id
    assert (got["alert"]["alert_id"], got["alert"]["rule"], got["alert"]["value"]) == (
        alert_id, "drift", 0.5,
    )  # fmt: skip
    assert got["env"] == {
        "LOOPML_ALERT_ID": str(alert_id), "LOOPML_ALERT_RULE": "drift",
        "LOOPML_ALERT_MODEL": "churn",
    }  # fmt: skip
    action = change.alert.action
    assert action is not None
    assert (action["kind"], action["status"], action["exit_code"]) == ("command", "ok", 0)
    assert action["output"].strip() == "retraining for drift"
    assert action["reason"]["alert_id"] == alert_id and action["duration_s"] > 0


@pytest.mark.parametrize(
    ("command", "timeout", "expected"),
    [
        ([sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"], 60,
         {"exit_code": 3, "error": "exited with code 3", "output": "boom\n"}),
        ([sys.executable, "-c", "import time; print('started', flush=True); time.sleep(30)"],
         0.5, {"exit_code": None, "error": "timed out after 0.5 s", "output": "started\n"}),
        (["loopml-no-such-program"], 60, {"exit_code": None}),
    ],
)  # fmt: skip
def test_a_failing_command_is_recorded_on_the_alert(
    sqlite_workspace: loopml.Workspace, command: list[str], timeout: float, expected: dict[str, Any]
) -> None:
    config = load_rules(
        [{"name": "drift", "condition": "drift.share > 0.3",
          "action": {"command": command, "timeout": timeout}}]
    )  # fmt: skip
    put(sqlite_workspace, 0, 0.5)
    (change,) = evaluate_alerts(sqlite_workspace, "churn", config, at=end(0))
    assert change.alert is not None and change.alert.action is not None
    action = change.alert.action
    assert action["status"] == "failed"
    assert {key: action[key] for key in expected} == expected
    if command[0] == "loopml-no-such-program":
        assert "could not start 'loopml-no-such-program'" in action["error"]
    assert action["duration_s"] < 10


def test_registered_action_kinds_are_named_by_rules(
    sqlite_workspace: loopml.Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notify, "_ACTION_KINDS", dict(notify._ACTION_KINDS))
    calls: list[tuple[int, dict[str, Any]]] = []

    def retrain(alert: AlertRecord, options: Mapping[str, Any]) -> dict[str, Any]:
        calls.append((alert.alert_id, dict(options)))
        return {"run_id": "r-42"}

    def check(options: dict[str, Any]) -> str | None:
        return None if isinstance(options["retrain"], str) else "name the pipeline, e.g. churn"

    register_action_kind("retrain", retrain, check=check)
    with pytest.raises(ValidationError, match="registered already"):
        register_action_kind("retrain", retrain)
    with pytest.raises(ValidationError, match="'r': name the pipeline"):
        load_rules([{"name": "r", "condition": "drift.share > 0.3", "action": {"retrain": 3}}])
    config = load_rules(
        [{"name": "r", "condition": "drift.share > 0.3",
          "action": {"retrain": "churn", "params": {"n": 1}}}]
    )  # fmt: skip
    put(sqlite_workspace, 0, 0.5)
    (change,) = evaluate_alerts(sqlite_workspace, "churn", config, at=end(0))
    assert change.alert is not None
    assert calls == [(change.alert.alert_id, {"retrain": "churn", "params": {"n": 1}})]
    assert change.action is not None
    assert (change.action["status"], change.action["run_id"]) == ("ok", "r-42")


def lazy_kind(alert: AlertRecord, options: Mapping[str, Any]) -> dict[str, Any]:
    """An action kind registered by its dotted path (see the next test)."""
    raise RuntimeError(f"lazy kind ran for {alert.rule} with {options['lazy']}")


def test_an_action_kind_registered_by_path_is_imported_on_first_use(
    sqlite_workspace: loopml.Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notify, "_ACTION_KINDS", dict(notify._ACTION_KINDS))
    register_action_kind("lazy", f"{__name__}:lazy_kind")
    config = load_rules([{"name": "r", "condition": "drift.share > 0.3", "action": {"lazy": 7}}])
    put(sqlite_workspace, 0, 0.5)
    (change,) = evaluate_alerts(sqlite_workspace, "churn", config, at=end(0))
    assert change.action is not None
    assert change.action["status"] == "failed"  # a failing action is recorded, not raised
    assert change.action["error"] == "RuntimeError: lazy kind ran for r with 7"
