"""Cross-validation in ``ws.train``: folds, per-fold metrics, mean and std."""

from __future__ import annotations

import re

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, Ridge

import loopml
from loopml.errors import ValidationError
from tests.training import cancer, customers, diabetes


def test_cv_logs_each_fold_as_a_step_and_the_mean_and_std(
    sqlite_workspace: loopml.Workspace,
) -> None:
    result = sqlite_workspace.train(
        LogisticRegression(max_iter=2000), data=cancer(), target="target", cv=3
    )

    history = result.run.metric_history("cv_accuracy")
    assert list(history["step"]) == [0, 1, 2]
    assert result.metrics["cv_accuracy_mean"] == pytest.approx(history["value"].mean())
    assert result.metrics["cv_accuracy_std"] == pytest.approx(np.std(history["value"]))
    assert result.metrics["accuracy"] == result.metrics["cv_accuracy_mean"]
    assert result.run.params["train.cv"] == (
        '{"by": "stratified", "column": null, "folds": 3, "seed": 0}'
    )


def test_cv_without_split_refits_on_every_row(sqlite_workspace: loopml.Workspace) -> None:
    sqlite_workspace.data.ingest(diabetes(), name="diabetes")
    result = sqlite_workspace.train(Ridge(), data="diabetes", target="target", cv={"folds": 2})
    assert result.model[-1].n_features_in_ == 10
    assert [role for _, role in result.run.inputs()] == ["train"]
    assert "cv_rmse_mean" in result.metrics and "rmse" in result.metrics


def test_cv_with_split_scores_folds_of_train_and_the_holdout(
    sqlite_workspace: loopml.Workspace,
) -> None:
    result = sqlite_workspace.train(
        LogisticRegression(), data=customers(), target="churned", cv=2, split={"by": "stratified"}
    )
    assert result.metrics["accuracy"] != result.metrics["cv_accuracy_mean"]


@pytest.mark.parametrize(
    ("cv", "column"),
    [({"folds": 3, "by": "group", "column": "plan"}, "plan"),
     ({"folds": 3, "by": "time", "column": "signed_up"}, "signed_up"),
     ({"folds": 3, "by": "kfold"}, None)],
)  # fmt: skip
def test_cv_methods_each_produce_their_folds(
    sqlite_workspace: loopml.Workspace, cv: dict[str, object], column: str | None
) -> None:
    result = sqlite_workspace.train(LogisticRegression(), data=customers(), target="churned", cv=cv)
    assert len(result.run.metric_history("cv_accuracy")) == 3
    assert (
        f'"column": {f"{column!r}".replace(chr(39), chr(34)) if column else "null"}'
        in (result.run.params["train.cv"])
    )


def test_group_folds_keep_each_group_in_one_fold() -> None:
    from loopml.training._cross_validation import _folds

    frame = customers()
    spec = {"folds": 3, "by": "group", "column": "plan", "seed": 0}
    for train, valid in _folds(frame, "churned", spec):
        assert not set(frame["plan"].iloc[train]) & set(frame["plan"].iloc[valid])


def test_time_folds_validate_on_later_rows_only() -> None:
    from loopml.training._cross_validation import _folds

    frame = customers()
    spec = {"folds": 3, "by": "time", "column": "signed_up", "seed": 0}
    for train, valid in _folds(frame, "churned", spec):
        assert frame["signed_up"].iloc[train].max() <= frame["signed_up"].iloc[valid].min()


@pytest.mark.parametrize(
    ("cv", "fragment"),
    [(1, "at least 2"), ({"folds": 3, "by": "time"}, "needs column="),
     ({"fold": 3}, "Unknown cv key(s) fold"), ({"by": "random"}, "cv by must be one of"),
     ({"by": "stratified"}, "Stratified folds need classes")],
)  # fmt: skip
def test_bad_cv_settings_are_refused_before_any_run(
    sqlite_workspace: loopml.Workspace, cv: object, fragment: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(fragment)):
        sqlite_workspace.train(Ridge(), data=diabetes(), target="target", cv=cv)
    assert sqlite_workspace.count_runs() == 0
