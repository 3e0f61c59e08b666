"""scikit-learn autologging."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from sklearn.datasets import load_iris, make_regression
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import loopml


@pytest.fixture
def autologging() -> Iterator[None]:
    loopml.autolog()
    yield
    loopml.autolog(disable=True)


@pytest.mark.usefixtures("autologging")
def test_fit_in_a_run_records_params_metrics_and_model(
    sqlite_workspace: loopml.Workspace,
) -> None:
    X, y = load_iris(return_X_y=True)
    with sqlite_workspace.start_run() as run:
        model = LogisticRegression(C=0.5, max_iter=500).fit(X, y)
    params = run.params
    assert params["C"] == "0.5" and params["max_iter"] == "500"
    assert params["estimator_class"].endswith("LogisticRegression")
    metrics = run.metrics
    assert metrics["fit_time_s"] > 0
    assert metrics["training_accuracy"] == pytest.approx(model.score(X, y))
    assert 0.9 < metrics["training_roc_auc"] <= 1.0
    restored = run.load_model()
    assert np.array_equal(restored.predict(X), model.predict(X))


@pytest.mark.usefixtures("autologging")
def test_a_pipeline_is_logged_once_as_a_whole(sqlite_workspace: loopml.Workspace) -> None:
    X, y = make_regression(n_samples=200, n_features=4, noise=0.1, random_state=0)
    with sqlite_workspace.start_run() as run:
        make_pipeline(StandardScaler(), LinearRegression()).fit(X, y)
    assert run.params["estimator_class"].endswith("Pipeline")
    assert "linearregression__fit_intercept" in run.params
    assert len(run.metric_history("fit_time_s")) == 1
    assert run.metrics["training_r2"] > 0.99


@pytest.mark.usefixtures("autologging")
def test_fit_outside_a_run_logs_nothing(sqlite_workspace: loopml.Workspace) -> None:
    X, y = load_iris(return_X_y=True)
    LogisticRegression(max_iter=300).fit(X, y)
    assert sqlite_workspace.search_runs().empty


def test_disable_restores_the_original_fit(sqlite_workspace: loopml.Workspace) -> None:
    original = LogisticRegression.fit
    loopml.autolog()
    assert LogisticRegression.fit is not original
    loopml.autolog(disable=True)
    assert LogisticRegression.fit is original
    X, y = load_iris(return_X_y=True)
    with sqlite_workspace.start_run() as run:
        LogisticRegression(max_iter=300).fit(X, y)
    assert run.params == {} and run.metrics == {}
