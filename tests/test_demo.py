"""``loopml.demo.run_demo``: the demo's training logic, used from Python."""

from __future__ import annotations

from pathlib import Path

import pytest

import loopml
from loopml.demo import (
    DEMO_DATASET,
    DEMO_MODEL,
    DEMO_SPLIT,
    DemoModel,
    demo_frames,
    demo_models,
    run_demo,
    tune_and_gate,
)
from loopml.demo_loop import (
    DEMO_SHIFT,
    DemoServer,
    run_closed_loop,
    write_loop_report,
    write_project,
)


@pytest.fixture
def two_models() -> list[DemoModel]:
    """The fastest logistic regression and the gradient boosting, to keep tests quick."""
    models = {model.name: model for model in demo_models()}
    return [models["logreg-C1"], models["gradient-boosting"]]


def test_run_demo_returns_one_scored_result_per_model(
    tmp_path: Path, two_models: list[DemoModel]
) -> None:
    with loopml.Workspace.open(tmp_path) as ws:
        results = run_demo(ws, "trial", models=two_models)

        assert [r.run_name for r in results] == ["logreg-C1", "gradient-boosting"]
        for result in results:
            run = ws.get_run(result.run_id)
            assert run.experiment == "trial"
            assert run.metrics["roc_auc"] == pytest.approx(result.metrics["roc_auc"])
            assert set(result.metrics) == {"accuracy", "roc_auc", "f1", "log_loss"}


def test_run_demo_records_params_and_artifacts(tmp_path: Path, two_models: list[DemoModel]) -> None:
    with loopml.Workspace.open(tmp_path) as ws:
        result = run_demo(ws, models=two_models[:1])[0]
        run = ws.get_run(result.run_id)

        assert run.params["model"] == "logistic_regression"
        assert run.params["C"] == "1.0"
        assert (run.params["n_train"], run.params["n_valid"], run.params["n_test"]) == (
            "239",
            "80",
            "79",
        )
        paths = {a.path for a in run.artifacts()}
        # The files of the model folder are Run.log_model's to choose; the rest are the demo's.
        assert {p for p in paths if not p.startswith("model/")} == {
            "roc_curve.html",
            "plotly.min.js",
            "confusion_matrix.json",
        }
        assert "model/model.joblib" in paths


def test_gradient_boosting_logs_validation_loss_per_stage(
    tmp_path: Path, two_models: list[DemoModel]
) -> None:
    with loopml.Workspace.open(tmp_path) as ws:
        result = run_demo(ws, models=two_models[1:])[0]
        history = ws.get_run(result.run_id).metric_history("val_log_loss")

    assert list(history["step"]) == list(range(1, 151))
    assert history["value"].iloc[-1] == pytest.approx(result.metrics["log_loss"])
    assert history["value"].iloc[-1] < history["value"].iloc[0]


def test_run_demo_reports_progress_before_each_model_and_at_the_end(
    tmp_path: Path, two_models: list[DemoModel]
) -> None:
    seen: list[tuple[str, int, int]] = []
    with loopml.Workspace.open(tmp_path) as ws:
        run_demo(ws, models=two_models, on_progress=lambda *event: seen.append(event))

    assert seen == [("logreg-C1", 0, 2), ("gradient-boosting", 1, 2), ("done", 2, 2)]


def test_the_gate_judges_the_tuned_model_on_held_out_rows_only(
    tmp_path: Path, two_models: list[DemoModel]
) -> None:
    from sklearn.metrics import roc_auc_score

    with loopml.Workspace.open(tmp_path) as ws:
        results = run_demo(ws, models=two_models)
        gated = tune_and_gate(ws, results, n_trials=2)
        parts = ws.data.split(DEMO_DATASET, **DEMO_SPLIT)
        [evaluation] = ws.evaluations(gated.search.run)
        search_inputs = sorted(role for _, role in gated.search.run.inputs())
        hand_picked_inputs = sorted(role for _, role in ws.get_run(results[0].run_id).inputs())

    held_out = parts["test"]
    assert gated.held_out_rows == evaluation.n_rows == len(held_out) == 79
    assert sum(len(part) for part in parts.values()) == 398  # the parts share no row
    assert search_inputs == hand_picked_inputs == ["train", "valid"]
    assert '"test": 0.2' in gated.search.run.params["train.split"]
    scores = gated.search.best_model.predict_proba(held_out.drop(columns="target"))[:, 1]
    roc_auc = next(c for c in gated.verdict.checks if c.expression == "roc_auc >= 0.95").value
    assert roc_auc == pytest.approx(roc_auc_score(held_out["target"], scores))


def test_the_demo_registers_and_promotes_through_gates(
    tmp_path: Path, two_models: list[DemoModel]
) -> None:
    from loopml.demo import DEMO_MODEL

    with loopml.Workspace.open(tmp_path) as ws:
        results = run_demo(ws, models=two_models)
        gated = tune_and_gate(ws, results, n_trials=2)
        best = max(results, key=lambda r: r.metrics["roc_auc"])
        history = ws.registry.history(DEMO_MODEL)
        production = ws.registry.model(DEMO_MODEL).aliases["production"]
        lineage = ws.registry.lineage(gated.version)

    assert gated.baseline.run_id == best.run_id and gated.version.run_id == gated.search.run.id
    # The baseline took production on its own gate; the tuned model moved it only by
    # passing its gate against the baseline, else it waits as the challenger.
    assert (history[0].alias, history[0].to_version, history[0].gate_id is not None) == (
        "production",
        1,
        True,
    )
    expected = ("production", 2) if gated.verdict.passed else ("challenger", 2)
    assert (history[1].alias, history[1].to_version) == expected
    assert production == (2 if gated.verdict.passed else 1)
    assert [g["id"] for g in lineage.gates] == [gated.verdict.gate_id]
    assert lineage.gates[0]["champion_run_id"] == best.run_id
    assert {d["role"] for d in lineage.datasets} == {"train", "valid"}


def test_the_history_and_the_live_rows_share_no_row() -> None:
    history, live = demo_frames()

    assert (len(history), len(live)) == (398, 171)  # 70 % / 30 % of 569
    keys = list(history.columns)
    assert history.merge(live, on=keys).empty
    assert demo_frames()[1].equals(live)  # seeded: the same split every time


def test_the_demo_server_answers_logs_and_labels_its_traffic(
    tmp_path: Path, two_models: list[DemoModel]
) -> None:
    with loopml.Workspace.open(tmp_path) as ws:
        gated = tune_and_gate(ws, run_demo(ws, models=two_models), n_trials=2)
        live = demo_frames()[1].head(30)
        with DemoServer(ws) as server:
            burst = server.send(live, malformed=True)
            logged = ws.predictions_with_feedback(DEMO_MODEL, *burst.window)

    production = gated.version.version if gated.verdict.passed else gated.baseline.version
    assert (burst.sent, burst.ok, burst.refused) == (30, 30, 2)
    assert burst.versions == {production: 30}
    assert len(logged) == 30 and set(logged["version"]) == {production}
    # Every answer's truth came back as feedback, joined to its logged prediction.
    assert logged["label"].astype(int).tolist() == live["target"].tolist()


@pytest.mark.slow
def test_the_closed_loop_retrains_on_the_alert_and_promotes_through_a_canary(
    tmp_path: Path, two_models: list[DemoModel]
) -> None:
    with loopml.Workspace.open(tmp_path / "home") as ws:
        gated = tune_and_gate(ws, run_demo(ws, models=two_models), n_trials=2)
        served = ws.registry.get(f"models:/{DEMO_MODEL}@production").version
        write_project(ws.settings.home, ws.settings.home / "incoming", trials=2)
        with DemoServer(ws) as server:
            loop = run_closed_loop(ws, server, demo_frames()[1])
        v2 = ws.data.version(DEMO_DATASET)
        production = ws.registry.get(f"models:/{DEMO_MODEL}@production").version
        report = write_loop_report(ws, loop, tmp_path / "loop.html").read_text()

    assert gated.version is not None and loop.served_version == served
    # 1. Traffic as it came: no drift, no alert.
    stable = loop.watched["stable"]
    assert stable.drift is not None and stable.drift.drifted_features == []
    assert stable.firing == [] and loop.stable.refused == 2
    # 2. The shifted traffic drifts on exactly the shifted features and fires the rule.
    shifted = loop.watched["shifted"]
    assert shifted.drift is not None
    assert sorted(shifted.drift.drifted_features) == sorted(DEMO_SHIFT)
    assert [c.rule for c in shifted.firing] == ["input-drift"]
    assert loop.alert is not None and loop.alert.rule == "input-drift"
    # 3. The alert's action ran the CT pipeline, with the alert as its reason.
    run = loop.pipeline
    assert run is not None and run.status == "SUCCEEDED", run and run.error
    assert run.trigger == f"alert:{loop.alert.alert_id}"
    assert run.reason is not None and f"alert #{loop.alert.alert_id}" in run.reason
    assert [s.step for s in run.steps] == [
        "ingest", "train", "evaluate", "gate", "register", "canary", "promote"
    ]  # fmt: skip
    assert {s.status for s in run.steps} == {"SUCCEEDED"}
    # ...on the new data: the history plus the labelled shifted traffic.
    assert v2.ref == f"{DEMO_DATASET}@2" and v2.rows == 398 + len(loop.shifted.labels)
    # 4. It passed the gate against the served version, then a canary promoted it.
    assert loop.new_version == production == served + 1
    actions = [(e.action, e.to_version) for e in loop.events]
    assert actions[0] == ("canary-start", production) and actions[-1] == ("promote", production)
    assert loop.events[-1].reason is not None and "canary completed" in loop.events[-1].reason
    assert loop.canary_traffic.versions.keys() >= {served, production}  # both arms answered
    # 5. Rows no model trained on, shifted, now go to the new version only.
    assert set(loop.after.versions) == {production}
    assert loop.watched["after"].rows == len(loop.after.labels)
    # 6. The new version's lineage leads back to the pipeline run and the alert.
    assert loop.lineage is not None and loop.lineage.pipeline is not None
    assert loop.lineage.pipeline["run_id"] == run.run_id
    assert f"alert #{loop.alert.alert_id}" in loop.lineage.pipeline["reason"]
    assert loop.lineage.gates and loop.lineage.gates[0]["passed"]
    assert loop.lineage.parent is not None and loop.lineage.parent.model["version"] == served
    assert "the closed loop" in report and f"alert #{loop.alert.alert_id}" in report


@pytest.mark.slow
def test_a_failed_gate_stops_the_loop_with_the_reason_and_an_alert(
    tmp_path: Path, two_models: list[DemoModel]
) -> None:
    impossible = {"checks": ["roc_auc >= 1.01"]}
    with loopml.Workspace.open(tmp_path / "home") as ws:
        tune_and_gate(ws, run_demo(ws, models=two_models), n_trials=2)
        served = ws.registry.get(f"models:/{DEMO_MODEL}@production").version
        incoming = ws.settings.home / "incoming"
        write_project(ws.settings.home, incoming, policy=impossible, trials=2)
        with DemoServer(ws) as server:
            loop = run_closed_loop(ws, server, demo_frames()[1])
        alerts = {a.rule: a for a in ws.monitor.alerts(DEMO_MODEL, state="firing")}

    run = loop.pipeline
    assert run is not None and run.status == "FAILED"
    assert [s.status for s in run.steps][3:] == ["FAILED", "SKIPPED", "SKIPPED", "SKIPPED"]
    assert run.error is not None and "roc_auc >= 1.01" in run.error
    assert loop.new_version is None and loop.events == []
    assert set(loop.after.versions) == {served}  # production never moved
    assert "ct-gate-failed" in alerts and "input-drift" in alerts
