"""ws.evaluate end to end: model and data references, logging, storage, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

import loopml
from loopml.errors import NotFoundError, ValidationError
from loopml.evaluation import Evaluation
from tests.evaluation._samples import (
    binary_frame,
    binary_model,
    regression_frame,
    regression_model,
)

FAST = {"bootstrap": 20, "robustness": False}


def test_evaluating_a_runs_model_logs_metrics_plots_and_the_dataset_input(
    workspace: loopml.Workspace,
) -> None:
    frame = binary_frame()
    version = workspace.data.ingest(frame, name="churn", contract=False)
    with workspace.start_run("churn") as run:
        run.log_model(binary_model(frame))
    evaluation = workspace.evaluate(run, "churn@1", "churned", **FAST)

    assert evaluation.run_id == run.id
    assert evaluation.dataset == "churn@1"
    assert run.metrics["eval.roc_auc"] == pytest.approx(evaluation.metrics["roc_auc"])
    assert set(evaluation.metrics) >= {
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "pr_auc",
        "log_loss",
        "brier_score",
        "expected_calibration_error",
    }
    paths = {a.path for a in run.artifacts("evaluation")}
    assert {
        "evaluation/roc.html",
        "evaluation/pr.html",
        "evaluation/calibration.html",
        "evaluation/confusion_matrix.html",
        "evaluation/plotly.min.js",
    } <= paths
    assert (version, "evaluation") in [(v, role) for v, role in run.inputs()]


def test_stored_evaluations_are_listed_per_run_and_round_trip(
    workspace: loopml.Workspace,
) -> None:
    frame = binary_frame()
    with workspace.start_run("churn") as run:
        run.log_model(binary_model(frame))
    first = workspace.evaluate(run.id, frame, "churned", slices=["region"], **FAST)
    second = workspace.evaluate(f"runs:/{run.id}/model", frame, "churned", **FAST)

    stored = workspace.evaluations(run)
    assert [e.evaluation_id for e in stored] == [first.evaluation_id, second.evaluation_id]
    assert stored[0].to_dict() == json.loads(json.dumps(first.to_dict()))
    pd.testing.assert_frame_equal(stored[0].to_frame(), first.to_frame())
    pd.testing.assert_frame_equal(stored[0].slices, first.slices, check_dtype=False)
    assert Evaluation.from_dict(first.to_dict()).worst_slice == first.worst_slice


def test_a_deleted_and_collected_run_takes_its_evaluations_along(
    sqlite_workspace: loopml.Workspace,
) -> None:
    frame = binary_frame()
    with sqlite_workspace.start_run("churn") as run:
        run.log_model(binary_model(frame))
    sqlite_workspace.evaluate(run, frame, "churned", **FAST)
    sqlite_workspace.delete_run(run.id)
    sqlite_workspace.gc(grace_seconds=0)
    with sqlite_workspace.db.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT COUNT(*) FROM evaluations").scalar() == 0


def test_a_bare_model_is_evaluated_without_a_run_and_logs_where_asked(
    sqlite_workspace: loopml.Workspace,
) -> None:
    frame = binary_frame()
    model = binary_model(frame)
    alone = sqlite_workspace.evaluate(model, frame, "churned", **FAST)
    assert alone.run_id is None
    with sqlite_workspace.start_run("churn") as run:
        logged = sqlite_workspace.evaluate(model, frame, "churned", log_to=run, **FAST)
    assert logged.run_id == run.id
    assert "eval.f1" in run.metrics
    assert [e.evaluation_id for e in sqlite_workspace.evaluations(run)] == [logged.evaluation_id]


def test_metrics_have_intervals_for_the_headline_metrics_only(
    sqlite_workspace: loopml.Workspace,
) -> None:
    frame = binary_frame()
    evaluation = sqlite_workspace.evaluate(binary_model(frame), frame, "churned", bootstrap=50)
    table = evaluation.to_frame().set_index("metric")
    assert list(evaluation.to_frame().columns) == ["metric", "value", "low", "high"]
    assert table.loc[["roc_auc", "f1", "accuracy"], "low"].notna().all()
    assert table.loc[["precision", "log_loss"], "low"].isna().all()
    assert (table["low"].dropna() <= table.loc[table["low"].notna(), "value"]).all()


def test_regression_gets_error_metrics_residual_plot_and_intervals(
    sqlite_workspace: loopml.Workspace,
) -> None:
    frame = regression_frame()
    with sqlite_workspace.start_run("prices") as run:
        run.log_model(regression_model(frame))
    evaluation = sqlite_workspace.evaluate(run, frame, "price", **FAST)
    assert evaluation.task == "regression"
    assert set(evaluation.metrics) == {"mae", "rmse", "r2", "mape"}
    assert set(evaluation.intervals) == {"rmse", "r2"}
    assert "evaluation/residuals.html" in {a.path for a in run.artifacts("evaluation")}


def test_multiclass_models_are_evaluated_with_macro_metrics(
    sqlite_workspace: loopml.Workspace,
) -> None:
    frame = binary_frame()
    frame["plan"] = pd.cut(frame["tenure"], [-10, -0.5, 0.5, 10], labels=["a", "b", "c"])
    frame["plan"] = frame["plan"].astype(str)
    model = LogisticRegression().fit(frame[["tenure", "spend"]], frame["plan"])
    evaluation = sqlite_workspace.evaluate(model, frame.drop(columns="churned"), "plan", **FAST)
    assert evaluation.task == "multiclass"
    assert evaluation.metrics["accuracy"] > 0.8
    assert len(evaluation.curves["confusion_matrix"]) == 3


def test_a_classifier_without_probabilities_uses_its_decision_function(
    sqlite_workspace: loopml.Workspace,
) -> None:
    from sklearn.svm import LinearSVC

    frame = binary_frame()
    model = LinearSVC().fit(frame[["tenure", "spend"]], frame["churned"])
    evaluation = sqlite_workspace.evaluate(model, frame, "churned", **FAST)
    expected = roc_auc_score(frame["churned"], model.decision_function(frame[["tenure", "spend"]]))
    assert evaluation.metrics["roc_auc"] == pytest.approx(expected)
    assert "log_loss" not in evaluation.metrics


# -- bad input ---------------------------------------------------------------------------
def test_a_missing_target_column_is_refused(sqlite_workspace: loopml.Workspace) -> None:
    frame = binary_frame()
    with pytest.raises(ValidationError, match="target column 'label' is not in the data"):
        sqlite_workspace.evaluate(binary_model(frame), frame, "label")


def test_missing_values_in_the_target_are_refused(sqlite_workspace: loopml.Workspace) -> None:
    frame = binary_frame()
    model = binary_model(frame)
    frame["churned"] = frame["churned"].astype(float)
    frame.loc[[3, 7], "churned"] = np.nan
    with pytest.raises(ValidationError, match="2 missing value"):
        sqlite_workspace.evaluate(model, frame, "churned")


def test_a_feature_the_model_needs_is_refused_by_name(sqlite_workspace: loopml.Workspace) -> None:
    frame = binary_frame()
    model = binary_model(frame)
    with pytest.raises(ValidationError, match=r"needs feature\(s\) \['spend'\]"):
        sqlite_workspace.evaluate(model, frame.drop(columns="spend"), "churned")


@pytest.mark.parametrize("option", ["slices", "sensitive"])
def test_unknown_slice_and_sensitive_columns_are_refused(
    sqlite_workspace: loopml.Workspace, option: str
) -> None:
    frame = binary_frame()
    with pytest.raises(
        ValidationError, match=f"Unknown {option if option == 'sensitive' else 'slice'} column"
    ):
        sqlite_workspace.evaluate(binary_model(frame), frame, "churned", **{option: "planet"})


def test_a_model_that_cannot_predict_is_refused(sqlite_workspace: loopml.Workspace) -> None:
    frame = binary_frame()
    with pytest.raises(ValidationError, match="has no predict method"):
        sqlite_workspace.evaluate(object(), frame, "churned")
    with pytest.raises(ValidationError, match=r"could not predict.*NotFittedError"):
        sqlite_workspace.evaluate(LogisticRegression(), frame, "churned")


def test_an_unknown_run_is_not_found(sqlite_workspace: loopml.Workspace) -> None:
    frame = binary_frame()
    with pytest.raises(NotFoundError):
        sqlite_workspace.evaluate("0" * 32, frame, "churned")
    with pytest.raises(NotFoundError):
        sqlite_workspace.evaluate(f"runs:/{'ab' * 16}/model", frame, "churned")


def test_an_unknown_registry_reference_is_not_found(sqlite_workspace: loopml.Workspace) -> None:
    with pytest.raises(NotFoundError, match="No registered model 'churn'"):
        sqlite_workspace.evaluate("models:/churn@production", binary_frame(), "churned")


def test_evaluation_does_not_call_predict_more_than_once_per_pass(
    sqlite_workspace: loopml.Workspace,
) -> None:
    class Counting(BaseEstimator):
        def __init__(self, inner: object = None) -> None:
            self.inner = inner

        def predict(self, X: pd.DataFrame) -> np.ndarray:
            calls.append(len(X))
            return self.inner.predict(X)  # type: ignore[attr-defined]

    calls: list[int] = []
    regression = regression_frame()
    model = Counting(regression_model(regression))
    sqlite_workspace.evaluate(
        model, regression, "price", bootstrap=200, slices=["size"], robustness=False
    )
    assert calls == [len(regression)]


def test_a_regressor_trained_on_zero_one_labels_is_evaluated_as_a_regressor(
    sqlite_workspace: loopml.Workspace,
) -> None:
    frame = binary_frame()
    model = regression_model(
        frame.rename(columns={"tenure": "size", "spend": "rooms", "churned": "price"})
    )
    data = frame.rename(columns={"tenure": "size", "spend": "rooms"})
    evaluation = sqlite_workspace.evaluate(model, data, "churned", **FAST)
    assert evaluation.task == "regression"


def test_a_dataset_version_object_is_accepted_as_data(sqlite_workspace: loopml.Workspace) -> None:
    frame = binary_frame()
    version = sqlite_workspace.data.ingest(frame, name="churn", contract=False)
    evaluation = sqlite_workspace.evaluate(binary_model(frame), version, "churned", **FAST)
    assert evaluation.dataset == "churn@1"
    assert evaluation.settings["dataset_hash"] == version.content_hash
