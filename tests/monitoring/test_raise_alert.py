"""``ws.monitor.raise_alert``: an alert raised by hand (a stopped retraining run), one open
per rule and model, told to its notifiers and listed with the others."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import loopml
from loopml.errors import ValidationError


def test_a_raised_alert_is_stored_notified_and_raised_again_in_place(tmp_path: Path) -> None:
    told: list[Any] = []
    with loopml.Workspace.open(tmp_path / "home") as ws:
        first = ws.monitor.raise_alert(
            "churn",
            "ct-gate-failed",
            "the gate failed",
            details={"gate_id": "g1"},
            notify={"mine": told.append},
        )
        again = ws.monitor.raise_alert(
            "churn", "ct-gate-failed", "the gate failed again", notify=[told.append, "log"]
        )
        other = ws.monitor.raise_alert("churn", "ct-awaiting-approval", "approve", severity="info")
        listed = ws.monitor.alerts("churn", "firing")

    assert again.alert_id == first.alert_id != other.alert_id
    assert (again.state, again.severity, again.message) == (
        "firing",
        "critical",
        "the gate failed again",
    )
    assert first.action == {"kind": "raised", "details": {"gate_id": "g1"}}
    assert first.notified_at is not None and again.notify_attempts == 3  # 1, then 1 + log
    assert [(c.status, c.message) for c in told] == [
        ("fired", "the gate failed"),
        ("firing", "the gate failed again"),
    ]
    assert {a.rule for a in listed} == {"ct-gate-failed", "ct-awaiting-approval"}


def test_bad_input_is_refused_before_anything_is_stored(tmp_path: Path) -> None:
    with loopml.Workspace.open(tmp_path / "home") as ws:
        with pytest.raises(ValidationError, match="severity 'urgent' is unknown"):
            ws.monitor.raise_alert("churn", "r", "m", severity="urgent")
        with pytest.raises(ValidationError, match="needs `message` as text"):
            ws.monitor.raise_alert("churn", "r", " ")
        with pytest.raises(ValidationError, match="Notifier 'webhook' needs a `url`"):
            ws.monitor.raise_alert("churn", "r", "m", notify=[{"type": "webhook"}])
        assert ws.monitor.alerts() == []
