"""The monitored time series and monitor cursors, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import math

import pytest

import loopml
from loopml.errors import ValidationError
from loopml.monitoring.series import Point, points, record, series
from loopml.store.repositories.monitoring import MonitorRepository

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def _point(window: int, name: str = "share", value: float = 0.1, **extra: object) -> Point:
    start = T0 + window * HOUR
    return Point("churn", 2, start, start + HOUR, "drift", name, value, **extra)  # type: ignore[arg-type]


def test_points_round_trip_and_filter_by_key_and_window(workspace: loopml.Workspace) -> None:
    record(workspace, [_point(w, value=w / 10) for w in range(5)])
    record(workspace, [_point(w, "age", 0.3, test="wasserstein", flagged=True) for w in range(5)])
    found = points(workspace, "churn", "drift.share", since=T0 + HOUR, until=T0 + 4 * HOUR)
    # windows ending in (01:00, 04:00]: those starting at 01:00, 02:00 and 03:00
    assert [p.value for p in found] == [0.1, 0.2, 0.3]
    assert found[0].start == T0 + HOUR and found[0].version == 2 and found[0].key == "drift.share"
    age = points(workspace, "churn", kind="drift", name="age")
    assert len(age) == 5 and all(p.flagged and p.test == "wasserstein" for p in age)
    frame = series(workspace, "churn", kind="drift")
    assert len(frame) == 10 and str(frame["start"].dt.tz) == "UTC"


def test_recording_a_window_again_replaces_its_point(workspace: loopml.Workspace) -> None:
    record(workspace, [_point(0, value=0.1, detail={"n": 5})])
    record(workspace, [_point(0, value=0.7, detail={"n": 9})])
    (only,) = points(workspace, "churn", "drift.share")
    assert only.value == 0.7 and only.detail == {"n": 9}


def test_nan_values_come_back_as_nan(workspace: loopml.Workspace) -> None:
    record(workspace, [_point(0, value=float("nan"), p_value=float("inf"))])
    (only,) = points(workspace, "churn", "drift.share")
    assert math.isnan(only.value) and only.p_value is None


def test_bad_points_and_keys_are_refused(workspace: loopml.Workspace) -> None:
    bad_kind = Point("churn", 1, T0, T0 + HOUR, "latency", "p99", 1.0)
    with pytest.raises(ValidationError, match="kind must be one of"):
        record(workspace, [_point(0), bad_kind])
    with pytest.raises(ValidationError, match="must end after it starts"):
        record(workspace, [Point("churn", 1, T0, T0, "drift", "share", 1.0)])
    assert points(workspace, "churn") == []  # nothing of the refused batch was stored
    with pytest.raises(ValidationError, match=r"drift\.share"):
        points(workspace, "churn", "share")


def test_one_open_alert_per_rule_and_model(workspace: loopml.Workspace) -> None:
    repo = MonitorRepository(workspace.db)
    fields = dict(series="drift.share", severity="warning", value=0.5, threshold=0.3,
                  message="drift", window_end=1)  # fmt: skip
    first, created = repo.open_alert(rule="drift", model="churn", **fields)  # type: ignore[arg-type]
    again, created_again = repo.open_alert(rule="drift", model="churn", **fields)  # type: ignore[arg-type]
    assert created and not created_again and again.alert_id == first.alert_id
    other, _ = repo.open_alert(rule="drift", model="fraud", **fields)  # type: ignore[arg-type]
    assert other.alert_id != first.alert_id
    assert repo.resolve_alert(first.alert_id) and not repo.resolve_alert(first.alert_id)
    reopened, created = repo.open_alert(rule="drift", model="churn", **fields)  # type: ignore[arg-type]
    assert created and reopened.alert_id != first.alert_id
    assert [a.state for a in repo.alerts(model="churn")] == ["firing", "resolved"]


def test_a_cursor_is_held_by_one_owner_until_its_lease_ends(workspace: loopml.Workspace) -> None:
    repo = MonitorRepository(workspace.db)
    assert repo.claim("m", "a", lease_ms=60_000)
    assert not repo.claim("m", "b", lease_ms=60_000)
    assert repo.claim("m", "a", lease_ms=60_000)  # renewal
    assert repo.advance("m", "a", 123, {"windows": 1})
    assert not repo.advance("m", "b", 456, {})
    cursor = repo.cursor("m")
    assert cursor is not None and cursor.position == 123 and cursor.state == {"windows": 1}
    assert repo.claim("expired", "a", lease_ms=-1) and repo.claim("expired", "b", lease_ms=60_000)
    repo.release("m", "a")
    assert repo.claim("m", "b", lease_ms=60_000)
