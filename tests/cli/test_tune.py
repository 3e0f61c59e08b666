"""``loopml tune --config train.yaml``: the search: section of a training YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

import loopml
from tests.cli import assert_clean_failure, invoke, table_line
from tests.training import customers

pytest.importorskip("optuna")

TREE = """\
model: sklearn.tree.DecisionTreeClassifier
params: {random_state: 0}
data: churn
target: churned
"""
SEARCH = """\
search:
  n_trials: 3
  metric: accuracy
  sampler: {name: random, seed: 3}
  space:
    max_depth: {type: int, low: 1, high: 6}
    criterion: [gini, entropy]
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A workspace holding the ``churn`` dataset."""
    folder = tmp_path / "home"
    with loopml.Workspace.open(folder) as ws:
        ws.data.ingest(customers()[["spend", "plan", "trial", "churned"]], name="churn")
    return folder


def config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "train.yaml"
    path.write_text(text)
    return str(path)


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.split("│")[1:-1]]


def test_tune_prints_the_trials_best_first_and_the_parent_run(tmp_path: Path, home: Path) -> None:
    result = invoke(home, "tune", "--config", config(tmp_path, TREE + SEARCH))

    assert result.exit_code == 0, result.output
    with loopml.Workspace.open(home) as ws:
        [parent] = ws.search_runs(
            "churn", filter="run_name = 'tune-DecisionTreeClassifier'", output="runs"
        )
        best = ws.get_run(parent.tags["loopml.tune.best_run"])
        assert len(parent.children()) == 3
    header = cells(table_line(result.output, "┃ trial").replace("┃", "│"))
    assert header == ["trial", "state", "max_depth", "criterion", "accuracy", "run id"]
    rows = [cells(line) for line in result.output.splitlines() if "│ COMPLETE" in line]
    assert len(rows) == 3
    assert rows[0][5] == best.id[:8]  # best first
    scores = [float(row[4]) for row in rows]
    assert scores == sorted(scores, reverse=True)
    assert f"best: trial {best.tags['loopml.tune.trial']}, accuracy" in result.output
    assert f"max_depth={best.params['max_depth']}" in result.output
    assert f"parent run id: {parent.id}" in result.output
    assert "3 finished trial(s), 0 already done before this command" in result.output


def test_running_it_again_continues_the_study(tmp_path: Path, home: Path) -> None:
    path = config(tmp_path, TREE + SEARCH)
    assert invoke(home, "tune", "--config", path).exit_code == 0

    again = invoke(home, "tune", "--config", path, "--n-trials", "5")

    assert again.exit_code == 0, again.output
    assert "5 finished trial(s), 3 already done before this command" in again.output
    assert sum("│ COMPLETE" in line for line in again.output.splitlines()) == 5
    with loopml.Workspace.open(home) as ws:
        trials = ws.search_runs("churn", filter="tags.loopml.tune.trial != ''")
    assert len(trials) == 5  # the first three trials did not run again


def test_options_override_the_file(tmp_path: Path, home: Path) -> None:
    path = config(tmp_path, TREE + SEARCH)

    result = invoke(
        home, "tune", "-c", path, "-n", "2", "--executor", "local", "-e", "churn-tuning"
    )

    assert result.exit_code == 0, result.output
    with loopml.Workspace.open(home) as ws:
        runs = ws.search_runs("churn-tuning")
        assert ws.count_runs() == len(runs) == 3  # the parent and two trials, all there
    assert set(runs["tags.loopml.tune.executor"].dropna()) == {"local"}


def test_a_config_without_a_search_section_is_refused(tmp_path: Path, home: Path) -> None:
    path = config(tmp_path, TREE)
    assert_clean_failure(
        invoke(home, "tune", "--config", path),
        "has no search: section",
        f"loopml train --config {path}",
    )
    with loopml.Workspace.open(home) as ws:
        assert ws.count_runs() == 0


def test_a_malformed_space_is_refused_before_any_run(tmp_path: Path, home: Path) -> None:
    search = "search:\n  space:\n    max_depth: {type: int, low: 6, high: 1}\n"
    assert_clean_failure(
        invoke(home, "tune", "--config", config(tmp_path, TREE + search)),
        "'max_depth': low (6) is above high (1); swap them.",
    )
    with loopml.Workspace.open(home) as ws:
        assert ws.count_runs() == 0


def test_an_unknown_executor_is_refused(tmp_path: Path, home: Path) -> None:
    path = config(tmp_path, TREE + SEARCH)

    option = invoke(home, "tune", "--config", path, "--executor", "spark")
    assert option.exit_code == 2  # a usage error, as Click reports them
    assert "'spark' is not one of 'local', 'ray'" in option.output

    in_file = config(tmp_path, TREE + SEARCH + "  executor: spark\n")
    assert_clean_failure(
        invoke(home, "tune", "--config", in_file), "executor must be 'local' or 'ray'"
    )
    with loopml.Workspace.open(home) as ws:
        assert ws.count_runs() == 0
