"""``loopml ct init|run``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from click.testing import Result
from typer.testing import CliRunner

import loopml
from loopml.cli import ct, models, pipeline
from tests.cli import CLI_ENV, assert_clean_failure

# The commands on their own root, so these tests do not depend on the wiring.
ROOT = typer.Typer()
ROOT.add_typer(ct.app, name="ct")
ROOT.add_typer(pipeline.app, name="pipeline")
ROOT.add_typer(models.app, name="models")


def invoke(*args: str, user: str = "ada") -> Result:
    env = {**CLI_ENV, "LOOPML_USER": user}
    return CliRunner().invoke(ROOT, list(args), env=env, catch_exceptions=True)


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


def test_a_run_awaiting_approval_exits_0_waiting_and_says_what_next(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ingest_demo_data(home)
    invoke("ct", "init", "--project", "ct.yaml")
    text = Path("ct.yaml").read_text().replace("approvals: 0", "approvals: 2")
    Path("ct.yaml").write_text(text)

    waiting = invoke("ct", "run", "-f", "ct.yaml", "--home", str(home), "--json")
    assert waiting.exit_code == 0, waiting.output  # waiting for a person is no error
    found = json.loads(waiting.output)
    assert found["status"] == "WAITING" and "awaiting approval" in found["error"]
    assert "loopml models approve breast-cancer-classifier 1 --alias production" in found["error"]
    assert f"loopml pipeline resume {found['run_id'][:8]}" in found["error"]
    assert {s["step"]: s["status"] for s in found["steps"]}["approval"] == "WAITING"

    approve = ("models", "approve", "breast-cancer-classifier", "1", "--home", str(home))
    first = invoke(*approve)
    assert first.exit_code == 0 and "pipeline resume" not in first.output  # 1 of 2
    again = invoke("pipeline", "resume", found["run_id"][:8], "--home", str(home))
    assert again.exit_code == 0, again.output
    assert "WAITING" in again.output and "waiting: awaiting approval" in again.output
    assert "it has 1 (ada)" in again.output
    with loopml.Workspace.open(home) as ws:
        newest = loopml.pipelines.list_runs(ws)[0].run_id[:8]

    second = invoke(*approve, user="grace")  # enough now: it names the run to resume
    assert f"CT run {newest} waits for this approval" in second.output, second.output
    assert f"`loopml pipeline resume {newest}`" in second.output
    done = invoke("pipeline", "resume", newest, "--home", str(home), "--json")
    assert done.exit_code == 0 and json.loads(done.output)["status"] == "SUCCEEDED"


def test_a_malformed_project_is_refused_with_its_line_and_field(tmp_path: Path) -> None:
    invoke("ct", "init")
    text = Path("loopml.yaml").read_text().replace("seed: 0", "seed: -1")
    Path("loopml.yaml").write_text(text)
    result = invoke("ct", "run", "--home", str(tmp_path / "home"))
    assert_clean_failure(result, "loopml.yaml line 18, data.split.seed: must be a whole number")
    assert not (tmp_path / "home").exists()  # refused before any workspace was made
    assert_clean_failure(invoke("ct", "run", "-f", "nowhere.yaml"), "No project file")
