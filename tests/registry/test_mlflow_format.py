"""MLflow model format: what loopml writes MLflow serves, and what MLflow writes loopml reads."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from loopml.errors import ConfigError, ValidationError
from loopml.registry.mlflow_format import read_mlflow_model, write_mlflow_model
from loopml.training._preprocess import build_preprocessor, column_kinds
from tests.training import customers

pytest.importorskip("mlflow", reason="mlflow-skinny is in the test extra")
import mlflow
import mlflow.pyfunc
import mlflow.sklearn


@pytest.fixture(autouse=True)
def _trust_test_pickles(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow 3 refuses to unpickle unless told the source is trusted; these are ours."""
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    return customers(200).drop(columns=["signed_up", "churned"])


@pytest.fixture(scope="module")
def model(features: pd.DataFrame) -> Pipeline:
    """A churn classifier behind loopml's default preprocessing."""
    kinds = column_kinds(features, list(features.columns), None)
    pipeline = Pipeline(
        [("preprocess", build_preprocessor(kinds)), ("model", LogisticRegression(max_iter=500))]
    )
    return pipeline.fit(features, customers(200)["churned"])


def test_written_model_predicts_the_same_through_mlflow_pyfunc(
    model: Pipeline, features: pd.DataFrame, tmp_path: Path
) -> None:
    folder = write_mlflow_model(model, tmp_path / "model", input_example=features.head(5))
    served = mlflow.pyfunc.load_model(str(folder))
    np.testing.assert_array_equal(served.predict(features), model.predict(features))
    loaded = mlflow.sklearn.load_model(str(folder))
    np.testing.assert_allclose(loaded.predict_proba(features), model.predict_proba(features))


def test_written_signature_and_example_are_mlflows_own(
    model: Pipeline, features: pd.DataFrame, tmp_path: Path
) -> None:
    from mlflow.models import Model

    folder = write_mlflow_model(model, tmp_path / "model", input_example=features.head(5))
    signature = Model.load(str(folder)).signature
    assert signature is not None
    assert signature.inputs.input_names() == ["customer_id", "spend", "plan", "trial"]
    assert [kind.name for kind in signature.inputs.input_types()] == [
        "long",
        "double",
        "string",
        "boolean",
    ]
    example = Model.load(str(folder)).load_input_example(str(folder))
    pd.testing.assert_frame_equal(example, features.head(5), check_dtype=False)


def test_written_folder_lists_requirements_and_environments(
    model: Pipeline, tmp_path: Path
) -> None:
    folder = write_mlflow_model(model, tmp_path / "model")
    requirements = (folder / "requirements.txt").read_text().split()
    assert "mlflow" in requirements
    assert any(line.startswith("scikit-learn==") for line in requirements)
    assert any(line.startswith("loopml==") for line in requirements)
    assert yaml.safe_load((folder / "python_env.yaml").read_text())["dependencies"] == [
        "-r requirements.txt"
    ]
    flavors = yaml.safe_load((folder / "MLmodel").read_text())["flavors"]
    assert set(flavors) == {"python_function", "sklearn"}
    assert "signature" not in yaml.safe_load((folder / "MLmodel").read_text())


def test_explicit_requirements_replace_the_defaults(model: Pipeline, tmp_path: Path) -> None:
    folder = write_mlflow_model(model, tmp_path / "model", requirements=["scikit-learn>=1.4"])
    assert (folder / "requirements.txt").read_text() == "scikit-learn>=1.4\n"


def test_written_model_reads_back(model: Pipeline, features: pd.DataFrame, tmp_path: Path) -> None:
    folder = write_mlflow_model(model, tmp_path / "model", input_example=features.head(3))
    read = read_mlflow_model(folder)
    np.testing.assert_array_equal(read.model.predict(features), model.predict(features))
    assert read.signature[0] == {"name": "customer_id", "type": "long"}
    assert read.input_example is not None and list(read.input_example["plan"]) == list(
        features["plan"].head(3)
    )
    assert read.mlflow_version is None


@pytest.mark.parametrize("serialization", ["pickle", "cloudpickle"])
def test_reads_models_saved_by_mlflow(
    serialization: str, model: Pipeline, features: pd.DataFrame, tmp_path: Path
) -> None:
    folder = tmp_path / "mlflow-model"
    mlflow.sklearn.save_model(
        model,
        str(folder),
        serialization_format=serialization,
        input_example=features.head(3),
        pip_requirements=["scikit-learn"],  # skips MLflow's slow requirement inference
    )
    read = read_mlflow_model(folder)
    np.testing.assert_array_equal(read.model.predict(features), model.predict(features))
    assert read.mlflow_version == mlflow.__version__
    assert [column["name"] for column in read.signature] == list(features.columns)
    assert read.input_example is not None and len(read.input_example) == 3


def test_cloudpickle_model_without_cloudpickle_is_a_clear_error(
    model: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "mlflow-model"
    mlflow.sklearn.save_model(
        model, str(folder), serialization_format="cloudpickle", pip_requirements=["scikit-learn"]
    )
    monkeypatch.setitem(sys.modules, "cloudpickle", None)  # import now raises ImportError
    with pytest.raises(ConfigError, match="pip install cloudpickle"):
        read_mlflow_model(folder)


def test_folder_without_mlmodel_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not an MLflow model"):
        read_mlflow_model(tmp_path)


def test_model_without_sklearn_flavor_is_refused(tmp_path: Path) -> None:
    mlmodel = {"flavors": {"python_function": {"loader_module": "my_loader"}}}
    (tmp_path / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    with pytest.raises(
        ValidationError, match=r"no sklearn flavor \(its flavors: python_function\)"
    ):
        read_mlflow_model(tmp_path)


def test_skops_serialization_is_refused_with_the_fix(tmp_path: Path) -> None:
    mlmodel = {
        "flavors": {"sklearn": {"pickled_model": "model.skops", "serialization_format": "skops"}}
    }
    (tmp_path / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    with pytest.raises(ValidationError, match="serialization_format='pickle'"):
        read_mlflow_model(tmp_path)


def test_writing_into_a_used_folder_is_refused(model: Pipeline, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValidationError, match="not an empty directory"):
        write_mlflow_model(model, tmp_path)
