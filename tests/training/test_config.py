"""``train.yaml`` files: read, checked, and turned into a training run."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.ensemble import RandomForestClassifier

import loopml
from loopml.errors import ValidationError
from loopml.training import TrainConfig, load_train_config
from tests.training import customers


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "train.yaml"
    path.write_text(text)
    return path


def test_config_builds_the_model_with_its_params(tmp_path: Path) -> None:
    config = load_train_config(
        write(
            tmp_path,
            "model: sklearn.ensemble.RandomForestClassifier\n"
            "params: {n_estimators: 7}\ndata: churn@1\ntarget: churned\ncv: 3\n",
        )
    )
    model = config.build_model()
    assert isinstance(model, RandomForestClassifier) and model.n_estimators == 7
    assert config.cv == 3


def test_config_runs_as_ws_train(sqlite_workspace: loopml.Workspace) -> None:
    sqlite_workspace.data.ingest(customers(), name="churn")
    config = TrainConfig(
        model="sklearn.tree.DecisionTreeClassifier",
        params={"max_depth": 2},
        data="churn",
        target="churned",
        metrics=["accuracy"],
    )
    result = config.run(sqlite_workspace)
    assert result.run.params["max_depth"] == "2"
    assert set(result.metrics) == {"accuracy", "fit_seconds"}


def test_unknown_key_suggests_the_close_one(tmp_path: Path) -> None:
    path = write(
        tmp_path, "model: sklearn.tree.DecisionTreeClassifier\ndata: d\ntarget: y\nparam: {}\n"
    )
    with pytest.raises(ValidationError, match=r"Unknown key 'param'.*Did you mean 'params'"):
        load_train_config(path)


@pytest.mark.parametrize(
    ("model", "fragment"),
    [("sklearn.ensemble.RandomForest", "has no 'RandomForest'"),
     ("sklearn.ensembl.RandomForestClassifier", "module 'sklearn.ensembl' not found"),
     ("RandomForestClassifier", "write the full path")],
)  # fmt: skip
def test_bad_import_path_says_how_to_write_it(tmp_path: Path, model: str, fragment: str) -> None:
    config = load_train_config(write(tmp_path, f"model: {model}\ndata: d\ntarget: y\n"))
    with pytest.raises(ValidationError, match=fragment):
        config.build_model()


def test_missing_required_keys_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="needs data, target"):
        load_train_config(write(tmp_path, "model: sklearn.tree.DecisionTreeClassifier\n"))


def test_invalid_yaml_is_a_validation_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not valid YAML"):
        load_train_config(write(tmp_path, "model: [unclosed\n"))


def test_unknown_constructor_param_is_explained(tmp_path: Path) -> None:
    config = load_train_config(
        write(
            tmp_path,
            "model: sklearn.tree.DecisionTreeClassifier\nparams: {depth: 2}\ndata: d\ntarget: y\n",
        )
    )
    with pytest.raises(ValidationError, match="Check the param names"):
        config.build_model()
