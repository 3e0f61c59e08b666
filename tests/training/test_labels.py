"""``LabelEncodedClassifier``: a scikit-learn meta-estimator that encodes class labels."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.utils.estimator_checks import parametrize_with_checks

from loopml.training._labels import LabelEncodedClassifier, needs_label_encoding


@parametrize_with_checks([LabelEncodedClassifier(LogisticRegression())])
def test_it_passes_the_scikit_learn_estimator_checks(estimator: Any, check: Any) -> None:
    check(estimator)


def test_the_estimator_learns_codes_and_the_wrapper_answers_in_labels() -> None:
    X = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0]])
    y = np.array(["low", "low", "mid", "mid", "top", "top"])
    model = LabelEncodedClassifier(LogisticRegression(C=100)).fit(X, y)

    assert list(model.estimator_.classes_) == [0, 1, 2]
    assert list(model.classes_) == ["low", "mid", "top"]
    assert list(model.predict(X)) == list(y)
    assert model.predict_proba(X).shape == (6, 3)
    restored = pickle.loads(pickle.dumps(model))
    assert list(restored.predict(X)) == list(y)
    assert clone(model).get_params()["estimator__C"] == 100


@pytest.mark.parametrize(
    ("labels", "needed"),
    [(["yes", "no"], True), ([True, False], True), ([1, 2], True), ([0, 1, 2], False)],
)
def test_only_integer_label_libraries_with_other_labels_need_it(
    labels: list[Any], needed: bool
) -> None:
    xgboost = pytest.importorskip("xgboost")
    assert needs_label_encoding(xgboost.XGBClassifier(), np.array(labels)) is needed
    assert needs_label_encoding(LogisticRegression(), np.array(labels)) is False
