"""Bad input to ``ws.train``: each a clear error that says what to do."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.errors import LoopmlError, ValidationError
from loopml.store import RunStatus
from loopml.training import TrainingError
from tests.training import customers


class Exploding(ClassifierMixin, BaseEstimator):
    """A classifier whose fit always raises."""

    def fit(self, features: Any, target: Any) -> Exploding:
        raise ArithmeticError("the solver diverged")


def test_missing_target_names_the_columns(sqlite_workspace: loopml.Workspace) -> None:
    with pytest.raises(
        ValidationError,
        match=r"Target column 'churn' is not in the data; it has customer_id, spend",
    ):
        sqlite_workspace.train(LogisticRegression(), data=customers(), target="churn")
    assert sqlite_workspace.count_runs() == 0


def test_missing_target_in_a_stored_version(sqlite_workspace: loopml.Workspace) -> None:
    sqlite_workspace.data.ingest(customers(), name="churn")
    with pytest.raises(ValidationError, match="Pass target= one of them"):
        sqlite_workspace.train(LogisticRegression(), data="churn@1", target="label")


def test_constant_target_is_refused(sqlite_workspace: loopml.Workspace) -> None:
    frame = customers().assign(churned=True)
    with pytest.raises(ValidationError, match=r"single value \(True\).*choose another target"):
        sqlite_workspace.train(LogisticRegression(), data=frame, target="churned")


def test_missing_feature_is_named(sqlite_workspace: loopml.Workspace) -> None:
    with pytest.raises(ValidationError, match=r"Feature\(s\) 'age' not in the data.*Fix features="):
        sqlite_workspace.train(
            LogisticRegression(), data=customers(), target="churned", features=["spend", "age"]
        )


def test_nan_in_target_names_the_rows(sqlite_workspace: loopml.Workspace) -> None:
    frame = customers().astype({"churned": "float64"})
    frame.loc[[3, 8], "churned"] = np.nan
    with pytest.raises(ValidationError, match=r"2 missing value\(s\) \(e.g. at rows \[3, 8\]\)"):
        sqlite_workspace.train(LogisticRegression(), data=frame, target="churned")
    assert sqlite_workspace.count_runs() == 0


def test_class_only_in_validation_names_it_and_suggests_stratified(
    sqlite_workspace: loopml.Workspace,
) -> None:
    frame = customers().assign(churned=lambda f: f["churned"].map({True: "yes", False: "no"}))
    from loopml.training._data import _split_frame

    spec = {"by": "random", "fractions": {"train": 0.8, "valid": 0.2}, "seed": 0, "column": None}
    valid_row = _split_frame(frame, spec)["valid"].index[0]
    frame.loc[valid_row, "churned"] = "maybe"
    with pytest.raises(
        ValidationError, match=r"Class\(es\) 'maybe'.*only in the validation.*'stratified'"
    ):
        sqlite_workspace.train(LogisticRegression(), data=frame, target="churned", split="random")
    assert sqlite_workspace.count_runs() == 0


def test_fit_error_fails_the_run_and_names_it(sqlite_workspace: loopml.Workspace) -> None:
    with pytest.raises(TrainingError) as caught:
        sqlite_workspace.train(Exploding(), data=customers(), target="churned")

    error = caught.value
    assert isinstance(error, LoopmlError)
    assert isinstance(error.__cause__, ArithmeticError)
    run = sqlite_workspace.get_run(error.run_id)
    assert run.id in str(error) and "the solver diverged" in str(error)
    assert run.info.status == RunStatus.FAILED
    assert "ArithmeticError: the solver diverged" in (run.info.error or "")


def test_unknown_metric_lists_the_known_ones(sqlite_workspace: loopml.Workspace) -> None:
    with pytest.raises(
        ValidationError, match=r"Unknown metric.*'auc'.*accuracy, f1, roc_auc, log_loss"
    ):
        sqlite_workspace.train(
            LogisticRegression(), data=customers(), target="churned", metrics=["auc"]
        )


def test_bad_param_names_the_estimator(sqlite_workspace: loopml.Workspace) -> None:
    with pytest.raises(ValidationError, match=r"Cannot set params.*LogisticRegression"):
        sqlite_workspace.train(
            LogisticRegression(), data=customers(), target="churned", params={"depth": 3}
        )


def test_split_without_valid_part_is_refused(sqlite_workspace: loopml.Workspace) -> None:
    with pytest.raises(ValidationError, match="exactly the parts 'train' and 'valid'"):
        sqlite_workspace.train(
            LogisticRegression(),
            data=customers(),
            target="churned",
            split={"fractions": {"train": 0.8, "test": 0.2}},
        )


def test_model_that_is_neither_estimator_nor_function(sqlite_workspace: loopml.Workspace) -> None:
    with pytest.raises(ValidationError, match="scikit-learn style estimator"):
        sqlite_workspace.train("RandomForest", data=customers(), target="churned")


def test_data_of_another_type_is_refused(sqlite_workspace: loopml.Workspace) -> None:
    with pytest.raises(ValidationError, match="dataset reference such as 'churn@4'"):
        sqlite_workspace.train(LogisticRegression(), data=[1, 2, 3], target="churned")


def test_estimator_class_instead_of_instance_says_to_call_it(
    sqlite_workspace: loopml.Workspace,
) -> None:
    with pytest.raises(ValidationError, match=r"write LogisticRegression\(\)"):
        sqlite_workspace.train(LogisticRegression, data=customers(), target="churned")
