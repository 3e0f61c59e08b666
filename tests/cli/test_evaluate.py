"""``loopml evaluate`` and ``loopml gate``."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.cli.evaluate import GATE_FAILED
from tests.cli import assert_clean_failure, invoke, table_line
from tests.evaluation._samples import binary_frame, binary_model


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A workspace with the ``churn`` dataset and two runs: a good and a weak model."""
    folder = tmp_path / "home"
    frame = binary_frame(400)
    with loopml.Workspace.open(folder) as ws:
        ws.data.ingest(frame, name="churn", contract=False)
        with ws.start_run("churn", run_name="good") as good:
            good.log_model(binary_model(frame))
        with ws.start_run("churn", run_name="weak") as weak:
            weak.log_model(LogisticRegression().fit(frame[["spend"]], frame["churned"]))
    return folder


def run_id(home: Path, name: str) -> str:
    with loopml.Workspace.open(home) as ws:
        [run] = [r for r in ws.search_runs("churn", output="runs") if r.info.name == name]
        return run.id


def policy_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "gate.yaml"
    path.write_text(text)
    return str(path)


POLICY = """\
bootstrap: 20
resamples: 200
checks:
  - auc >= 0.7
  - roc_auc > champion.auc significantly
"""


def test_evaluate_prints_metrics_with_intervals_and_worst_slices(home: Path) -> None:
    good = run_id(home, "good")
    result = invoke(
        home,
        "evaluate",
        good[:8],
        "--data",
        "churn@1",
        "--target",
        "churned",
        "--slice",
        "region",
        "--sensitive",
        "gender",
        "--bootstrap",
        "30",
    )

    assert result.exit_code == 0, result.output
    with loopml.Workspace.open(home) as ws:
        [evaluation] = ws.evaluations(good)
    auc = evaluation.metrics["roc_auc"]
    low, high = evaluation.intervals["roc_auc"]
    line = table_line(result.output, f"[{low:.4f}, {high:.4f}]")
    assert "roc_auc" in line and f"{auc:.4f}" in line
    assert "Worst slice per metric" in result.output
    assert "region=south" in table_line(result.output, "│ recall    │")
    assert "demographic_parity_difference" in result.output
    assert f"evaluation id: {evaluation.evaluation_id}" in result.output


def test_evaluate_accepts_a_runs_uri_and_skips_robustness_on_request(home: Path) -> None:
    good = run_id(home, "good")
    result = invoke(
        home,
        "evaluate",
        f"runs:/{good}/model",
        "-d",
        "churn",
        "-t",
        "churned",
        "--no-robustness",
        "--bootstrap",
        "0",
    )
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "Robustness" not in result.output


def test_evaluate_an_unknown_run_fails_cleanly(home: Path) -> None:
    result = invoke(home, "evaluate", "abcdef12", "--data", "churn", "--target", "churned")
    assert_clean_failure(result, "No run")


def test_gate_that_passes_exits_zero_and_shows_each_check(tmp_path: Path, home: Path) -> None:
    result = invoke(
        home,
        "gate",
        run_id(home, "good"),
        "--policy",
        policy_file(tmp_path, POLICY),
        "--champion",
        run_id(home, "weak")[:8],
        "--data",
        "churn",
        "--target",
        "churned",
    )

    assert result.exit_code == 0, result.output
    assert "PASS" in table_line(result.output, "auc >= 0.7")
    assert "paired bootstrap" in table_line(result.output, "significantly")
    assert "Gate passed: 2 check(s)" in result.output


def test_gate_that_fails_exits_with_its_own_code(tmp_path: Path, home: Path) -> None:
    weak = run_id(home, "weak")
    result = invoke(
        home,
        "gate",
        weak,
        "-p",
        policy_file(tmp_path, POLICY),
        "-c",
        run_id(home, "good"),
        "-d",
        "churn",
        "-t",
        "churned",
    )

    assert result.exit_code == GATE_FAILED == 3, result.output
    assert "FAIL" in table_line(result.output, "auc >= 0.7")
    assert "Gate failed: 2 of 2 check(s) failed" in result.output
    with loopml.Workspace.open(home) as ws:
        assert ws.get_run(weak).tags["gate.status"] == "failed"


def test_gate_reads_data_and_target_from_the_policy(tmp_path: Path, home: Path) -> None:
    path = policy_file(tmp_path, "data: churn@1\ntarget: churned\nchecks: [accuracy >= 0]\n")
    result = invoke(home, "gate", run_id(home, "good"), "--policy", path)
    assert result.exit_code == 0, result.output
    assert "on churn@1" in result.output


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("checks:\n  - auc >= 0.8\n\tx: 1\n", ("not valid YAML at line 3",)),
        ("checks: [roc_auc >== 0.8]\n", ("column 11", "^")),
        ("checks: [auroc > 0.8]\n", ("Unknown metric 'auroc'", "roc_auc")),
        ("checks: [auc > champion.auc]\n", ("no champion was given",)),
    ],
)
def test_gate_with_a_bad_policy_fails_cleanly(
    tmp_path: Path, home: Path, text: str, fragments: tuple[str, ...]
) -> None:
    result = invoke(
        home,
        "gate",
        run_id(home, "good"),
        "--policy",
        policy_file(tmp_path, text),
        "--data",
        "churn",
        "--target",
        "churned",
    )
    assert_clean_failure(result, *fragments)


def test_gate_with_a_missing_policy_file_or_champion_fails_cleanly(
    tmp_path: Path, home: Path
) -> None:
    good = run_id(home, "good")
    missing = invoke(home, "gate", good, "--policy", str(tmp_path / "none.yaml"))
    assert_clean_failure(missing, "No gate policy file")
    path = policy_file(tmp_path, POLICY)
    unknown = invoke(
        home,
        "gate",
        good,
        "--policy",
        path,
        "--champion",
        "fedcba98",
        "--data",
        "churn",
        "--target",
        "churned",
    )
    assert_clean_failure(unknown, "champion 'fedcba98' cannot be found")
