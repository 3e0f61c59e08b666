"""LightGBM and XGBoost through their scikit-learn classes (the ``boosting`` extra)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

import loopml
from loopml.training._labels import LabelEncodedClassifier
from tests.training import cancer, customers, diabetes


def test_lightgbm_classifier_trains_with_preprocessing(sqlite_workspace: loopml.Workspace) -> None:
    lightgbm = pytest.importorskip("lightgbm", reason="LightGBM is the optional boosting extra")
    model = lightgbm.LGBMClassifier(n_estimators=20, verbose=-1)
    result = sqlite_workspace.train(model, data=customers(), target="churned")
    assert result.task == "classification"
    assert result.metrics["roc_auc"] > 0.8
    assert result.run.params["n_estimators"] == "20"
    assert result.run.load_model().predict(customers(3).drop(columns="churned")).shape == (3,)


def test_xgboost_regressor_cross_validates(sqlite_workspace: loopml.Workspace) -> None:
    xgboost = pytest.importorskip("xgboost", reason="XGBoost is the optional boosting extra")
    model = xgboost.XGBRegressor(n_estimators=20, max_depth=3)
    result = sqlite_workspace.train(model, data=diabetes(), target="target", cv=2)
    assert result.task == "regression"
    assert "cv_rmse_mean" in result.metrics


def test_xgboost_classifier_with_numeric_labels(sqlite_workspace: loopml.Workspace) -> None:
    xgboost = pytest.importorskip("xgboost", reason="XGBoost is the optional boosting extra")
    result = sqlite_workspace.train(
        xgboost.XGBClassifier(n_estimators=10), data=cancer(), target="target"
    )
    assert result.metrics["accuracy"] > 0.9


# -- text labels ----------------------------------------------------------------------
def yes_no(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    """``customers`` with the target as text: "yes" / "no"."""
    frame = customers(rows, seed)
    frame["churned"] = frame["churned"].map({True: "yes", False: "no"})
    return frame


def booster(library: str) -> Any:
    module = pytest.importorskip(library, reason=f"{library} is the optional boosting extra")
    if library == "xgboost":
        return module.XGBClassifier(n_estimators=15, max_depth=3)
    return module.LGBMClassifier(n_estimators=15, verbose=-1)


def assert_answers_in_labels(model: Any) -> None:
    """Raw records in, "yes"/"no" out, with classes_ and predict_proba agreeing."""
    raw = yes_no(40, seed=5).drop(columns="churned")
    raw.loc[0, "plan"] = "enterprise"  # a category never seen in training
    predicted = model.predict(raw)
    assert list(model.classes_) == ["no", "yes"]
    assert set(predicted) <= {"no", "yes"} and len(set(predicted)) == 2
    probabilities = model.predict_proba(raw)
    assert probabilities.shape == (40, 2)
    assert list(model.classes_[probabilities.argmax(axis=1)]) == list(predicted)


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_text_labels_train_and_the_stored_model_predicts_them(
    sqlite_workspace: loopml.Workspace, library: str
) -> None:
    result = sqlite_workspace.train(booster(library), data=yes_no(), target="churned")

    assert result.metrics["roc_auc"] > 0.9 and result.metrics["accuracy"] > 0.9
    stored = sqlite_workspace.get_run(result.run.id).load_model()
    assert_answers_in_labels(stored)
    assert isinstance(stored[-1], LabelEncodedClassifier) == (library == "xgboost")


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_text_labels_tune_and_the_best_model_predicts_them(
    sqlite_workspace: loopml.Workspace, library: str
) -> None:
    pytest.importorskip("optuna")
    result = sqlite_workspace.tune(
        booster(library),
        space={"max_depth": [2, 4], "learning_rate": {"type": "float", "low": 0.05, "high": 0.3}},
        data=yes_no(),
        target="churned",
        n_trials=2,
        cv=2,
    )

    assert set(result.trials["state"]) == {"COMPLETE"}
    assert result.best_metrics["roc_auc"] > 0.9
    stored = result.run.load_model()
    assert_answers_in_labels(stored)
    assert stored.get_params()  # the stored model is a plain, inspectable estimator


def test_labels_that_are_already_codes_are_not_wrapped(sqlite_workspace: loopml.Workspace) -> None:
    result = sqlite_workspace.train(booster("xgboost"), data=cancer(), target="target")
    assert type(result.model[-1]).__name__ == "XGBClassifier"


def test_a_user_pipeline_gets_its_last_step_wrapped(sqlite_workspace: loopml.Workspace) -> None:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = cancer()
    data["target"] = data["target"].map({0: "malignant", 1: "benign"})
    pipeline = make_pipeline(StandardScaler(), booster("xgboost"))

    result = sqlite_workspace.train(pipeline, data=data, target="target")

    assert isinstance(result.model[-1], LabelEncodedClassifier)
    assert list(result.model.classes_) == ["benign", "malignant"]
    assert result.metrics["accuracy"] > 0.9
