"""``loopml demo``: tracked training end to end, then the runs it made through ``runs``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import loopml
from tests.cli import invoke, table_line

DEMO_RUNS = {"logreg-C0.01", "logreg-C1", "logreg-C100", "random-forest", "gradient-boosting"}


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A workspace after one ``loopml demo``, with that command's output."""
    home = tmp_path_factory.mktemp("demo")
    result = invoke(home, "demo")
    assert result.exit_code == 0, result.output
    return home, result.output


@pytest.mark.slow
def test_demo_logs_one_run_per_model_with_metrics_and_a_roc_curve(
    demo_home: tuple[Path, str],
) -> None:
    home, _ = demo_home
    with loopml.Workspace.open(home) as ws:
        runs = ws.search_runs("demo", filter="tags.source = 'loopml demo'", output="runs")
        assert {run.info.name for run in runs} == DEMO_RUNS
        for run in runs:
            assert run.info.status == "FINISHED"
            metrics = run.metrics
            assert {"accuracy", "roc_auc", "f1", "log_loss"} <= set(metrics)
            assert 0.9 < metrics["roc_auc"] <= 1.0
            paths = {artifact.path for artifact in run.artifacts()}
            assert {"roc_curve.html", "model/model.joblib"} <= paths
            assert b"ROC curve" in run.read_artifact("roc_curve.html")


@pytest.mark.slow
def test_demo_prints_a_ranking_and_the_next_command(demo_home: tuple[Path, str]) -> None:
    home, output = demo_home
    with loopml.Workspace.open(home) as ws:
        hand_picked = "tags.source = 'loopml demo'"
        runs = ws.search_runs("demo", filter=hand_picked, order_by=["metrics.roc_auc desc"])
    top = runs[runs["metrics.roc_auc"] == runs["metrics.roc_auc"].max()]  # ties rank in any order

    assert "ranked by validation roc_auc" in output
    first = table_line(output, "│ 1 │")
    pairs = zip(top["run_id"], top["run_name"], strict=True)
    assert any(run_id[:8] in first and name in first for run_id, name in pairs)
    assert "loopml runs list --experiment demo" in output
    assert "5/5" in output  # the progress bar finished


@pytest.mark.slow
def test_demo_tunes_a_model_and_prints_its_gate(demo_home: tuple[Path, str]) -> None:
    home, output = demo_home
    with loopml.Workspace.open(home) as ws:
        search = ws.search_runs("demo", filter="run_name = 'logreg-search'", output="runs")[0]
        trials = search.children()
        gate_status = search.tags.get("gate.status")
        [evaluation] = ws.evaluations(search)
    assert len(trials) == 6 and all("C" in t.params for t in trials)
    assert evaluation.n_rows == 79  # the held-out test part, not the 398 rows of history
    assert "Best of the search: C=" in output
    assert "on 79 held-out rows of breast-cancer@1" in output
    assert "Gate checks of logreg-search" in output
    assert "Registered breast-cancer-classifier:" in output
    assert "promote @production: version 1 (loopml demo: gate passed" in output
    assert "models:/breast-cancer-classifier/" in output and "alias history" in output
    assert re.search(r"(\d+) of \1 requests answered", output)
    assert "2 malformed ones refused" in output
    for check in ("roc_auc >= 0.95", "champion.roc_auc", "latency.p99_ms <= 50"):
        assert check in output
    assert gate_status in {"passed", "failed"}
    assert gate_status.upper()[:4] in output


@pytest.mark.slow
def test_runs_list_after_the_demo_shows_its_runs(demo_home: tuple[Path, str]) -> None:
    home, _ = demo_home

    result = invoke(home, "runs", "list", "--experiment", "demo", "-o", "metrics.roc_auc desc")

    assert result.exit_code == 0, result.output
    for name in DEMO_RUNS:
        assert "FINISHED" in table_line(result.output, f" {name} ")
    assert "roc_auc" in table_line(result.output, "run id")


@pytest.mark.slow
def test_gradient_boosting_history_shows_in_runs_show(demo_home: tuple[Path, str]) -> None:
    home, _ = demo_home
    records = json.loads(invoke(home, "runs", "list", "-e", "demo", "--format", "json").stdout)
    boosting = next(r for r in records if r["run_name"] == "gradient-boosting")

    result = invoke(home, "runs", "show", boosting["run_id"][:8])

    cells = [c.strip() for c in table_line(result.output, "val_log_loss").split("│") if c.strip()]
    assert cells[2] == "150"  # one value per boosting stage
    assert "roc_curve.html" in result.output


@pytest.mark.slow
def test_demo_closes_the_loop_and_says_why_at_each_step(demo_home: tuple[Path, str]) -> None:
    home, output = demo_home
    with loopml.Workspace.open(home) as ws:
        production = ws.registry.get("models:/breast-cancer-classifier@production")
        [alert] = [
            a for a in ws.monitor.alerts("breast-cancer-classifier") if a.rule == "input-drift"
        ]
        lineage = ws.registry.lineage(production)

    assert f"Alert #{alert.alert_id} input-drift" in output
    assert lineage.pipeline is not None and lineage.pipeline["status"] == "SUCCEEDED"
    assert f"pipeline ct run {lineage.pipeline['run_id'][:8]} (SUCCEEDED)" in output
    assert f"alert #{alert.alert_id}" in lineage.pipeline["reason"]
    assert f"promote @production: version {production.version - 1} → {production.version}" in output
    assert f"Lineage of version {production.version}, back to the alert" in output
    assert "Accuracy on shifted traffic" in output
    assert (home / "loop-report.html").stat().st_size > 0
    assert (home / "loopml.yaml").is_file()
