"""ws.monitor end to end: a registered model's logged traffic judged against its reference."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pytest

import loopml
from loopml.errors import NotFoundError, ValidationError
from loopml.monitoring import parse_window
from loopml.serving.predlog import PredictionLog
from tests.evaluation._samples import binary_frame
from tests.registry._samples import trained

FEATURES = ["tenure", "spend", "region"]
RULES = {
    "rules": [
        {"name": "drift", "condition": "drift.share > 0.2", "severity": "warning"},
    ]
}


@pytest.fixture
def served(sqlite_workspace: loopml.Workspace) -> Any:
    """A registered version trained by ws.train (so it has a reference profile)."""
    result = trained(sqlite_workspace)
    return sqlite_workspace.registry.register(result, name="churn")


def _log(ws: loopml.Workspace, version: Any, frame: pd.DataFrame, prefix: str) -> list[str]:
    """Serves ``frame`` through the version's model and logs it, 50 rows a request."""
    model = ws.registry.load(version.uri)
    ids = []
    with PredictionLog(ws, flush_seconds=0.05) as log:
        for start in range(0, len(frame), 50):
            rows = frame.iloc[start : start + 50][FEATURES].reset_index(drop=True)
            request_id = f"{prefix}-{start}"
            log.log(
                model=version.name,
                version=version.version,
                request_id=request_id,
                inputs=rows,
                predictions=model.predict(rows),
                probabilities=model.predict_proba(rows),
                classes=list(model.classes),
                latency_ms=1.0,
            )
            ids.append(request_id)
    return ids


def _window() -> tuple[dt.datetime, dt.datetime]:
    now = dt.datetime.now(dt.UTC)
    return now - dt.timedelta(minutes=5), now + dt.timedelta(minutes=1)


def test_stable_traffic_shows_no_drift(sqlite_workspace: loopml.Workspace, served: Any) -> None:
    ws = sqlite_workspace
    _log(ws, served, binary_frame(2000, seed=7), "stable")
    result = ws.monitor.evaluate(served.uri, *_window(), rules=RULES)
    assert result.rows == 2000
    assert result.drift is not None and result.drift.drifted_features == []
    assert result.prediction_drift is not None and not result.prediction_drift.drifted
    assert result.firing == []
    shares = ws.monitor.series("churn", "drift.share")
    assert list(shares["value"]) == [0.0]


def test_a_shifted_feature_is_named_and_alerts(
    sqlite_workspace: loopml.Workspace, served: Any
) -> None:
    ws = sqlite_workspace
    shifted = binary_frame(2000, seed=8)
    shifted["spend"] = shifted["spend"] + 2.0  # two standard deviations
    _log(ws, served, shifted, "shifted")
    result = ws.monitor.evaluate(served.uri, *_window(), rules=RULES)
    assert result.drift is not None and result.drift.drifted_features == ["spend"]
    assert result.drift.share == pytest.approx(1 / 3)
    assert [c.status for c in result.firing] == ["fired"]
    # evaluating the same window again replaces its points and fires nothing new
    again = ws.monitor.evaluate(served.uri, result.start, result.end, rules=RULES)
    assert [c.status for c in again.alerts] == ["firing"]
    assert len(ws.monitor.alerts("churn")) == 1
    spend = ws.monitor.series("churn", kind="drift", name="spend")
    assert spend["flagged"].any() and spend["end"].nunique() == 1


def test_delayed_labels_fill_in_the_performance_of_a_window(
    sqlite_workspace: loopml.Workspace, served: Any
) -> None:
    ws = sqlite_workspace
    frame = binary_frame(400, seed=9)
    ids = _log(ws, served, frame, "labelled")
    start, end = _window()
    first = ws.monitor.evaluate(served.uri, start, end)
    assert first.performance is not None
    (window,) = first.performance.windows
    assert window.labelled == 0 and not window.complete
    # labels for the first half of the requests arrive later
    labels = pd.DataFrame(
        {
            "request_id": np.repeat(ids[:4], 50),
            "row": np.tile(np.arange(50), 4),
            "label": frame["churned"].to_numpy()[:200],
        }
    )
    ws.log_feedback_frame(labels)
    second = ws.monitor.evaluate(served.uri, start, end)
    assert second.performance is not None
    (window,) = second.performance.windows
    assert window.labelled == 200 and window.coverage == pytest.approx(0.5) and window.complete
    assert window.start == start and window.end == end
    accuracy = ws.monitor.series("churn", "performance.accuracy")
    assert len(accuracy) == 1 and 0.5 < accuracy["value"].iloc[0] <= 1.0
    coverage = ws.monitor.series("churn", "performance.coverage")
    assert list(coverage["value"]) == [0.5]  # the later evaluation replaced the first


def test_an_empty_window_notes_it_and_resolves_alerts(
    sqlite_workspace: loopml.Workspace, served: Any
) -> None:
    ws = sqlite_workspace
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    result = ws.monitor.evaluate(served.uri, start, start + dt.timedelta(hours=1), rules=RULES)
    assert result.rows == 0 and result.drift is None
    assert "No logged predictions" in result.notes[0]


def test_a_version_without_reference_says_how_to_set_one(
    sqlite_workspace: loopml.Workspace,
) -> None:
    from sklearn.linear_model import LogisticRegression

    frame = binary_frame(100)
    model = LogisticRegression().fit(frame[["tenure", "spend"]], frame["churned"])
    version = sqlite_workspace.registry.register(model, "plain")
    with pytest.raises(NotFoundError, match="set_reference"):
        sqlite_workspace.monitor.evaluate(version.uri, *_window())


def test_bad_windows_are_refused(sqlite_workspace: loopml.Workspace, served: Any) -> None:
    start, end = _window()
    with pytest.raises(ValidationError, match="end after it starts"):
        sqlite_workspace.monitor.evaluate(served.uri, end, start)
    for bad in ("1x", "", "-1h", "h"):
        with pytest.raises(ValidationError, match="window"):
            parse_window(bad)
    assert parse_window("90m") == dt.timedelta(minutes=90)


def test_run_evaluates_each_closed_window_once_across_restarts(
    sqlite_workspace: loopml.Workspace, served: Any
) -> None:
    ws = sqlite_workspace
    _log(ws, served, binary_frame(300, seed=3), "run")
    now = dt.datetime.now(dt.UTC)
    clock = {"now": now + dt.timedelta(minutes=3)}
    seen: list[tuple[dt.datetime, int]] = []

    def once() -> Any:
        sleeps: list[float] = []
        return ws.monitor.run(
            served.uri,
            "1m",
            catch_up=10,
            clock=lambda: clock["now"],
            sleep=sleeps.append,
            stop=lambda: bool(sleeps),
            on_window=lambda r: seen.append((r.start, r.rows)),
            owner="test",
        )

    first = once()
    assert first == 10  # the first run starts catch_up windows back
    assert sum(rows for _, rows in seen) == 300  # every logged row in exactly one window
    assert once() == 0  # a restart at the same time has nothing due
    clock["now"] += dt.timedelta(minutes=2)
    assert once() == 2
    starts = [start for start, _ in seen]
    assert len(starts) == len(set(starts)) == 12
    # another monitor cannot take the cursor while it is leased
    from loopml.store.repositories.monitoring import MonitorRepository

    assert MonitorRepository(ws.db).claim("churn:1m", "someone", 60_000)
    waits: list[float] = []
    assert ws.monitor.run(served.uri, "1m", sleep=waits.append, stop=lambda: bool(waits)) == 0
    assert waits  # it waited for the lease instead of evaluating


def test_check_by_count_judges_the_last_n_predictions(
    sqlite_workspace: loopml.Workspace, served: Any
) -> None:
    ws = sqlite_workspace
    _log(ws, served, binary_frame(600, seed=11), "old")
    shifted = binary_frame(400, seed=12)
    shifted["spend"] = shifted["spend"] + 3.0
    _log(ws, served, shifted, "new")
    result = ws.monitor.check(served.uri, last=400)
    assert result.rows == 400
    assert result.drift is not None and result.drift.drifted_features == ["spend"]
    assert result.drift.share == pytest.approx(1 / 3)
    with pytest.raises(ValidationError, match="at least 1"):
        ws.monitor.last_rows(served.uri, 0)


def test_drift_takes_a_model_reference_and_a_dataset_reference(
    sqlite_workspace: loopml.Workspace, served: Any
) -> None:
    ws = sqlite_workspace
    moved = binary_frame(1500, seed=13)
    moved["tenure"] = moved["tenure"] * 3
    ws.data.ingest(moved, name="incoming")
    report = ws.monitor.drift(served.uri, "incoming")
    assert report.drifted_features == ["tenure"]
    assert ws.monitor.drift(served, "incoming").drifted_features == ["tenure"]
