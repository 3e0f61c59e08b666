"""LightGBM and XGBoost through their scikit-learn classes (the ``boosting`` extra)."""

from __future__ import annotations

import pytest

import loopml
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
