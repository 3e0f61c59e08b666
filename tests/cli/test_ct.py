"""``loopml ct init|run``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from click.testing import Result
from typer.testing import CliRunner

import loopml
from loopml.cli import ct, pipeline
from tests.cli import CLI_ENV, assert_clean_failure

# The commands on their own root, so these tests do not depend on the wiring.
ROOT = typer.Typer()
ROOT.add_typer(ct.app, name="ct")
ROOT.add_typer(pipeline.app, name="pipeline")


def invoke(*args: str) -> Result:
    return CliRunner().invoke(ROOT, list(args), env=CLI_ENV, catch_exceptions=True)


def ingest_demo_data(home: Path) -> None:
    from sklearn.datasets import load_breast_cancer

    with loopml.Workspace.open(home) as ws:
        ws.data.ingest(load_breast_cancer(as_frame=True).frame, name="breast-cancer")


def test_init_writes_a_starter_project_that_runs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ingest_demo_data(home)
    written = invoke("ct", "init")
    assert written.exit_code == 0, written.output
    assert "Wrote loopml.yaml" in written.output and Path("loopml.yaml").is_file()
    assert_clean_failure(invoke("ct", "init"), "loopml.yaml exists already", "--force")

    run = invoke("ct", "run", "--home", str(home), "--reason", "first model")
    assert run.exit_code == 0, run.output
    for step in ("ingest", "train", "evaluate", "gate", "register", "promote"):
        assert step in run.output
    assert "Pipeline ct run" in run.output and "SUCCEEDED" in run.output
    with loopml.Workspace.open(home) as ws:
        assert ws.registry.model("breast-cancer-classifier").aliases == {"production": 1}
        [stored] = loopml.pipelines.list_runs(ws)
    assert stored.reason == "first model" and stored.trigger == "manual"

    shown = invoke("pipeline", "show", stored.run_id[:8], "--home", str(home))
    assert shown.exit_code == 0 and "reason: first model" in shown.output


def test_a_stopped_run_exits_1_and_says_what_next(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ingest_demo_data(home)
    invoke("ct", "init", "--project", "ct.yaml")
    text = Path("ct.yaml").read_text().replace("approvals: 0", "approvals: 2")
    Path("ct.yaml").write_text(text)

    stopped = invoke("ct", "run", "-f", "ct.yaml", "--home", str(home), "--json")
    assert stopped.exit_code == 1
    found = json.loads(stopped.output)
    assert found["status"] == "FAILED" and "awaiting approval" in found["error"]
    assert "loopml models approve breast-cancer-classifier 1 --alias production" in found["error"]
    assert f"loopml pipeline resume {found['run_id'][:8]}" in found["error"]


def test_a_malformed_project_is_refused_with_its_line_and_field(tmp_path: Path) -> None:
    invoke("ct", "init")
    text = Path("loopml.yaml").read_text().replace("seed: 0", "seed: -1")
    Path("loopml.yaml").write_text(text)
    result = invoke("ct", "run", "--home", str(tmp_path / "home"))
    assert_clean_failure(result, "loopml.yaml line 18, data.split.seed: must be a whole number")
    assert not (tmp_path / "home").exists()  # refused before any workspace was made
    assert_clean_failure(invoke("ct", "run", "-f", "nowhere.yaml"), "No project file")
