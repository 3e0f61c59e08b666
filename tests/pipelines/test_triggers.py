"""Triggers: a new dataset version, a monitoring alert (polled, or an alert rule's
``pipeline`` action), a manual call; each runs once per event, within its rate limit,
and records why."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pytest

import loopml
from loopml.errors import ConflictError, ValidationError
from loopml.pipelines.triggers import (
    Occurrence,
    add_trigger,
    fire,
    firings,
    get_trigger,
    list_triggers,
    poll_triggers,
    remove_trigger,
)
from loopml.store.repositories.monitoring import AlertRecord, MonitorRepository

HERE = "tests.pipelines.test_triggers"
UTC = dt.UTC


def record(ws: loopml.Workspace, occurrence: Occurrence) -> str:
    line = {"event": occurrence.event, "kind": occurrence.kind, "params": occurrence.params,
            "reason": occurrence.reason, "pid": os.getpid()}  # fmt: skip
    with open(occurrence.params["log"], "a") as log:
        log.write(json.dumps(line) + "\n")
    return f"run-{occurrence.firing_id}"


def _logged(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _ingest(ws: loopml.Workspace, rows: int) -> None:
    import pandas as pd

    ws.data.ingest(pd.DataFrame({"x": range(rows), "y": [i % 2 for i in range(rows)]}), "churn")


def _alert(ws: loopml.Workspace, model: str = "churn", rule: str = "drift") -> AlertRecord:
    alert, created = MonitorRepository(ws.db).open_alert(
        rule=rule, model=model, series="drift.share", severity="warning", value=0.6,
        threshold=0.3, message=f"{rule} on {model}: drift.share 0.6 > 0.3", window_end=0,
    )  # fmt: skip
    assert created
    return alert


# -- new dataset versions ---------------------------------------------------------------
def test_a_new_dataset_version_fires_once_with_its_reference(
    sqlite_workspace: loopml.Workspace, tmp_path: Path
) -> None:
    ws, log = sqlite_workspace, tmp_path / "runs.jsonl"
    _ingest(ws, 10)  # v1 exists before the trigger: not new
    add_trigger(ws, "on-data", f"py:{HERE}:record", on="dataset", dataset="churn",
                params={"log": str(log)}, data_param="data")  # fmt: skip
    assert poll_triggers(ws) == []
    _ingest(ws, 11)
    (firing,) = poll_triggers(ws)
    assert poll_triggers(ws) == []  # seen once
    assert (firing.event, firing.status) == ("dataset:churn@2", "succeeded")
    assert firing.reason["ref"] == "churn@2"
    assert firing.reason["content_hash"] == ws.data.version("churn@2").content_hash
    assert _logged(log)[0]["params"] == {"log": str(log), "data": "churn@2"}
    _ingest(ws, 12)
    _ingest(ws, 13)
    assert [f.event for f in poll_triggers(ws)] == ["dataset:churn@3", "dataset:churn@4"]
    assert [line["params"]["data"] for line in _logged(log)] == ["churn@2", "churn@3", "churn@4"]
    assert get_trigger(ws, "on-data").position == 4


def test_a_trigger_on_a_dataset_that_does_not_exist_yet_fires_on_its_first_version(
    sqlite_workspace: loopml.Workspace, tmp_path: Path
) -> None:
    log = tmp_path / "runs.jsonl"
    add_trigger(sqlite_workspace, "on-data", f"py:{HERE}:record", on="dataset",
                dataset="churn", params={"log": str(log)})  # fmt: skip
    assert poll_triggers(sqlite_workspace) == []
    _ingest(sqlite_workspace, 5)
    assert [f.event for f in poll_triggers(sqlite_workspace)] == ["dataset:churn@1"]


# -- rate limits and manual calls ---------------------------------------------------------
def test_the_rate_limit_suppresses_and_records_extra_firings(
    sqlite_workspace: loopml.Workspace, tmp_path: Path
) -> None:
    ws, log = sqlite_workspace, tmp_path / "runs.jsonl"
    add_trigger(ws, "by-hand", f"py:{HERE}:record", on="manual", params={"log": str(log)},
                max_runs=2, per="1h")  # fmt: skip
    t = dt.datetime(2026, 6, 1, 12, tzinfo=UTC)
    statuses = [fire(ws, "by-hand", note=f"try {i}", clock=lambda: t).status for i in range(3)]
    assert statuses == ["succeeded", "succeeded", "suppressed"]
    assert len(_logged(log)) == 2  # the suppressed firing ran nothing...
    suppressed = firings(ws, "by-hand")[0]
    assert (suppressed.status, suppressed.reason["note"]) == (
        "suppressed",
        "try 2",
    )  # ...but is kept
    later = t + dt.timedelta(minutes=61)
    assert fire(ws, "by-hand", clock=lambda: later).status == "succeeded"
    line = _logged(log)[0]
    assert line["kind"] == "manual"
    assert line["reason"]["note"] == "try 0"
    assert line["reason"]["by"]


def test_a_manual_event_key_runs_once(sqlite_workspace: loopml.Workspace, tmp_path: Path) -> None:
    log = tmp_path / "runs.jsonl"
    add_trigger(sqlite_workspace, "by-hand", f"py:{HERE}:record", on="manual",
                params={"log": str(log)})  # fmt: skip
    first = fire(sqlite_workspace, "by-hand", event="deploy-42", params={"extra": 1})
    assert first.run_id == f"run-{first.firing_id}"
    assert _logged(log)[0]["params"] == {"log": str(log), "extra": 1}
    with pytest.raises(ConflictError, match="deploy-42"):
        fire(sqlite_workspace, "by-hand", event="deploy-42")
    assert len(_logged(log)) == 1


# -- monitoring alerts --------------------------------------------------------------------
def test_an_alert_fires_its_trigger_and_is_the_recorded_reason(
    workspace: loopml.Workspace, tmp_path: Path
) -> None:
    log = tmp_path / "runs.jsonl"
    _alert(workspace, rule="old")  # fired before the trigger existed: not new
    add_trigger(workspace, "on-drift", f"py:{HERE}:record", on="alert", model="churn",
                rule="drift", params={"log": str(log)})  # fmt: skip
    other_model = _alert(workspace, model="fraud")
    fired = _alert(workspace)
    (firing,) = poll_triggers(workspace)
    assert poll_triggers(workspace) == []
    assert firing.event == f"alert:{fired.alert_id}"
    assert firing.reason["alert_id"] == fired.alert_id
    assert firing.reason["message"] == "drift on churn: drift.share 0.6 > 0.3"
    assert [line["reason"]["alert_id"] for line in _logged(log)] == [fired.alert_id]
    assert other_model.alert_id != fired.alert_id


def test_an_alert_rules_pipeline_action_runs_once_per_alert(
    sqlite_workspace: loopml.Workspace, tmp_path: Path
) -> None:
    from loopml.monitoring.notify import parse_action, run_action

    log = tmp_path / "runs.jsonl"
    action = parse_action(
        {"pipeline": f"py:{HERE}:record", "params": {"log": str(log)}, "max_runs": 1,
         "per": "1d"}, "Rule 'drift'",
    )  # fmt: skip
    assert action is not None and action.kind == "pipeline"
    first = _alert(sqlite_workspace)
    outcome = run_action(action, first)
    assert outcome["status"] == "ok"
    assert outcome["firing_status"] == "succeeded"
    assert outcome["trigger"] == "alert:drift"
    again = run_action(action, first)  # the same alert again (a retried action)
    assert again["firing"] is None
    MonitorRepository(sqlite_workspace.db).resolve_alert(first.alert_id)
    second = _alert(sqlite_workspace)
    assert run_action(action, second)["firing_status"] == "suppressed"  # 1 a day
    assert [line["reason"]["alert_id"] for line in _logged(log)] == [first.alert_id]
    assert [line["kind"] for line in _logged(log)] == ["action"]
    assert [t.kind for t in list_triggers(sqlite_workspace)] == ["action"]


def test_a_pipeline_action_that_cannot_import_is_refused_when_rules_load() -> None:
    from loopml.monitoring.notify import parse_action

    with pytest.raises(ValidationError, match=r"Rule 'drift'.*`target`.*cannot be imported"):
        parse_action({"pipeline": "py:no_such_module:retrain"}, "Rule 'drift'")
    with pytest.raises(ValidationError, match="unknown pipeline action option"):
        parse_action({"pipeline": f"py:{HERE}:record", "retries": 3}, "Rule 'drift'")


# -- bad input ------------------------------------------------------------------------------
def test_bad_trigger_definitions_name_the_field(sqlite_workspace: loopml.Workspace) -> None:
    ws, target = sqlite_workspace, f"py:{HERE}:record"
    with pytest.raises(ValidationError, match="`on` 'cron'"):
        add_trigger(ws, "t", target, on="cron")
    with pytest.raises(ValidationError, match="needs `dataset`"):
        add_trigger(ws, "t", target, on="dataset")
    with pytest.raises(ValidationError, match="`max_runs` must be a whole number"):
        add_trigger(ws, "t", target, on="manual", max_runs=0)
    with pytest.raises(ValidationError, match="A window is a number and a unit"):
        add_trigger(ws, "t", target, on="manual", max_runs=1, per="fortnight")
    with pytest.raises(ValidationError, match="`target` 'py:nowhere:f' cannot be imported"):
        add_trigger(ws, "t", "py:nowhere:f", on="manual")
    with pytest.raises(ValidationError, match="`params` must hold JSON values"):
        add_trigger(ws, "t", target, on="manual", params={"when": object()})
    assert list_triggers(ws) == []
    add_trigger(ws, "t", target, on="manual")
    assert remove_trigger(ws, "t") is True
    assert list_triggers(ws) == []


# -- real pipelines --------------------------------------------------------------------------
def _pipeline() -> Any:
    from loopml.pipelines import pipeline, step

    @step
    def rows(data: str) -> int:
        return len(data)

    @step
    def double(count: int) -> int:
        if count > 8:
            raise ValueError(f"{count} rows is too many")
        return 2 * count

    @pipeline
    def measure(data: str = "none") -> Any:
        return double(rows(data))

    return measure


measure = _pipeline()


def test_a_pipeline_target_runs_with_the_trigger_and_reason_recorded(
    sqlite_workspace: loopml.Workspace,
) -> None:
    from loopml.pipelines import get_run

    ws = sqlite_workspace
    _ingest(ws, 10)
    add_trigger(ws, "on-data", f"{HERE}:measure", on="dataset", dataset="churn",
                data_param="data")  # fmt: skip
    _ingest(ws, 11)
    (firing,) = poll_triggers(ws)
    assert firing.status == "succeeded"
    assert firing.run_id is not None
    run = get_run(ws, firing.run_id)
    assert run.status == "SUCCEEDED"
    assert run.params["data"] == "churn@2"
    assert run.trigger == "dataset:churn@2"
    assert run.reason == "trigger 'on-data': new dataset version churn@2"
    assert firing.result.result == 2 * len("churn@2")


def test_a_failed_pipeline_run_marks_the_firing_failed(
    sqlite_workspace: loopml.Workspace,
) -> None:
    from loopml.pipelines import get_run

    add_trigger(sqlite_workspace, "by-hand", f"{HERE}:measure", on="manual",
                params={"data": "far too long"})  # fmt: skip
    firing = fire(sqlite_workspace, "by-hand", note="try it")
    assert firing.status == "failed"
    assert firing.run_id is not None
    assert get_run(sqlite_workspace, firing.run_id).status == "FAILED"
    assert "12 rows is too many" in (firing.error or "")
    assert get_run(sqlite_workspace, firing.run_id).trigger == "manual:by-hand"
