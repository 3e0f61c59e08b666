"""``ws.train``: what a training run fits, scores and records."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

import loopml
from loopml.store import RunStatus
from tests.training import cancer, customers, diabetes


@pytest.fixture
def ws(sqlite_workspace: loopml.Workspace) -> loopml.Workspace:
    sqlite_workspace.data.ingest(customers(), name="churn")
    return sqlite_workspace


def test_classifier_run_records_params_metrics_inputs_and_model(ws: loopml.Workspace) -> None:
    result = ws.train(LogisticRegression(C=0.5), data="churn@1", target="churned")

    run = result.run
    assert run.info.status == RunStatus.FINISHED
    assert run.experiment == "churn"
    assert set(result.metrics) == {"accuracy", "f1", "roc_auc", "log_loss", "fit_seconds"}
    assert result.metrics["accuracy"] > 0.8
    assert run.metrics["roc_auc"] == pytest.approx(result.metrics["roc_auc"])
    params = run.params
    assert params["C"] == "0.5"
    assert params["train.target"] == "churned"
    assert params["train.data"] == "churn@1"
    assert params["train.model"].endswith("LogisticRegression")
    assert '"by": "stratified"' in params["train.split"]
    assert sorted((v.ref, role) for v, role in run.inputs()) == [
        ("churn@1", "train"),
        ("churn@1", "valid"),
    ]
    assert run.info.environment_id is not None


def test_stored_model_takes_raw_records_with_unseen_categories(ws: loopml.Workspace) -> None:
    result = ws.train(LogisticRegression(), data="churn", target="churned")

    stored = result.run.load_model()
    raw = customers(5, seed=9).drop(columns="churned")
    raw.loc[0, "plan"] = "enterprise"  # never seen in training
    raw.loc[1, "spend"] = np.nan
    assert isinstance(stored, Pipeline)
    assert list(stored.predict(raw)) == list(result.model.predict(raw))
    assert "enterprise" not in str(stored[0].get_feature_names_out())


def test_passed_estimator_stays_unfitted(ws: loopml.Workspace) -> None:
    model = LogisticRegression()
    ws.train(model, data="churn", target="churned")
    assert not hasattr(model, "coef_")


def test_user_pipeline_is_not_wrapped(sqlite_workspace: loopml.Workspace) -> None:
    pipeline = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())])
    result = sqlite_workspace.train(pipeline, data=cancer(), target="target")
    assert [name for name, _ in result.model.steps] == ["scale", "model"]
    assert result.run.params["model__C"] == "1.0"


def test_preprocess_false_fits_the_bare_estimator(sqlite_workspace: loopml.Workspace) -> None:
    result = sqlite_workspace.train(
        DecisionTreeClassifier(max_depth=3), data=cancer(), target="target", preprocess=False
    )
    assert isinstance(result.model, DecisionTreeClassifier)


def test_regressor_gets_regression_metrics_and_random_split(
    sqlite_workspace: loopml.Workspace,
) -> None:
    sqlite_workspace.data.ingest(diabetes(), name="diabetes")
    result = sqlite_workspace.train(
        Ridge(), data="diabetes", target="target", metrics=["rmse", "r2"]
    )
    assert set(result.metrics) == {"rmse", "r2", "fit_seconds"}
    assert result.task == "regression"
    assert 0.2 < result.metrics["r2"] < 1
    assert '"by": "random"' in result.run.params["train.split"]


def test_default_split_is_the_stored_reproducible_one(ws: loopml.Workspace) -> None:
    first = ws.train(LogisticRegression(), data="churn", target="churned")
    second = ws.train(LogisticRegression(), data="churn", target="churned")
    assert first.metrics["log_loss"] == second.metrics["log_loss"]


def test_time_split_passes_through(ws: loopml.Workspace) -> None:
    result = ws.train(
        LogisticRegression(),
        data="churn",
        target="churned",
        split={"by": "time", "column": "signed_up"},
    )
    assert '"by": "time"' in result.run.params["train.split"]


def test_a_test_part_of_the_split_is_held_out_from_training(ws: loopml.Workspace) -> None:
    split = {"by": "random", "fractions": {"train": 0.6, "valid": 0.2, "test": 0.2}}
    seen: dict[str, set[int]] = {}

    def fit(train: pd.DataFrame, valid: pd.DataFrame, params: dict[str, Any]) -> object:
        seen.update(train=set(train["customer_id"]), valid=set(valid["customer_id"]))
        return DummyClassifier().fit(train[["spend"]], train["churned"])

    result = ws.train(fit, data="churn", target="churned", split=split, task="classification")

    parts = ws.data.split("churn", **split)
    assert seen == {part: set(parts[part]["customer_id"]) for part in ("train", "valid")}
    assert not set(parts["test"]["customer_id"]) & (seen["train"] | seen["valid"])
    assert len(parts["test"]) == 60
    assert '"test": 0.2' in result.run.params["train.split"]


def test_dataframe_data_records_its_shape_not_a_version(sqlite_workspace: loopml.Workspace) -> None:
    result = sqlite_workspace.train(LogisticRegression(), data=customers(), target="churned")
    assert result.run.inputs() == []
    assert result.run.params["train.data"] == "DataFrame(300 rows x 6 columns)"
    assert result.run.experiment == "default"


def test_features_limit_the_model_inputs(ws: loopml.Workspace) -> None:
    result = ws.train(LogisticRegression(), data="churn", target="churned", features=["spend"])
    assert list(result.model[0].get_feature_names_out()) == ["numeric__spend"]
    assert result.features == ["spend"]


def test_params_are_set_on_the_estimator_and_logged(ws: loopml.Workspace) -> None:
    result = ws.train(
        LogisticRegression(), data="churn", target="churned", params={"C": 0.25}, run_name="lr"
    )
    assert result.model[-1].C == 0.25
    assert result.run.params["C"] == "0.25"
    assert result.run.info.name == "lr"


def test_metrics_subset_is_all_that_is_computed(ws: loopml.Workspace) -> None:
    result = ws.train(DummyClassifier(), data="churn", target="churned", metrics=["accuracy"])
    assert set(result.metrics) == {"accuracy", "fit_seconds"}


def test_multiclass_roc_auc_is_one_vs_rest(sqlite_workspace: loopml.Workspace) -> None:
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True).frame
    result = sqlite_workspace.train(LogisticRegression(), data=iris, target="target")
    assert result.metrics["roc_auc"] > 0.9
    assert 0 < result.metrics["f1"] <= 1


def test_trainer_function_gets_frames_and_params(ws: loopml.Workspace) -> None:
    seen: dict[str, object] = {}

    def fit_forest(train: pd.DataFrame, valid: pd.DataFrame, params: dict[str, Any]) -> object:
        seen.update(rows=len(train), valid_rows=len(valid), params=params)
        model = RandomForestRegressor(n_estimators=params["trees"], random_state=0)
        return model.fit(train[["customer_id"]], train["spend"].fillna(0))

    frame = customers().assign(spend=lambda f: f["spend"].fillna(0))
    result = ws.train(
        lambda train, valid, params: fit_forest(train, valid, params),
        data=frame,
        target="spend",
        features=["customer_id"],
        params={"trees": 5},
    )
    assert seen == {"rows": 240, "valid_rows": 60, "params": {"trees": 5}}
    assert result.task == "regression"
    assert result.run.params["trees"] == "5"
    assert "rmse" in result.metrics


def test_classifier_without_probabilities_reports_nan_probability_metrics(
    sqlite_workspace: loopml.Workspace,
) -> None:
    from sklearn.svm import LinearSVC

    result = sqlite_workspace.train(LinearSVC(), data=cancer(), target="target")
    assert result.metrics["accuracy"] > 0.9
    assert np.isnan(result.metrics["roc_auc"])


def test_dataset_version_object_is_accepted_as_data(ws: loopml.Workspace) -> None:
    version = ws.data.version("churn@1")
    result = ws.train(LogisticRegression(), data=version, target="churned")
    assert result.run.params["train.data"] == "churn@1"


class CountingClassifier(LogisticRegression):
    """Records the rows of every prediction call across clones (a class attribute)."""

    calls: list[int] = []

    def predict_proba(self, X: Any) -> Any:
        CountingClassifier.calls.append(len(X))
        return super().predict_proba(X)

    def predict(self, X: Any) -> Any:
        CountingClassifier.calls.append(len(X))
        return super().predict(X)


def test_validation_rows_are_predicted_once_for_all_metrics(ws: loopml.Workspace) -> None:
    CountingClassifier.calls = []
    result = ws.train(CountingClassifier(), data="churn", target="churned")
    assert len(result.metrics) == 5
    # One call on the validation rows; the bundle's 5-row input example is checked apart.
    assert len([rows for rows in CountingClassifier.calls if rows > 5]) == 1


def test_settings_left_unset_are_not_logged(ws: loopml.Workspace) -> None:
    result = ws.train(LogisticRegression(), data="churn", target="churned")
    assert "train.cv" not in result.run.params
