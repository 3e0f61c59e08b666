"""``loopml experiments list|delete|restore``."""

from __future__ import annotations

from pathlib import Path

import pytest

import loopml
from tests.cli import assert_clean_failure, invoke, table_line


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """Two experiments: 'churn' with three runs, 'fraud' with one."""
    with loopml.Workspace.open(tmp_path) as ws:
        for experiment, count in [("churn", 3), ("fraud", 1)]:
            for _ in range(count):
                with ws.start_run(experiment=experiment):
                    pass
    return tmp_path


def test_list_shows_experiments_with_run_counts(home: Path) -> None:
    result = invoke(home, "experiments", "list")

    assert result.exit_code == 0, result.output
    assert table_line(result.output, "churn").rstrip(" │").endswith("3")
    assert table_line(result.output, "fraud").rstrip(" │").endswith("1")


def test_deleted_experiment_is_hidden_shown_with_all_and_restorable(home: Path) -> None:
    deleted = invoke(home, "experiments", "delete", "fraud")
    assert deleted.exit_code == 0, deleted.output
    assert "loopml experiments restore fraud" in deleted.output

    assert "fraud" not in invoke(home, "experiments", "list").output
    everything = invoke(home, "experiments", "list", "--all")
    assert "deleted" in table_line(everything.output, "fraud")
    assert "active" in table_line(everything.output, "churn")

    assert invoke(home, "experiments", "restore", "fraud").exit_code == 0
    assert "fraud" in invoke(home, "experiments", "list").output


def test_delete_of_an_unknown_experiment_fails_cleanly(home: Path) -> None:
    assert_clean_failure(invoke(home, "experiments", "delete", "nope"), "Not found", "nope")


def test_list_of_a_new_workspace_points_at_the_demo(tmp_path: Path) -> None:
    invoke(None, "init", str(tmp_path))

    result = invoke(tmp_path, "experiments", "list")

    assert result.exit_code == 0
    assert "loopml demo" in result.output


def test_runs_of_a_deleted_experiment_leave_the_run_list(home: Path) -> None:
    invoke(home, "experiments", "delete", "fraud")

    listed = invoke(home, "runs", "list")
    assert "fraud" not in listed.output
    assert "churn" in listed.output

    everything = invoke(home, "runs", "list", "--all")
    assert "(deleted)" in table_line(everything.output, "fraud")
