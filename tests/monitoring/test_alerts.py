"""Alert rules: parsing, and evaluation window by window over the stored series."""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path
from typing import Any

import pytest

import loopml
from loopml.errors import NotFoundError, ValidationError
from loopml.monitoring.alerts import (
    AlertChange,
    AlertRule,
    Condition,
    evaluate_alerts,
    load_rules,
    parse_condition,
    parse_duration,
)
from loopml.monitoring.notify import ActionSpec, CallableNotifier, WebhookNotifier
from loopml.monitoring.series import Point, record
from loopml.store.repositories.monitoring import MonitorRepository

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def end(window: int) -> dt.datetime:
    """The end of hourly window ``window`` (window 0 is [T0, T0 + 1h))."""
    return T0 + (window + 1) * HOUR


def put(
    ws: loopml.Workspace,
    window: int,
    value: float,
    key: str = "drift.share",
    test: str = "",
    version: int | None = None,
    model: str = "churn",
) -> None:
    kind, _, name = key.partition(".")
    start = T0 + window * HOUR
    record(ws, [Point(model, version, start, start + HOUR, kind, name, value, test)])


def statuses(changes: list[AlertChange]) -> list[tuple[str, str]]:
    return [(c.rule, c.status) for c in changes]


# -- parsing -----------------------------------------------------------------------------
YAML = """
rules:
  - name: feature-drift
    condition: drift.share > 0.3 for 2 windows
    severity: critical
    cooldown: 1h30m
    notify: [log, webhook]
    action: {command: ["loopml", "pipeline", "run", "retrain"], timeout: 60}
  - name: low-auc
    condition: performance.roc_auc < 0.75
  - name: slow
    condition: "health.p99_ms >= 2e2"
    test: server-a
notifiers:
  webhook: {type: webhook, url: "http://127.0.0.1:9000/hook", timeout: 5, retries: 3}
"""


def test_load_rules_reads_every_field_of_the_yaml() -> None:
    config = load_rules(YAML)
    drift, auc, slow = config.rules
    assert drift.condition == Condition("drift.share", ">", 0.3, 2)
    assert (drift.severity, drift.cooldown, drift.notify) == (
        "critical", dt.timedelta(minutes=90), ("log", "webhook"),
    )  # fmt: skip
    assert drift.action == ActionSpec(
        "command", {"command": ["loopml", "pipeline", "run", "retrain"], "timeout": 60}
    )
    # Defaults: a warning to the log, no cool-down, no action.
    assert (auc.condition.series, auc.condition.op, auc.condition.threshold) == (
        "performance.roc_auc", "<", 0.75,
    )  # fmt: skip
    assert (auc.severity, auc.notify, auc.cooldown, auc.action) == (
        "warning", ("log",), dt.timedelta(0), None,
    )  # fmt: skip
    assert (slow.condition.threshold, slow.condition.op, slow.test) == (200.0, ">=", "server-a")
    webhook = config.notifiers["webhook"]
    assert isinstance(webhook, WebhookNotifier)
    assert (webhook.url, webhook.timeout, webhook.retries) == ("http://127.0.0.1:9000/hook", 5, 3)
    assert str(drift.condition) == "drift.share > 0.3 for 2 windows"
    assert json.loads(json.dumps(drift.as_dict()))["cooldown_s"] == 5400


def test_load_rules_reads_a_file_a_list_of_dicts_and_rule_objects(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text(YAML)
    assert [r.name for r in load_rules(path).rules] == ["feature-drift", "low-auc", "slow"]
    assert [r.name for r in load_rules(str(path)).rules] == ["feature-drift", "low-auc", "slow"]

    def hook(alert: Any) -> None:
        return None

    config = load_rules(
        [
            {"name": "a", "condition": "concept.adwin == 1", "action": hook},
            AlertRule("b", "health.error_rate > 0.01", cooldown=600, notify="log"),
        ]
    )
    a, b = config.rules
    assert a.action == ActionSpec("callable", {"function": hook})
    assert (b.cooldown, b.notify) == (dt.timedelta(minutes=10), ("log",))
    # A notifier that only Python can build, named by YAML rules.
    config = load_rules(
        "rules: [{name: p, condition: drift.share > 0.5, notify: [pager]}]",
        notifiers={"pager": print},
    )
    assert isinstance(config.notifiers["pager"], CallableNotifier)
    with pytest.raises(NotFoundError, match="No alert rules file"):
        load_rules(tmp_path / "missing.yaml")


def rule_yaml(**fields: str) -> str:
    body = {"name": "r1", "condition": "drift.share > 0.3", **fields}
    lines = "\n".join(f"    {key}: {value}" for key, value in body.items())
    return f"rules:\n  - {lines.strip()}\n"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (rule_yaml(condition="drfit.share > 0.3"), ["'r1'", "'drfit'", "did you mean drift.share"]),
        (rule_yaml(condition="drift > 0.3"), ["'r1'", "<kind>.<name>"]),
        (rule_yaml(condition="drift.share => 0.3"), ["'r1'", "'=>'", "> >= < <= == !="]),
        (rule_yaml(condition="drift.share ~ 0.3"), ["'r1'", "'~'", "not an operator"]),
        (rule_yaml(condition="drift.share > high"), ["'r1'", "'high'", "not a number"]),
        (rule_yaml(condition="drift.share >"), ["'r1'", "no number"]),
        (rule_yaml(condition="drift.share > 0.3 for two windows"), ["'r1'", "for <N> windows"]),
        (rule_yaml(condition="drift.share > 0.3 for 0 windows"), ["'r1'", "1 or more"]),
        (rule_yaml(cooldown="1 hour"), ["'r1'", "cooldown", "not a duration", "1h"]),
        (rule_yaml(cooldown="-5m"), ["'r1'", "not a duration"]),
        (rule_yaml(severity="high"), ["'r1'", "info, warning, critical"]),
        (rule_yaml(notify="[pager]"), ["'r1'", "'pager'", "notifiers:"]),
        (rule_yaml(threshold="3"), ["'r1'", "unknown key(s) ['threshold']", "condition:"]),
        (rule_yaml(action="{script: run.sh}"), ["'r1'", "exactly one action kind", "command"]),
        (rule_yaml(action="{command: []}"), ["'r1'", "non-empty list"]),
        (rule_yaml(action="{command: [x], timeout: 0}"), ["'r1'", "timeout"]),
        (rule_yaml(action="{kind: retrain}"), ["'r1'", "unknown action kind 'retrain'"]),
        ("rules:\n  - {name: r1}\n", ["'r1'", "needs `condition`"]),
        ("rules:\n  - {condition: drift.share > 1}\n", ["#1", "needs `name`"]),
        (
            "rules:\n  - {name: r1, condition: drift.share > 1}\n  - {name: r1, condition: "
            "drift.share > 2}\n",
            ["'r1'", "own name"],
        ),
        ("rule:\n  - {name: r1, condition: drift.share > 1}\n", ["['rule']", "`rules:`"]),
        ("rules: {name: r1}\n", ["`rules:` list"]),
        (
            "rules: [{name: r1, condition: drift.share > 1, notify: [hook]}]\nnotifiers:\n"
            "  hook: {type: webhook}\n",
            ["'hook'", "url"],
        ),
        (
            "rules: [{name: r1, condition: drift.share > 1}]\nnotifiers:\n  hook: {type: sms}\n",
            ["'hook'", "type: webhook"],
        ),
        ("rules: [{name: r1\n", ["not valid YAML", "line"]),
    ],
)
def test_load_rules_says_what_is_wrong_and_what_to_write(source: str, expected: list[str]) -> None:
    with pytest.raises(ValidationError) as caught:
        load_rules(source)
    for fragment in expected:
        assert fragment in str(caught.value)


def test_parse_condition_and_duration_edge_cases() -> None:
    assert parse_condition("health.p99_ms>200") == Condition("health.p99_ms", ">", 200.0)
    assert parse_condition("drift.age.log != -1.5 for 1 window").series == "drift.age.log"
    assert parse_condition("performance.auc <= 0.7 FOR 3 WINDOWS").windows == 3
    with pytest.raises(ValidationError, match="not a number"):
        parse_condition("drift.share > nan")
    assert parse_duration("30s") == dt.timedelta(seconds=30)
    assert parse_duration("1d") == dt.timedelta(days=1)
    assert parse_duration("5m") == dt.timedelta(minutes=5)
    assert parse_duration(0) == dt.timedelta(0)


# -- evaluation --------------------------------------------------------------------------
def test_fires_after_exactly_n_windows_and_a_break_restarts_the_count(
    workspace: loopml.Workspace,
) -> None:
    config = load_rules([{"name": "drift", "condition": "drift.share > 0.3 for 3 windows"}])
    seen = []
    for window, value in enumerate([0.5, 0.6, 0.1, 0.4, 0.7, 0.9, 0.8]):
        put(workspace, window, value)
        seen.append([c.status for c in evaluate_alerts(workspace, "churn", config, at=end(window))])
    # The third window in a row above 0.3 is window 5 (0.4, 0.7, 0.9): 0.1 broke the count.
    assert seen == [[], [], [], [], [], ["fired"], ["firing"]]
    (alert,) = MonitorRepository(workspace.db).alerts(model="churn")
    assert (alert.rule, alert.state, alert.value, alert.threshold) == ("drift", "firing", 0.9, 0.3)
    assert alert.window_end == int(end(5).timestamp() * 1000)


def test_a_rule_without_a_point_in_the_window_does_nothing(
    sqlite_workspace: loopml.Workspace,
) -> None:
    config = load_rules([{"name": "drift", "condition": "drift.share > 0.3"},
                         {"name": "auc", "condition": "performance.auc < 0.7"}])  # fmt: skip
    put(sqlite_workspace, 0, 0.9)
    put(sqlite_workspace, 1, 0.2, key="performance.auc")
    # Window 1 has an AUC point but no drift point: only the AUC rule judges it.
    assert statuses(evaluate_alerts(sqlite_workspace, "churn", config, at=end(1))) == [
        ("auc", "fired")
    ]
    assert evaluate_alerts(sqlite_workspace, "churn", config, at=end(7)) == []
    assert evaluate_alerts(sqlite_workspace, "other-model", config, at=end(0)) == []
    # A NaN point is no value either.
    put(sqlite_workspace, 2, float("nan"))
    assert evaluate_alerts(sqlite_workspace, "churn", config.rules[:1], at=end(2)) == []


def test_re_evaluating_a_window_raises_one_alert_notified_once(
    sqlite_workspace: loopml.Workspace,
) -> None:
    told: list[str] = []
    acted: list[int] = []
    config = load_rules(
        [
            {
                "name": "drift",
                "condition": "drift.share > 0.3",
                "notify": ["rec"],
                "action": lambda alert: acted.append(alert.alert_id),
            }
        ],
        notifiers={"rec": lambda change: told.append(change.status)},
    )
    put(sqlite_workspace, 0, 0.5)
    first = evaluate_alerts(sqlite_workspace, "churn", config, at=end(0))
    again = evaluate_alerts(sqlite_workspace, "churn", config, at=end(0))
    assert [c.status for c in first + again] == ["fired", "firing"]
    assert told == ["fired"]
    assert acted == [first[0].alert.alert_id]  # type: ignore[union-attr]
    assert len(MonitorRepository(sqlite_workspace.db).alerts()) == 1


def test_replaying_windows_after_a_resolution_raises_nothing_new(
    sqlite_workspace: loopml.Workspace,
) -> None:
    config = load_rules([{"name": "drift", "condition": "drift.share > 0.3"}])
    for window, value in enumerate([0.5, 0.1]):
        put(sqlite_workspace, window, value)
    seen = [
        [c.status for c in evaluate_alerts(sqlite_workspace, "churn", config, at=end(w))]
        for w in (0, 1, 0, 1)  # a monitor restarted from an old cursor replays both windows
    ]
    assert seen == [["fired"], ["resolved"], [], []]
    assert len(MonitorRepository(sqlite_workspace.db).alerts()) == 1


def test_two_evaluators_of_one_window_raise_one_alert(workspace: loopml.Workspace) -> None:
    settings = workspace.settings
    other = loopml.Workspace.open(settings.home, db_url=settings.db_url)
    told: list[str] = []
    config = load_rules(
        [{"name": "drift", "condition": "drift.share > 0.3", "notify": ["rec"]}],
        notifiers={"rec": lambda change: told.append(change.status)},
    )
    put(workspace, 0, 0.5)
    barrier = threading.Barrier(2)
    results: list[list[AlertChange]] = []

    errors: list[BaseException] = []

    def evaluate(ws: loopml.Workspace) -> None:
        barrier.wait()
        try:
            results.append(evaluate_alerts(ws, "churn", config, at=end(0)))
        except BaseException as error:
            errors.append(error)

    try:
        threads = [threading.Thread(target=evaluate, args=(ws,)) for ws in (workspace, other)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        other.close()
    assert errors == []
    assert sorted(c.status for changes in results for c in changes) == ["fired", "firing"]
    assert told == ["fired"]
    assert len(MonitorRepository(workspace.db).alerts(model="churn")) == 1


def test_cooldown_suppresses_a_new_alert_until_it_has_passed(
    sqlite_workspace: loopml.Workspace,
) -> None:
    config = load_rules([{"name": "drift", "condition": "drift.share > 0.3", "cooldown": "3h"}])
    seen = []
    for window, value in enumerate([0.5, 0.1, 0.6, 0.6, 0.1, 0.7]):
        put(sqlite_workspace, window, value)
        seen += [
            c.status for c in evaluate_alerts(sqlite_workspace, "churn", config, at=end(window))
        ]
    # Fired at window 0; window 2 is 2 h later (suppressed), window 3 is 3 h later (fires).
    # Window 5 is 2 h after window 3's alert: suppressed again.
    assert seen == ["fired", "resolved", "suppressed", "fired", "resolved", "suppressed"]
    alerts = MonitorRepository(sqlite_workspace.db).alerts(model="churn")
    assert [a.window_end for a in alerts] == [int(end(w).timestamp() * 1000) for w in (3, 0)]


def test_an_alert_resolves_when_its_condition_clears_and_resolution_is_notified(
    workspace: loopml.Workspace,
) -> None:
    told: list[tuple[str, str]] = []
    config = load_rules(
        [{"name": "auc", "condition": "performance.auc < 0.75", "notify": ["rec", "log"]}],
        notifiers={"rec": lambda change: told.append((change.status, change.alert.state))},
    )
    changes = []
    for window, value in enumerate([0.80, 0.70, 0.72, 0.74, 0.79]):
        put(workspace, window, value, key="performance.auc")
        changes += evaluate_alerts(workspace, "churn", config, at=end(window))
    assert [(c.status, c.value) for c in changes] == [
        ("fired", 0.70), ("firing", 0.72), ("firing", 0.74), ("resolved", 0.79),
    ]  # fmt: skip
    assert told == [("fired", "firing"), ("resolved", "resolved")]
    resolved = changes[-1].alert
    assert resolved is not None and resolved.state == "resolved"
    assert resolved.resolved_at is not None and resolved.notify_attempts == 4  # 2 notifiers x 2
    assert MonitorRepository(workspace.db).alerts(state="firing") == []
    # The change prints as JSON.
    printed = json.loads(json.dumps(changes[-1].as_dict()))
    assert printed["alert"]["state"] == "resolved"
    assert printed["window_end"] == end(4).isoformat()


def test_an_older_window_neither_resolves_nor_refires(sqlite_workspace: loopml.Workspace) -> None:
    config = load_rules([{"name": "drift", "condition": "drift.share > 0.3"}])
    for window, value in enumerate([0.5, 0.1, 0.6]):
        put(sqlite_workspace, window, value)
    assert statuses(evaluate_alerts(sqlite_workspace, "churn", config, at=end(2))) == [
        ("drift", "fired")
    ]
    # A backfill of windows 1 (clear) and 0 (over) changes nothing about the newer alert.
    assert evaluate_alerts(sqlite_workspace, "churn", config, at=end(1)) == []
    assert evaluate_alerts(sqlite_workspace, "churn", config, at=end(0)) == []
    assert len(MonitorRepository(sqlite_workspace.db).alerts(state="firing")) == 1


def test_health_series_are_combined_across_server_instances(
    sqlite_workspace: loopml.Workspace,
) -> None:
    ws = sqlite_workspace
    for instance, p99, rps in (("server-a", 150.0, 60.0), ("server-b", 250.0, 60.0)):
        put(ws, 0, p99, key="health.p99_ms", test=instance, version=2)
        put(ws, 0, rps, key="health.throughput_rps", test=instance, version=2)
    config = load_rules(
        [
            {"name": "slow", "condition": "health.p99_ms > 200"},
            {"name": "slow-a", "condition": "health.p99_ms > 200", "test": "server-a"},
            {"name": "busy", "condition": "health.throughput_rps > 100"},
            {"name": "idle", "condition": "health.throughput_rps < 100"},
        ]
    )
    changes = {c.rule: c for c in evaluate_alerts(ws, "churn", config, at=end(0))}
    # Latency takes the slowest instance (250), throughput the sum (60 + 60 = 120): each
    # instance alone would be "idle" below 100 requests a second.
    assert {name: (c.status, c.value) for name, c in changes.items()} == {
        "slow": ("fired", 250.0), "busy": ("fired", 120.0),
    }  # fmt: skip


def test_any_drift_test_or_version_can_fire_a_feature_rule(
    sqlite_workspace: loopml.Workspace,
) -> None:
    ws = sqlite_workspace
    put(ws, 0, 0.05, key="drift.age", test="ks")
    put(ws, 0, 0.40, key="drift.age", test="psi")
    put(ws, 0, 0.90, key="performance.auc", version=1)
    put(ws, 0, 0.60, key="performance.auc", version=2)
    config = load_rules(
        [
            {"name": "age", "condition": "drift.age > 0.2"},
            {"name": "age-ks", "condition": "drift.age > 0.2", "test": "ks"},
            {"name": "auc", "condition": "performance.auc < 0.75"},
        ]
    )
    changes = evaluate_alerts(ws, "churn", config, at=end(0))
    assert [(c.rule, c.status, c.value) for c in changes] == [
        ("age", "fired", 0.40), ("auc", "fired", 0.60),
    ]  # fmt: skip


def test_actions_given_at_evaluation_replace_the_rules_own(
    sqlite_workspace: loopml.Workspace,
) -> None:
    called: list[str] = []
    config = load_rules([{"name": "drift", "condition": "drift.share > 0.3"}])
    put(sqlite_workspace, 0, 0.5)
    with pytest.raises(NotFoundError, match="No alert rule 'nope'"):
        evaluate_alerts(sqlite_workspace, "churn", config, at=end(0), actions={"nope": print})
    (change,) = evaluate_alerts(
        sqlite_workspace, "churn", config, at=end(0),
        actions={"drift": lambda alert: called.append(alert.rule)},
    )  # fmt: skip
    assert called == ["drift"]
    assert change.action is not None and change.action["status"] == "ok"
    assert change.alert is not None and change.alert.action == change.action
