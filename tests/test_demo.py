"""``loopml.demo.run_demo``: the demo's training logic, used from Python."""

from __future__ import annotations

from pathlib import Path

import pytest

import loopml
from loopml.demo import DEMO_DATASET, DEMO_SPLIT, DemoModel, demo_models, run_demo, tune_and_gate


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
            "341",
            "115",
            "113",
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
    assert gated.held_out_rows == evaluation.n_rows == len(held_out) == 113
    assert sum(len(part) for part in parts.values()) == 569  # the parts share no row
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


def test_the_demo_serves_production_over_http_and_logs_the_traffic(
    tmp_path: Path, two_models: list[DemoModel]
) -> None:
    from loopml.demo import serve_and_send

    with loopml.Workspace.open(tmp_path) as ws:
        gated = tune_and_gate(ws, run_demo(ws, models=two_models), n_trials=2)
        traffic = serve_and_send(ws, requests=30)
        logged = ws.predictions("breast-cancer-classifier")

    production = gated.version.version if gated.verdict.passed else gated.baseline.version
    assert (traffic.ok, traffic.refused, traffic.version) == (30, 2, production)
    assert traffic.url.startswith("http://127.0.0.1:") and traffic.p99_ms >= traffic.p50_ms
    assert len(logged) == traffic.logged_rows == 30
    assert set(logged["version"]) == {production}


def test_the_demo_monitors_its_traffic_and_finds_the_injected_shift(
    tmp_path: Path, two_models: list[DemoModel]
) -> None:
    from loopml.demo import DEMO_SHIFT, monitor_traffic, serve_and_send

    with loopml.Workspace.open(tmp_path) as ws:
        tune_and_gate(ws, run_demo(ws, models=two_models), n_trials=2)
        traffic = serve_and_send(ws, requests=120, shifted=120)
        watched = monitor_traffic(ws, traffic, tmp_path / "report.html")
        labels = ws.feedback("breast-cancer-classifier")

    assert traffic.labelled == len(labels) == 240
    assert (watched.stable.rows, watched.shifted.rows) == (120, 120)
    assert watched.stable.drift is not None and watched.stable.drift.drifted_features == []
    assert watched.stable.firing == []
    assert watched.shifted.drift is not None
    assert sorted(watched.shifted.drift.drifted_features) == sorted(DEMO_SHIFT)
    assert [c.rule for c in watched.shifted.firing] == ["input-drift"]
    stable_perf = watched.stable.performance
    assert stable_perf is not None and stable_perf.windows[0].labelled == 120
    assert watched.report.stat().st_size > 0
