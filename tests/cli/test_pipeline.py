"""``loopml pipeline run|list|show|resume``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from click.testing import Result
from typer.testing import CliRunner

import loopml
from loopml.cli import pipeline
from tests.cli import CLI_ENV, assert_clean_failure

# The pipeline commands on their own root, so these tests do not depend on the wiring.
ROOT = typer.Typer()
ROOT.add_typer(pipeline.app, name="pipeline")


def invoke(home: Path, *args: str) -> Result:
    return CliRunner().invoke(
        ROOT, ["pipeline", *args, "--home", str(home)], env=CLI_ENV, catch_exceptions=True
    )


def test_run_shows_each_step_and_a_rerun_is_cached(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = invoke(home, "run", "tests.pipelines.steps:stats", "-p", "n=12")
    second = invoke(home, "run", "tests.pipelines.steps:stats", "-p", "n=12", "--json")
    forced = invoke(home, "run", "tests.pipelines.steps:stats", "-p", "n=12", "--no-cache")

    assert first.exit_code == 0, first.output
    assert "numbers" in first.output and "SUCCEEDED" in first.output
    assert "(2 of 6 steps cached)" in first.output  # total_2 and count_2
    data = json.loads(second.output)
    assert data["cache_hits"] == 6 and data["params"] == {"n": 12, "seed": 0}
    keys = {s["step"]: s["cache_key"] for s in data["steps"]}
    assert keys["mean"][:12] in first.output  # the cache key is shown
    assert forced.exit_code == 0 and "(0 of 6 steps cached)" in forced.output


def test_a_failed_run_exits_1_and_resume_finishes_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    marker = tmp_path / "m"
    failed = invoke(
        home,
        "run",
        "tests.pipelines.steps:retrying",
        "-p",
        f"marker={marker}",
        "-p",
        "fail_times=3",
    )
    assert failed.exit_code == 1
    assert "flaky failure 3" in failed.output and "pipeline resume" in failed.output
    with loopml.Workspace.open(home) as ws:
        [stored] = loopml.pipelines.list_runs(ws)

    listed = invoke(home, "list")
    shown = invoke(home, "show", stored.run_id[:8], "--logs")
    resumed = invoke(home, "resume", stored.run_id[:8])

    assert stored.run_id[:8] in listed.output and "FAILED" in listed.output
    assert "flaky" in shown.output and "RuntimeError: flaky failure 3" in shown.output
    assert "attempt 2 of step 'flaky' failed" in shown.output  # --logs
    assert resumed.exit_code == 0, resumed.output
    assert "SUCCEEDED" in resumed.output


def test_a_waiting_run_exits_0_shows_waiting_and_resume_continues_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    approval = tmp_path / "approved"
    params = ["-p", f"approval={approval}", "-p", f"marker={tmp_path / 'm'}"]
    waiting = invoke(home, "run", "tests.pipelines.test_waiting:publishing", *params)

    assert waiting.exit_code == 0, waiting.output  # waiting is not an error
    assert "WAITING" in waiting.output and "FAILED" not in waiting.output
    assert f"waiting: waiting for a sign-off: create {approval}" in waiting.output
    with loopml.Workspace.open(home) as ws:
        [stored] = loopml.pipelines.list_runs(ws)
    assert f"`loopml pipeline resume {stored.run_id[:8]}` continues it" in waiting.output

    listed = invoke(home, "list", "--status", "waiting", "--json")
    shown = invoke(home, "show", stored.run_id[:8])
    assert [r["status"] for r in json.loads(listed.output)] == ["WAITING"]
    assert "sign_off  WAITING" in shown.output and "waiting: waiting for a sign-off" in shown.output

    approval.write_text("ada")
    resumed = invoke(home, "resume", stored.run_id[:8], "--json")
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.output)["status"] == "SUCCEEDED"


def test_show_draws_the_dag_as_tree_mermaid_and_html(tmp_path: Path) -> None:
    home = tmp_path / "home"
    invoke(home, "run", "tests.pipelines.steps:stats", "-p", "n=5")
    with loopml.Workspace.open(home) as ws:
        [stored] = loopml.pipelines.list_runs(ws)

    tree = invoke(home, "show", stored.run_id)
    mermaid = invoke(home, "show", stored.run_id, "--format", "mermaid")
    page = tmp_path / "dag.html"
    html = invoke(home, "show", stored.run_id, "--format", "html", "--out", str(page))
    plan = invoke(home, "show", "tests.pipelines.steps:stats", "--format", "mermaid")

    assert tree.exit_code == 0, tree.output
    assert "↑ count_2 (also under numbers)" not in tree.output
    assert "mean" in tree.output and "↑ mean (also under count_2)" in tree.output
    assert mermaid.output.startswith("flowchart TD\n")
    assert "s3 -->|total| s5" in mermaid.output and "class s5 SUCCEEDED" in mermaid.output
    assert html.exit_code == 0 and "<svg" in page.read_text() and "mean" in page.read_text()
    assert plan.exit_code == 0 and "s0 -->|frame| s1" in plan.output


def test_bad_targets_and_ids_fail_cleanly(tmp_path: Path) -> None:
    home = tmp_path / "home"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsteps:\n  - name: a\n    uses: nope\n")

    assert_clean_failure(invoke(home, "run", str(bad)), "steps[0] (a).uses: unknown built-in")
    assert_clean_failure(invoke(home, "run", "no.such.module:flow"), "Cannot import module")
    assert_clean_failure(invoke(home, "show", "abcdef12"), "No pipeline run")
    assert_clean_failure(
        invoke(home, "run", "tests.pipelines.steps:stats", "-p", "oops"), "NAME=VALUE"
    )
