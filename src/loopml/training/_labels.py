"""Class labels for classifiers that only learn the integers ``0 .. n_classes - 1``.

XGBoost's ``XGBClassifier`` refuses labels such as ``"yes"``/``"no"`` (or ``1``/``2``):
"Invalid classes inferred from unique values of `y`". :class:`LabelEncodedClassifier`
encodes the labels before such a classifier fits and decodes its predictions, so the
stored model still takes raw records and predicts the original labels; ``ws.train`` and
``ws.tune`` put it around the classifier only when :func:`needs_label_encoding` says so.
Models pickle a reference to this class: keep its name and module.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.utils import get_tags
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

__all__ = ["INTEGER_LABEL_LIBRARIES", "LabelEncodedClassifier", "needs_label_encoding"]

INTEGER_LABEL_LIBRARIES = frozenset({"xgboost"})
"""Top-level packages whose classifiers need labels ``0 .. n_classes - 1``."""


def _estimator_has(name: str) -> Any:
    def check(self: LabelEncodedClassifier) -> bool:
        fitted = getattr(self, "estimator_", None)
        return hasattr(fitted if fitted is not None else self.estimator, name)

    return check


# scikit-learn ships no type information, so its bases and decorators are Any to mypy.
class LabelEncodedClassifier(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Fits ``estimator`` on label codes ``0 .. n_classes - 1`` and answers in the labels.

    ``classes_`` holds the original labels, sorted (as scikit-learn sorts them), and
    column ``i`` of ``predict_proba`` is the probability of ``classes_[i]``.

    Example:
        >>> model = LabelEncodedClassifier(XGBClassifier()).fit(X, ["no", "yes", "no"])
        >>> model.predict(X)  # array(['no', 'yes', 'no'], dtype=object)

    Args:
        estimator: The classifier to fit on the codes; cloned by ``fit``.
    """

    def __init__(self, estimator: Any = None) -> None:
        self.estimator = estimator

    def fit(self, X: Any, y: Any, **fit_params: Any) -> LabelEncodedClassifier:
        """Encodes ``y`` and fits a clone of ``estimator`` on the codes."""
        if self.estimator is None:
            raise ValueError(
                "The 'estimator' parameter of LabelEncodedClassifier must be a classifier. "
                "Got None instead."
            )
        check_classification_targets(y)  # a continuous target is no set of classes
        self.classes_, codes = np.unique(np.asarray(y), return_inverse=True)
        self.estimator_ = clone(self.estimator).fit(X, codes, **fit_params)
        for name in ("n_features_in_", "feature_names_in_"):
            if hasattr(self.estimator_, name):
                setattr(self, name, getattr(self.estimator_, name))
        return self

    def predict(self, X: Any) -> Any:
        """The predicted labels (from the estimator's predicted codes)."""
        check_is_fitted(self)
        codes = np.asarray(self.estimator_.predict(X)).astype(np.intp)
        return self.classes_[codes]

    @available_if(_estimator_has("predict_proba"))  # type: ignore[untyped-decorator]
    def predict_proba(self, X: Any) -> Any:
        """Probability of each class, in the order of ``classes_``."""
        check_is_fitted(self)
        return self.estimator_.predict_proba(X)

    @available_if(_estimator_has("decision_function"))  # type: ignore[untyped-decorator]
    def decision_function(self, X: Any) -> Any:
        """The estimator's decision function (columns in the order of ``classes_``)."""
        check_is_fitted(self)
        return self.estimator_.decision_function(X)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        if self.estimator is not None:  # the inputs it takes are the estimator's
            inner = get_tags(self.estimator)
            tags.input_tags.sparse = inner.input_tags.sparse
            tags.input_tags.allow_nan = inner.input_tags.allow_nan
        return tags

    @property
    def feature_importances_(self) -> Any:
        """The fitted estimator's feature importances."""
        check_is_fitted(self)
        return self.estimator_.feature_importances_


def needs_label_encoding(estimator: Any, labels: Any) -> bool:
    """True when ``estimator`` (or a Pipeline's last step) comes from a library of
    :data:`INTEGER_LABEL_LIBRARIES` and ``labels`` are not already ``0 .. n - 1``."""
    from sklearn.pipeline import Pipeline

    final = estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator
    library = type(final).__module__.partition(".")[0]
    if library not in INTEGER_LABEL_LIBRARIES:
        return False
    values = np.asarray(labels)
    if values.dtype.kind not in "iu":  # text, bool, float or object labels
        return True
    found = np.unique(values)
    return not np.array_equal(found, np.arange(len(found)))
