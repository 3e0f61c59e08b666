"""ONNX export: loopml's pipelines and boosting models convert, match, or are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline

import loopml
from loopml.errors import ExportError, ValidationError
from loopml.training._preprocess import build_preprocessor, column_kinds
from tests.training import customers

pytest.importorskip("skl2onnx", reason="ONNX export is the optional onnx extra")
pytest.importorskip("onnxruntime", reason="ONNX export is the optional onnx extra")

from loopml.registry.onnx_export import (
    OnnxModel,
    check_parity,
    export_onnx,
    onnx_predict,
    to_onnx,
)


def training_frame() -> pd.DataFrame:
    """A churn-like frame: numbers with NaNs, a category, a bool and a ``spend`` target."""
    return customers(300).drop(columns="signed_up")


@pytest.fixture(scope="module")
def held_out() -> pd.DataFrame:
    """Other rows, with a missing and an unseen category, a missing number and bool."""
    rows = customers(120, seed=1).drop(columns=["signed_up", "churned"])
    rows.loc[0, "plan"] = None
    rows.loc[1, "plan"] = "enterprise"
    rows.loc[2, "spend"] = np.nan
    rows["trial"] = rows["trial"].astype(object)
    rows.loc[3, "trial"] = None
    return rows


def fitted(estimator: Any, target: str = "churned") -> Pipeline:
    """``estimator`` behind loopml's default preprocessing, as ``ws.train`` builds it."""
    frame = training_frame()
    if target == "amount":
        frame["amount"] = frame["customer_id"] * 0.5 + frame["spend"].fillna(0) * 3
    features = frame.drop(columns=["churned", "amount"], errors="ignore")
    kinds = column_kinds(features, list(features.columns), None)
    pipeline = Pipeline([("preprocess", build_preprocessor(kinds)), ("model", estimator)])
    return pipeline.fit(features, frame[target])


@pytest.fixture(scope="module")
def logistic() -> Pipeline:
    return fitted(LogisticRegression(max_iter=500))


def test_logistic_pipeline_matches_in_double_precision(
    logistic: Pipeline, held_out: pd.DataFrame
) -> None:
    onnx_bytes, report = export_onnx(logistic, held_out)
    assert report.passed
    assert report.rows == 120
    assert report.label_agreement == 1.0
    assert report.max_probability_difference is not None
    assert report.max_probability_difference < 1e-12  # float64 end to end
    labels, probabilities = onnx_predict(onnx_bytes, held_out)
    assert labels.dtype == bool  # the classes' own type, not skl2onnx's int64
    assert probabilities is not None and probabilities.shape == (120, 2)


def test_missing_and_unseen_categories_encode_like_the_model(
    logistic: Pipeline, held_out: pd.DataFrame
) -> None:
    rows = held_out.head(4)
    _, probabilities = onnx_predict(to_onnx(logistic, held_out), rows)
    np.testing.assert_allclose(probabilities, logistic.predict_proba(rows), atol=1e-12)


def test_one_onnx_input_per_column_typed_by_the_data(
    logistic: Pipeline, held_out: pd.DataFrame
) -> None:
    model = OnnxModel.from_bytes(to_onnx(logistic, held_out))
    types = {spec.name: spec.type for spec in model.session.get_inputs()}
    assert types == {
        "customer_id": "tensor(double)",
        "spend": "tensor(double)",
        "plan": "tensor(string)",
        "trial": "tensor(string)",
    }
    assert [output.name for output in model.session.get_outputs()] == ["label", "probabilities"]


def test_regressor_pipeline_matches(held_out: pd.DataFrame) -> None:
    model = fitted(Ridge(), target="amount")
    _, report = export_onnx(model, held_out)
    assert report.label_agreement is None
    assert report.max_prediction_difference is not None
    assert report.max_prediction_difference < 1e-9


@pytest.mark.parametrize("package", ["lightgbm", "xgboost"])
def test_boosting_classifier_in_a_pipeline_matches(package: str, held_out: pd.DataFrame) -> None:
    classifier = boosting(package, "Classifier")
    _, report = export_onnx(fitted(classifier), held_out)
    assert report.label_agreement == 1.0
    assert report.max_probability_difference is not None
    assert report.max_probability_difference <= 1e-4  # float32 trees; measured ~1e-7


@pytest.mark.parametrize("package", ["lightgbm", "xgboost"])
def test_boosting_regressor_in_a_pipeline_matches(package: str, held_out: pd.DataFrame) -> None:
    regressor = boosting(package, "Regressor")
    _, report = export_onnx(fitted(regressor, target="amount"), held_out)
    assert report.max_relative_prediction_difference is not None
    assert report.max_relative_prediction_difference <= 1e-4


@pytest.mark.parametrize(
    ("package", "kind"), [("lightgbm", "Classifier"), ("xgboost", "Regressor")]
)
def test_bare_boosting_model_on_numbers_matches(
    package: str, kind: str, held_out: pd.DataFrame
) -> None:
    frame = training_frame()
    numbers = ["customer_id", "spend"]
    target = frame["churned"] if kind == "Classifier" else frame["spend"].fillna(0) * 2
    model = boosting(package, kind).fit(frame[numbers], target)
    onnx_bytes, report = export_onnx(model, held_out[numbers])
    assert report.passed
    np.testing.assert_allclose(
        OnnxModel.from_bytes(onnx_bytes).predict(held_out),
        model.predict(held_out[numbers]),
        rtol=1e-5,
        atol=1e-4,
    )


def test_model_trained_by_the_workspace_exports(
    sqlite_workspace: loopml.Workspace, held_out: pd.DataFrame
) -> None:
    result = sqlite_workspace.train(
        LogisticRegression(max_iter=500), data=training_frame(), target="churned"
    )
    _, report = export_onnx(result.model, held_out)
    assert report.label_agreement == 1.0


class Doubler(BaseEstimator, TransformerMixin):  # type: ignore[misc]
    """A custom step that no ONNX converter knows."""

    def fit(self, frame: Any, target: Any = None) -> Doubler:
        return self

    def transform(self, frame: Any) -> Any:
        return frame * 2


def test_custom_transformer_is_refused_naming_the_step(held_out: pd.DataFrame) -> None:
    numbers = ["customer_id", "spend"]
    frame = training_frame()
    model = Pipeline([("double", Doubler()), ("model", Ridge())])
    model.fit(frame[numbers].fillna(0), frame["spend"].fillna(0))
    with pytest.raises(ExportError, match=r"Pipeline > double \(Doubler\)") as caught:
        export_onnx(model, held_out[numbers])
    assert "bundle" in str(caught.value) and "MLflow" in str(caught.value)


def test_datetime_preprocessing_is_refused(held_out: pd.DataFrame) -> None:
    frame = customers(100)
    features = frame.drop(columns="churned")
    kinds = column_kinds(features, list(features.columns), None)
    model = Pipeline([("preprocess", build_preprocessor(kinds)), ("model", Ridge())])
    model.fit(features, frame["spend"].fillna(0))
    with pytest.raises(ExportError, match=r"preprocess > datetime > parts .*datetime_parts"):
        to_onnx(model, features)


def tampered(onnx_bytes: bytes) -> bytes:
    """The same graph with its largest weight tensor scaled by 1.5."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load_from_string(onnx_bytes)
    weights = max(
        (
            tensor
            for tensor in graph.graph.initializer
            if tensor.data_type == onnx.TensorProto.DOUBLE
        ),
        key=lambda tensor: numpy_helper.to_array(tensor).size,
    )
    weights.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weights) * 1.5, weights.name))
    data: bytes = graph.SerializeToString()
    return data


def test_tampered_onnx_fails_parity_and_export_refuses(
    logistic: Pipeline, held_out: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    import loopml.registry.onnx_export as onnx_export

    changed = tampered(to_onnx(logistic, held_out))
    report = check_parity(logistic, changed, held_out)
    assert not report.passed
    assert report.max_probability_difference is not None
    assert report.max_probability_difference > 1e-2
    monkeypatch.setattr(onnx_export, "to_onnx", lambda model, sample: changed)
    with pytest.raises(ExportError, match="never ships a silently different model"):
        export_onnx(logistic, held_out)


def test_unmeetable_tolerance_is_refused_with_the_numbers(held_out: pd.DataFrame) -> None:
    model = fitted(boosting("lightgbm", "Classifier"))
    with pytest.raises(ExportError, match=r"probabilities differ by up to \d\.\d+e-\d+"):
        export_onnx(model, held_out, atol=0.0)  # float32 trees cannot match exactly


def test_onnx_model_loads_from_a_file_and_behaves_like_the_model(
    logistic: Pipeline, held_out: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / OnnxModel.model_file
    path.write_bytes(to_onnx(logistic, held_out))
    model = OnnxModel.load(path)
    assert list(model.classes_) == list(logistic.classes_)
    np.testing.assert_array_equal(model.predict(held_out), logistic.predict(held_out))
    np.testing.assert_allclose(
        model.predict_proba(held_out), logistic.predict_proba(held_out), atol=1e-12
    )
    with pytest.raises(ValidationError, match="lack the model's input column 'plan'"):
        model.predict(held_out.drop(columns="plan"))


def test_regressor_onnx_model_has_no_probabilities(held_out: pd.DataFrame) -> None:
    model = OnnxModel.from_bytes(to_onnx(fitted(Ridge(), target="amount"), held_out))
    assert not hasattr(model, "classes_")
    with pytest.raises(ValidationError, match="regressor"):
        model.predict_proba(held_out)


def boosting(package: str, kind: str) -> Any:
    """A small LightGBM or XGBoost ``Classifier`` / ``Regressor`` (skips without it)."""
    module = pytest.importorskip(package, reason=f"{package} is the optional boosting extra")
    if package == "lightgbm":
        return getattr(module, f"LGBM{kind}")(n_estimators=20, verbose=-1)
    return getattr(module, f"XGB{kind}")(n_estimators=20, max_depth=3)


def test_tree_models_on_rounded_data_keep_parity() -> None:
    """Rounded data puts values right on split thresholds: scikit-learn's trees compare in
    float32, so the export must too (fed doubles, ONNX trees sent such rows astray)."""
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    columns = [f"f{i}" for i in range(8)]
    X = pd.DataFrame(rng.normal(size=(3000, 8)).round(4), columns=columns)
    y = (X.iloc[:, :3].sum(axis=1) + rng.normal(size=3000) > 0).astype(int)
    forest = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)
    held_out = pd.DataFrame(
        np.random.default_rng(3).normal(size=(2000, 8)).round(4), columns=columns
    )
    _, report = export_onnx(forest, held_out)
    assert report.label_agreement == 1.0 and report.max_probability_difference <= 1e-6
