"""``loopml train --config train.yaml``."""

from __future__ import annotations

from pathlib import Path

import pytest

import loopml
from tests.cli import assert_clean_failure, invoke, table_line
from tests.training import customers


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A workspace holding the ``churn`` dataset."""
    folder = tmp_path / "home"
    with loopml.Workspace.open(folder) as ws:
        ws.data.ingest(customers(), name="churn")
    return folder


def config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "train.yaml"
    path.write_text(text)
    return str(path)


def test_train_prints_the_metrics_and_the_run_id(tmp_path: Path, home: Path) -> None:
    path = config(
        tmp_path,
        "model: sklearn.tree.DecisionTreeClassifier\nparams: {max_depth: 3}\n"
        "data: churn@1\ntarget: churned\nmetrics: [accuracy, f1]\n",
    )
    result = invoke(home, "train", "--config", path, "--run-name", "tree")

    assert result.exit_code == 0, result.output
    with loopml.Workspace.open(home) as ws:
        [run] = ws.search_runs("churn", output="runs")
        assert run.info.name == "tree"
        assert run.params["max_depth"] == "3"
        accuracy = run.metrics["accuracy"]
    assert f"run id: {run.id}" in result.output
    assert f"{accuracy:.4f}"[:5] in table_line(result.output, "accuracy")
    assert "f1" in result.output


def test_train_with_cv_logs_into_the_given_experiment(tmp_path: Path, home: Path) -> None:
    path = config(
        tmp_path,
        "model: sklearn.linear_model.LogisticRegression\ndata: churn\ntarget: churned\ncv: 2\n",
    )
    result = invoke(home, "train", "-c", path, "--experiment", "cv-check")
    assert result.exit_code == 0, result.output
    assert "cv_accuracy_mean" in result.output
    with loopml.Workspace.open(home) as ws:
        assert ws.count_runs("cv-check") == 1


def test_unknown_key_fails_cleanly(tmp_path: Path, home: Path) -> None:
    path = config(
        tmp_path,
        "model: sklearn.tree.DecisionTreeClassifier\ndata: churn\ntarget: churned\nsplits: {}\n",
    )
    assert_clean_failure(invoke(home, "train", "--config", path), "Unknown key 'splits'", "'split'")


def test_bad_import_path_fails_cleanly(tmp_path: Path, home: Path) -> None:
    path = config(tmp_path, "model: sklearn.ensemble.RandomForest\ndata: churn\ntarget: churned\n")
    assert_clean_failure(
        invoke(home, "train", "--config", path),
        "has no 'RandomForest'",
        "sklearn.ensemble.RandomForestClassifier",
    )


def test_bad_target_fails_cleanly_without_a_run(tmp_path: Path, home: Path) -> None:
    path = config(
        tmp_path, "model: sklearn.tree.DecisionTreeClassifier\ndata: churn\ntarget: label\n"
    )
    assert_clean_failure(invoke(home, "train", "--config", path), "Target column 'label'")
    with loopml.Workspace.open(home) as ws:
        assert ws.count_runs() == 0


def test_missing_config_file_fails_cleanly(tmp_path: Path, home: Path) -> None:
    assert_clean_failure(
        invoke(home, "train", "--config", str(tmp_path / "nope.yaml")),
        "Cannot read the training config",
    )
