"""The continuous-training pipeline of a project file: ingest, train, evaluate, gate against
the alias's holder, register, approval, canary through a real server, promote; stopped
runs say why and raise an alert; alert rules and dataset triggers start it."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.pipelines import (
    ContinuousTraining,
    PipelineRun,
    add_trigger,
    get_run,
    poll_triggers,
    resume,
    run_ct,
)
from loopml.pipelines.dag import load_pipeline
from tests.servers import in_background, serve_in_thread

MODEL = "cancer"
PROJECT: dict[str, Any] = {
    "model": MODEL,
    "data": {
        "name": "cancer",
        "split": {
            "by": "stratified",
            "seed": 7,
            "fractions": {"train": 0.6, "valid": 0.2, "test": 0.2},
        },
    },
    "train": {
        "target": "target",
        "estimator": "sklearn.linear_model.LogisticRegression",
        "params": {"max_iter": 5000},
    },
    "gate": {"policy": {"checks": ["roc_auc >= 0.9", "roc_auc >= champion.roc_auc - 0.05"]}},
    "deploy": {"alias": "production"},
}


def cancer(shift: float = 1.0, seed: int | None = None) -> pd.DataFrame:
    """The breast cancer data; ``shift`` rescales the size features (a recalibrated
    scanner), ``seed`` draws 90% of the rows (a new batch)."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    if seed is not None:
        frame = frame.sample(frac=0.9, random_state=seed).reset_index(drop=True)
    sizes = ["mean radius", "mean perimeter", "mean area"]
    return frame.assign(**{name: frame[name] * shift for name in sizes})


def project(folder: Path, **sections: Any) -> Path:
    """Writes loopml.yaml: :data:`PROJECT` with ``sections`` merged into its sections."""
    data = {
        key: dict(value) if isinstance(value, dict) else value for key, value in PROJECT.items()
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    path = folder / "loopml.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[loopml.Workspace]:
    """A workspace holding cancer@1, and ./loopml.yaml (the tests run in tmp_path)."""
    with loopml.Workspace.open(tmp_path / "home") as workspace:
        workspace.data.ingest(cancer(), name="cancer")
        project(tmp_path)
        yield workspace


def holder(ws: loopml.Workspace) -> int | None:
    return ws.registry.model(MODEL).aliases.get("production")


def statuses(run: PipelineRun) -> dict[str, str]:
    return {s.step: s.status for s in run.steps}


def firing(ws: loopml.Workspace, rule: str) -> list[Any]:
    return [a for a in ws.monitor.alerts(MODEL, "firing") if a.rule == rule]


# -- the path of a good model ----------------------------------------------------------------
def test_the_first_run_registers_and_promotes_v1_without_a_champion(ws: loopml.Workspace) -> None:
    run = run_ct(ws, reason="first model")

    assert run.status == "SUCCEEDED", run.error
    assert list(statuses(run)) == ["ingest", "train", "evaluate", "gate", "register", "promote"]
    assert run.result == {
        "model": f"models:/{MODEL}/1",
        "alias": "production",
        "version": 1,
        "previous": None,
        "moved": True,
    }
    assert holder(ws) == 1
    [verdict] = ws.registry.lineage(f"models:/{MODEL}/1").gates
    assert verdict["passed"] and verdict["champion_run_id"] is None and verdict["checks"] == 1
    assert run.pipeline == "ct" and run.target == f"ct:{Path('loopml.yaml').resolve()}"
    assert run.params["project"]["model"] == MODEL  # the run keeps its configuration
    evaluation = run.step("evaluate").outputs
    assert evaluation is not None and evaluation["value"]["part"] == "test"
    held_out = ws.data.split(
        "cancer@1", "stratified", PROJECT["data"]["split"]["fractions"], seed=7, column="target"
    )["test"]
    assert evaluation["value"]["rows"] == len(held_out)

    again = run_ct(ws)  # the same data: the model it trained before, nothing moves
    assert statuses(again)["train"] == "CACHED" and again.result["moved"] is False
    assert len(ws.registry.versions(MODEL)) == 1


def test_a_run_on_new_data_promotes_v2_and_its_lineage_shows_the_run_and_why(
    ws: loopml.Workspace,
) -> None:
    run_ct(ws).raise_for_status()
    new = ws.data.ingest(cancer(shift=1.1, seed=1), name="cancer")
    run = run_ct(ws, reason=f"new data {new.ref}").raise_for_status()

    assert holder(ws) == 2 and run.result["previous"] == 1
    lineage = ws.registry.lineage(f"models:/{MODEL}/2")
    assert lineage.pipeline is not None
    assert lineage.pipeline["run_id"] == run.run_id and lineage.pipeline["pipeline"] == "ct"
    assert lineage.pipeline["reason"] == "new data cancer@2" and lineage.pipeline["step"] == "train"
    assert [d["ref"] for d in lineage.datasets] == ["cancer@2", "cancer@2"]  # train, valid
    assert lineage.model["parent"] == f"models:/{MODEL}/1"  # retrained from the champion
    [verdict] = lineage.gates
    assert verdict["passed"] and verdict["champion_run_id"] is not None and verdict["checks"] == 2
    [event] = [e for e in ws.registry.history(MODEL, "production") if e.to_version == 2]
    assert event.reason == f"continuous training run {run.run_id[:8]}: new data cancer@2"


# -- stopped runs ------------------------------------------------------------------------------
def test_a_failed_gate_stops_the_run_raises_an_alert_and_leaves_the_alias(
    ws: loopml.Workspace, tmp_path: Path
) -> None:
    run_ct(ws).raise_for_status()
    ws.data.ingest(cancer(seed=2), name="cancer")
    project(tmp_path, train={"estimator": "sklearn.dummy.DummyClassifier", "params": {}})
    run = run_ct(ws, reason="nightly")

    assert run.status == "FAILED"
    assert statuses(run) == {
        "ingest": "SUCCEEDED",
        "train": "SUCCEEDED",
        "evaluate": "SUCCEEDED",
        "gate": "FAILED",
        "register": "SKIPPED",
        "promote": "SKIPPED",
    }
    assert run.error is not None and "GateFailedError" in run.error
    assert "failed roc_auc >= 0.9" in run.error and f"@production stays on models:/{MODEL}/1" in (
        run.error
    )
    assert holder(ws) == 1 and len(ws.registry.versions(MODEL)) == 1
    [alert] = firing(ws, "ct-gate-failed")
    assert alert.severity == "critical" and run.run_id[:8] in alert.message
    assert alert.notified_at is not None  # told to the log notifier
    assert alert.action is not None and alert.action["details"]["pipeline_run"] == run.run_id
    assert "raised alert" in (run.step("gate").logs or "")

    project(tmp_path)  # a good estimator again: promoted, and the alert resolves
    run_ct(ws).raise_for_status()
    assert holder(ws) == 2 and firing(ws, "ct-gate-failed") == []


def test_a_run_awaits_approval_and_resume_promotes_once_approved(
    ws: loopml.Workspace, tmp_path: Path
) -> None:
    project(tmp_path, deploy={"approvals": 1})
    waiting = run_ct(ws)

    assert waiting.status == "WAITING" and statuses(waiting)["approval"] == "WAITING"
    assert statuses(waiting)["promote"] == "PENDING" and holder(ws) is None
    assert waiting.step("approval").attempts == 1 and waiting.step("approval").traceback is None
    assert waiting.error is not None and "awaiting approval" in waiting.error
    assert f"`loopml models approve {MODEL} 1 --alias production`" in waiting.error
    assert f"`loopml pipeline resume {waiting.run_id[:8]}`" in waiting.error
    [alert] = firing(ws, "ct-awaiting-approval")
    assert alert.severity == "info"

    still = resume(ws, waiting.run_id)  # nobody approved yet
    assert still.status == "WAITING" and "awaiting approval" in (still.error or "")

    ws.registry.approve(MODEL, 1, "production", comment="looks right")
    done = resume(ws, still.run_id)
    assert done.status == "SUCCEEDED", done.error
    assert statuses(done) == {
        "ingest": "CACHED",
        "train": "CACHED",
        "evaluate": "CACHED",
        "gate": "CACHED",
        "register": "CACHED",
        "approval": "SUCCEEDED",
        "promote": "SUCCEEDED",
    }
    assert holder(ws) == 1 and firing(ws, "ct-awaiting-approval") == []
    assert done.resumed_from == still.run_id


# -- what starts it ----------------------------------------------------------------------------
def test_an_alert_rules_pipeline_action_retrains_with_the_alert_as_its_reason(
    ws: loopml.Workspace, tmp_path: Path
) -> None:
    from loopml.serving import score

    run_ct(ws).raise_for_status()
    # Traffic from a recalibrated scanner is logged, then monitoring judges its window.
    shifted = cancer(shift=1.4).drop(columns="target")
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    score(ws, f"models:/{MODEL}@production", shifted, tmp_path / "scores.parquet")
    end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    ws.data.ingest(cancer(shift=1.4, seed=3), name="cancer")  # labelled data of the new kind
    rules = {
        "rules": [
            {
                "name": "input-drift",
                "condition": "drift.share > 0.05",
                "action": {"pipeline": "ct", "max_runs": 1, "per": "1d"},
            }
        ]
    }
    window = ws.monitor.evaluate(f"models:/{MODEL}@production", start, end, rules=rules)

    [change] = window.firing
    assert change.action is not None and change.action["status"] == "ok", change.action
    assert change.alert is not None
    run = get_run(ws, change.action["run_id"])
    assert run.status == "SUCCEEDED", run.error
    assert run.trigger == f"alert:{change.alert.alert_id}"
    assert f"alert #{change.alert.alert_id} via trigger" in (run.reason or "")
    assert run.step("ingest").outputs["value"]["data"] == "cancer@2"  # type: ignore[index]
    assert holder(ws) == 2
    lineage = ws.registry.lineage(f"models:/{MODEL}/2")
    assert lineage.pipeline is not None and lineage.pipeline["trigger"] == run.trigger


def test_a_dataset_trigger_trains_on_the_version_that_fired_it(
    ws: loopml.Workspace, tmp_path: Path
) -> None:
    target = f"ct:{tmp_path / 'loopml.yaml'}"
    assert isinstance(load_pipeline(target), ContinuousTraining)
    add_trigger(ws, "retrain", target, on="dataset", dataset="cancer", data_param="data")
    ws.data.ingest(cancer(seed=4), name="cancer")
    ws.data.ingest(cancer(seed=5), name="cancer")  # the newest; the trigger fires for each

    first, second = poll_triggers(ws)
    assert (first.status, second.status) == ("succeeded", "succeeded")
    runs = [get_run(ws, str(f.run_id)) for f in (first, second)]
    assert [r.params["data"] for r in runs] == ["cancer@2", "cancer@3"]
    assert [r.trigger for r in runs] == ["dataset:cancer@2", "dataset:cancer@3"]
    assert holder(ws) == 2 and ws.registry.get(f"models:/{MODEL}/2").tags["ct.data"] == "cancer@3"


def test_a_broken_project_is_refused_where_a_target_is_checked(
    ws: loopml.Workspace, tmp_path: Path
) -> None:
    from loopml.errors import ValidationError
    from loopml.monitoring.notify import parse_action

    project(tmp_path, train={"search": {"space": {"C": {"low": 1, "high": 10}}, "trials": 0}})
    with pytest.raises(
        ValidationError,
        match=r"Rule 'drift'.*`target` 'ct'.*loopml.yaml line "
        r"\d+, train.search.trials: must be a whole number ≥ 1",
    ):
        parse_action({"pipeline": "ct"}, "Rule 'drift'")
    with pytest.raises(ValidationError, match=r"train\.search\.trials"):
        run_ct(ws)
    with pytest.raises(ValidationError, match=r"params `data`.*not \['n'\]"):
        loopml.pipelines.run_pipeline(ws, "ct", {"n": 1})


def test_a_canary_no_server_picks_up_expires_and_stops_the_run(
    ws: loopml.Workspace, tmp_path: Path
) -> None:
    project(tmp_path, deploy={"canary": {**CANARY, "pickup_timeout": 0.5}})
    run_ct(ws).raise_for_status()  # the first version: nothing to run a canary beside
    ws.data.ingest(cancer(seed=8), name="cancer")
    run = run_ct(ws)

    assert run.status == "FAILED" and statuses(run)["canary"] == "FAILED"
    assert run.error is not None and "ended expired" in run.error
    assert f"no server following models:/{MODEL}@production picked it up" in run.error
    assert holder(ws) == 1
    [alert] = firing(ws, "ct-canary-failed")
    assert alert.action is not None and alert.action["details"]["state"] == "expired"


# -- canary through a real server --------------------------------------------------------------
class Fussy(ClassifierMixin, BaseEstimator):
    """A logistic regression that refuses absurd (scaled) inputs: it passes a gate on real
    rows and fails on broken traffic, which the stable model answers."""

    def __init__(self, limit: float = 50.0) -> None:
        self.limit = limit

    def fit(self, features: Any, labels: Any) -> Fussy:
        self.model_ = LogisticRegression(max_iter=5000).fit(features, labels)
        self.classes_ = self.model_.classes_
        return self

    def _check(self, features: Any) -> None:
        if np.abs(np.asarray(features, dtype=float)).max() > self.limit:
            raise ValueError("input out of range")

    def predict(self, features: Any) -> Any:
        self._check(features)
        return self.model_.predict(features)

    def predict_proba(self, features: Any) -> Any:
        self._check(features)
        return self.model_.predict_proba(features)


CANARY = {
    "steps": [50, 100],
    "interval": 0.3,
    "min_requests": 5,
    "max_latency_ratio": 1e6,
    "check_every": 0.2,
    "pickup_timeout": 30,
    "timeout": 120,
}


def serving(ws: loopml.Workspace) -> AbstractContextManager[str]:
    """A real uvicorn server following models:/cancer@production, in a thread."""
    return serve_in_thread(ws, f"models:/{MODEL}@production")


@contextmanager
def traffic(url: str, broken: bool = False) -> Iterator[list[int]]:
    """Single-row requests of real rows (every other one absurd when ``broken``) from a
    thread until the block ends; yields the versions that answered."""
    rows = cancer().drop(columns="target").to_dict(orient="records")
    answered: list[int] = []

    def send(stop: threading.Event) -> None:
        with httpx.Client(base_url=url, timeout=10) as client:
            for index in range(10**6):
                if stop.is_set():
                    return
                row = dict(rows[index % len(rows)])
                if broken and index % 2:
                    row["mean radius"] = 1000.0
                answer = client.post(f"/models/{MODEL}/predict", json={"records": [row]})
                if answer.status_code == 200:
                    answered.append(int(answer.json()["version"]))

    with in_background(send, "test-ct-traffic"):
        yield answered


@pytest.mark.slow
def test_a_canary_through_the_serving_alias_promotes_v2(
    ws: loopml.Workspace, tmp_path: Path
) -> None:
    project(tmp_path, deploy={"canary": CANARY})
    first = run_ct(ws).raise_for_status()  # nothing serves @production yet: no canary
    assert statuses(first)["canary"] == "SUCCEEDED" and holder(ws) == 1
    ws.data.ingest(cancer(seed=6), name="cancer")
    with serving(ws) as url, traffic(url) as answered:
        run = run_ct(ws, reason="weekly")
        assert run.status == "SUCCEEDED", run.error
        deadline = time.monotonic() + 30
        while not answered or answered[-1] != 2:  # the server swaps to the new holder
            assert time.monotonic() < deadline
            time.sleep(0.05)
    canary = run.step("canary").outputs
    assert canary is not None and canary["value"]["state"] == "promoted"
    assert holder(ws) == 2 and run.result["moved"] is False  # the canary moved it already
    actions = [e.action for e in ws.registry.history(MODEL, "production")]
    assert actions[-3:] == ["canary-start", "canary-step", "promote"]
    assert set(answered) == {1, 2}


@pytest.mark.slow
def test_a_canary_that_rolls_back_stops_the_run_with_an_alert(
    ws: loopml.Workspace, tmp_path: Path
) -> None:
    project(tmp_path, deploy={"canary": CANARY})
    run_ct(ws).raise_for_status()
    ws.data.ingest(cancer(seed=7), name="cancer")
    project(
        tmp_path, deploy={"canary": CANARY}, train={"estimator": f"{__name__}.Fussy", "params": {}}
    )
    with serving(ws) as url, traffic(url, broken=True):
        run = run_ct(ws)

    assert run.status == "FAILED" and statuses(run)["canary"] == "FAILED"
    assert statuses(run)["promote"] == "SKIPPED"
    assert run.error is not None and "CanaryFailedError" in run.error
    assert "ended rolled_back" in run.error and "error rate" in run.error
    assert holder(ws) == 1 and len(ws.registry.versions(MODEL)) == 2
    [alert] = firing(ws, "ct-canary-failed")
    assert alert.action is not None and alert.action["details"]["state"] == "rolled_back"
