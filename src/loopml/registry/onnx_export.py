"""Exports fitted models to ONNX and refuses any export that predicts differently.

scikit-learn pipelines convert with skl2onnx, LightGBM and XGBoost with onnxmltools'
converters registered into skl2onnx. The ONNX model takes the same raw records as the
pickled one: one input per column, a string tensor for text, category and bool columns
(missing values as ``""``), a number tensor for numbers (missing values as NaN).
:func:`export_onnx` converts and then runs :func:`check_parity` on held-out rows: every
label must agree and every probability must be within ``atol`` (1e-4), else it raises
:class:`~loopml.errors.ExportError`.

Precision: numbers travel as float64 and every scikit-learn step computes in float64,
as the pickled model does (skl2onnx's own imputer converter would round to float32, so
loopml brings its own). LightGBM and XGBoost converters only emit float32 trees: their
features are cast to float32 right before the trees, as XGBoost does itself, and the
parity check proves what remains (float32 sums, measured around 1e-7) harmless.

One module past 400 lines: the custom converters below exist only for :func:`to_onnx`;
move them to ``_onnx_converters.py`` when a second exporter needs them.
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.errors import ConfigError, ExportError, ValidationError
from loopml.models.onnx import CLASSES_KEY, OnnxModel, onnx_predict

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["OnnxModel", "ParityReport", "check_parity", "export_onnx", "onnx_predict", "to_onnx"]


_TARGET_OPSET = {"": 21, "ai.onnx.ml": 3}
_BOOSTING_PACKAGES = ("lightgbm", "xgboost")
_OTHER_FORMATS = "Export it as a loopml bundle or in the MLflow format instead (--format mlflow)."


@dataclass(frozen=True)
class ParityReport:
    """How closely an ONNX model reproduces the model it was exported from.

    Classifiers fill ``label_agreement`` (share of rows) and ``max_probability_difference``;
    regressors fill ``max_prediction_difference`` and its relative form
    ``|difference| / max(1, |prediction|)``, which is what ``atol`` bounds for them
    (float32 trees cannot hold large targets to an absolute 1e-4).
    """

    rows: int
    atol: float
    label_agreement: float | None = None
    max_probability_difference: float | None = None
    max_prediction_difference: float | None = None
    max_relative_prediction_difference: float | None = None

    @property
    def passed(self) -> bool:
        if self.label_agreement is not None:
            probabilities_ok = (
                self.max_probability_difference is None
                or self.max_probability_difference <= self.atol
            )
            return self.label_agreement == 1.0 and probabilities_ok
        # NaN differences compare False, so a model that outputs NaN fails.
        return (
            self.max_relative_prediction_difference is not None
            and self.max_relative_prediction_difference <= self.atol
        )

    def summary(self) -> str:
        if self.label_agreement is not None:
            agreeing = round(self.label_agreement * self.rows)
            text = f"labels agree on {agreeing} of {self.rows} rows"
            if self.max_probability_difference is not None:
                text += (
                    f", probabilities differ by up to {self.max_probability_difference:.2e}"
                    f" (allowed {self.atol:.0e})"
                )
            return text
        return (
            f"predictions on {self.rows} rows differ by up to "
            f"{self.max_prediction_difference:.2e} ({self.max_relative_prediction_difference:.2e}"
            f" relative, allowed {self.atol:.0e})"
        )


def to_onnx(model: Any, sample: pd.DataFrame) -> bytes:
    """Converts a fitted model to ONNX bytes, without checking what it predicts.

    Args:
        model: A fitted scikit-learn Pipeline or estimator, or a LightGBM or XGBoost
            scikit-learn model (bare or as the last step of a Pipeline).
        sample: Rows with the model's input columns; their dtypes decide each ONNX
            input's type. Only the dtypes are read.

    Raises:
        ExportError: a step has no ONNX converter, or the converter failed.
    """
    _require("skl2onnx", "onnxmltools", "onnx")
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType
    from sklearn.base import is_classifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    final = model.steps[-1][1] if isinstance(model, Pipeline) else model
    for package in _BOOSTING_PACKAGES:
        if type(final).__module__.partition(".")[0] == package:
            _register_boosting_converters(package)
    unconvertible = _unconvertible_steps(model, type(model).__name__)
    if unconvertible:
        raise ExportError(
            f"Cannot export this model to ONNX: no ONNX converter for {'; '.join(unconvertible)}. "
            + _OTHER_FORMATS
        )

    columns = [str(name) for name in getattr(model, "feature_names_in_", sample.columns)]
    missing = [name for name in columns if name not in sample.columns]
    if missing:
        raise ValidationError(
            f"The sample rows lack the model's input columns {missing}; pass rows with "
            f"every column the model was trained on ({columns})."
        )
    inputs: list[tuple[str, Any]] = []
    for name in columns:
        kind = _column_kind(sample[name])
        if kind == "datetime":
            raise ExportError(
                f"Cannot export this model to ONNX: column {name!r} holds datetimes, which "
                f"ONNX inputs cannot carry. {_OTHER_FORMATS}"
            )
        tensor = StringTensorType if kind == "text" else DoubleTensorType
        inputs.append((name, tensor([None, 1])))

    convertible = model
    if not isinstance(model, Pipeline):
        texts = [name for name, tensor in inputs if isinstance(tensor, StringTensorType)]
        if texts:
            raise ExportError(
                f"Cannot export a bare {type(model).__name__} with text columns {texts} to "
                "ONNX: only a Pipeline that encodes them converts. " + _OTHER_FORMATS
            )
        convertible = _with_column_inputs(model, sample[columns])
    classifier = is_classifier(final)
    try:
        onnx_model = convert_sklearn(
            convertible,
            initial_types=inputs,
            options={id(convertible): {"zipmap": False}} if classifier else None,
            target_opset=_TARGET_OPSET,
            custom_conversion_functions={
                FunctionTransformer: _convert_identity,
                SimpleImputer: _convert_imputer,
                **_sklearn_trees_in_float32(),
            },
            custom_shape_calculators={
                FunctionTransformer: _same_type_shape,
                SimpleImputer: _same_type_shape,
            },
        )
    except ExportError:
        raise
    except Exception as error:
        raise ExportError(
            f"Converting {type(model).__name__} to ONNX failed: {str(error).rstrip('.')}. "
            + _OTHER_FORMATS
        ) from error
    if classifier:
        classes = [value.item() if hasattr(value, "item") else value for value in final.classes_]
        entry = onnx_model.metadata_props.add()
        entry.key, entry.value = CLASSES_KEY, json.dumps(classes)
    data: bytes = onnx_model.SerializeToString()
    return data


def check_parity(
    model: Any, onnx_bytes: bytes, rows: pd.DataFrame, atol: float = 1e-4
) -> ParityReport:
    """Compares the ONNX model's predictions with ``model``'s on ``rows`` (held-out rows)."""
    if len(rows) == 0:
        raise ValidationError("check_parity needs at least one row; pass held-out rows.")
    labels, probabilities = onnx_predict(onnx_bytes, rows)
    expected = np.asarray(model.predict(rows))
    if probabilities is None:
        difference = np.abs(labels.astype(np.float64) - expected.astype(np.float64))
        scale = np.maximum(1.0, np.abs(expected.astype(np.float64)))
        return ParityReport(
            rows=len(rows),
            atol=atol,
            max_prediction_difference=float(np.max(difference)),
            max_relative_prediction_difference=float(np.max(difference / scale)),
        )
    agreement = float(np.mean(labels == expected))
    if not callable(getattr(model, "predict_proba", None)):  # e.g. SVC(probability=False)
        return ParityReport(rows=len(rows), atol=atol, label_agreement=agreement)
    expected_probabilities = np.asarray(model.predict_proba(rows), dtype=np.float64)
    if probabilities.shape != expected_probabilities.shape:
        max_probability_difference = float("inf")
    else:
        max_probability_difference = float(
            np.max(np.abs(probabilities.astype(np.float64) - expected_probabilities))
        )
    return ParityReport(
        rows=len(rows),
        atol=atol,
        label_agreement=agreement,
        max_probability_difference=max_probability_difference,
    )


def export_onnx(
    model: Any, rows: pd.DataFrame, *, atol: float = 1e-4
) -> tuple[bytes, ParityReport]:
    """Converts ``model`` to ONNX and proves on held-out ``rows`` that it predicts the same.

    Raises:
        ExportError: the model does not convert, or the ONNX model's labels or
            probabilities differ (never a silently different model).
    """
    onnx_bytes = to_onnx(model, rows)
    report = check_parity(model, onnx_bytes, rows, atol=atol)
    if not report.passed:
        raise ExportError(
            f"Refusing the ONNX export of {type(model).__name__}: it predicts differently from "
            f"the model ({report.summary()}). loopml never ships a silently different model. "
            + _OTHER_FORMATS
        )
    return onnx_bytes, report


# -- conversion helpers ------------------------------------------------------------------


def _require(*modules: str) -> None:
    import importlib.util

    absent = [name for name in modules if importlib.util.find_spec(name) is None]
    if absent:
        raise ConfigError(
            f"ONNX export needs {', '.join(absent)}; run: pip install 'loopml[onnx]'."
        )


@functools.cache
def _register_boosting_converters(package: str) -> None:
    """Registers onnxmltools' converters for ``package``'s scikit-learn models (once)."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    if package == "lightgbm":
        from lightgbm import LGBMClassifier, LGBMRegressor
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

        classifier, regressor, convert, prefix = (
            LGBMClassifier,
            LGBMRegressor,
            convert_lightgbm,
            "LightGbm",
        )
    else:
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from xgboost import XGBClassifier, XGBRegressor

        classifier, regressor, convert, prefix = (
            XGBClassifier,
            XGBRegressor,
            convert_xgboost,
            "XGBoost",
        )
    update_registered_converter(
        classifier,
        f"{prefix}{classifier.__name__}",
        calculate_linear_classifier_output_shapes,
        functools.partial(_convert_in_float32, convert),
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )
    update_registered_converter(
        regressor,
        f"{prefix}{regressor.__name__}",
        calculate_linear_regressor_output_shapes,
        functools.partial(_convert_in_float32, convert),
    )


class _Retyped:
    """An operator seen through other input and output variables."""

    def __init__(self, operator: Any, inputs: list[Any], outputs: list[Any]) -> None:
        self._operator = operator
        self.inputs = inputs
        self.outputs = outputs

    def __getattr__(self, name: str) -> Any:
        return getattr(self._operator, name)

    @property
    def input_full_names(self) -> list[str]:
        return [variable.full_name for variable in self.inputs]

    @property
    def output_full_names(self) -> list[str]:
        return [variable.full_name for variable in self.outputs]


@functools.cache
def _sklearn_trees_in_float32() -> dict[type, Any]:
    """scikit-learn's tree models compare float32 features with float32 thresholds (they
    cast their input); fed doubles, ONNX trees would send rows that sit next to a
    threshold down the other branch. Their converters run behind the same cast."""
    from skl2onnx._supported_operators import sklearn_operator_name_map
    from skl2onnx.common._registration import get_converter
    from sklearn import ensemble, tree

    classes = [
        tree.DecisionTreeClassifier, tree.DecisionTreeRegressor,
        tree.ExtraTreeClassifier, tree.ExtraTreeRegressor,
        ensemble.RandomForestClassifier, ensemble.RandomForestRegressor,
        ensemble.ExtraTreesClassifier, ensemble.ExtraTreesRegressor,
        ensemble.GradientBoostingClassifier, ensemble.GradientBoostingRegressor,
        ensemble.HistGradientBoostingClassifier, ensemble.HistGradientBoostingRegressor,
    ]  # fmt: skip
    return {
        cls: functools.partial(_convert_in_float32, get_converter(sklearn_operator_name_map[cls]))
        for cls in classes
        if cls in sklearn_operator_name_map
    }


def _convert_in_float32(convert: Any, scope: Any, operator: Any, container: Any) -> None:
    """Runs a float32-only tree converter inside a float64 graph.

    The features (computed in float64, as the pickled pipeline does) are cast to float32
    just before the trees, which is what XGBoost does with float64 input itself;
    preprocessing in float32 instead would move values that sit exactly on a split
    threshold to the other branch. The trees' outputs are cast back to float64.
    """
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
    from skl2onnx.proto import onnx_proto

    source = operator.inputs[0]
    if not isinstance(source.type, DoubleTensorType):
        convert(scope, operator, container)
        return
    as_float = scope.declare_local_variable("as_float", FloatTensorType(source.type.shape))
    container.add_node(
        "Cast",
        [source.full_name],
        [as_float.full_name],
        to=onnx_proto.TensorProto.FLOAT,
        name=scope.get_unique_operator_name("Cast"),
    )
    outputs = [
        scope.declare_local_variable(f"{output.raw_name}_float", FloatTensorType(output.type.shape))
        if isinstance(output.type, DoubleTensorType)
        else output
        for output in operator.outputs
    ]
    convert(scope, _Retyped(operator, [as_float], outputs), container)
    for converted, output in zip(outputs, operator.outputs, strict=True):
        if converted is not output:
            container.add_node(
                "Cast",
                [converted.full_name],
                [output.full_name],
                to=onnx_proto.TensorProto.DOUBLE,
                name=scope.get_unique_operator_name("Cast"),
            )


def _unconvertible_steps(model: Any, path: str) -> list[str]:
    """Each step (``pipeline > step``, with its class) that no converter accepts."""
    from skl2onnx._supported_operators import sklearn_operator_name_map
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    if isinstance(model, Pipeline):
        children = [(name, step) for name, step in model.steps]
    elif isinstance(model, ColumnTransformer):
        children = [(name, step) for name, step, _ in model.transformers_]
    elif isinstance(model, FunctionTransformer):
        if _is_identity(model):
            return []
        function = getattr(model.func, "__qualname__", repr(model.func))
        return [f"{path} (FunctionTransformer(func={function}))"]
    elif type(model) in sklearn_operator_name_map:
        return []
    else:
        return [f"{path} ({type(model).__name__})"]
    found: list[str] = []
    for name, step in children:
        if step is None or isinstance(step, str):  # "drop", "passthrough"
            continue
        found.extend(_unconvertible_steps(step, f"{path} > {name}"))
    return found


def _is_identity(transformer: Any) -> bool:
    """Whether a FunctionTransformer changes nothing an ONNX input can carry: no
    function, or loopml's ``_as_object`` (strings stay strings; "" stands for missing)."""
    from loopml.training._preprocess import _as_object

    return transformer.func is None or transformer.func is _as_object


def _column_kind(series: pd.Series) -> str:
    import pandas as pd

    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "text"  # loopml one-hot encodes bools, as the strings "True" and "False"
    if pd.api.types.is_numeric_dtype(dtype):
        return "number"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    return "text"


def _with_column_inputs(model: Any, sample: pd.DataFrame) -> Any:
    """A bare estimator behind a passthrough ColumnTransformer, so it takes one ONNX input
    per column like a pipeline does. The transformer learns nothing but the column names."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    columns = ColumnTransformer([("columns", "passthrough", list(sample.columns))])
    if type(model).__module__.partition(".")[0] == "xgboost":
        # onnxmltools reads features as f0, f1, ... from the booster; a frame's column
        # names would be in their place. A copy keeps the caller's model untouched.
        model = copy.deepcopy(model)
        model.get_booster().feature_names = None
    return Pipeline([("columns", columns.fit(sample)), ("model", model)])


def _same_type_shape(operator: Any) -> None:
    """Output type = input type, with the input columns side by side."""
    output_type = copy.deepcopy(operator.inputs[0].type)
    widths = [variable.type.shape[1] for variable in operator.inputs]
    total = None if any(width is None for width in widths) else sum(widths)
    output_type.shape = [operator.inputs[0].get_first_dimension(), total]
    operator.outputs[0].type = output_type


def _convert_identity(scope: Any, operator: Any, container: Any) -> None:
    from skl2onnx.common._apply_operation import apply_identity
    from skl2onnx.operator_converters.common import concatenate_variables

    source = concatenate_variables(scope, operator.inputs, container)
    apply_identity(scope, source, operator.outputs[0].full_name, container)


def _convert_imputer(scope: Any, operator: Any, container: Any) -> None:
    """SimpleImputer as ``Where(missing, statistics, x)``, exact in the input's own type.

    skl2onnx's converter rounds statistics to float32 and rejects ``missing_values=None``
    (loopml's categorical imputer); every other configuration goes to it unchanged.
    """
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType
    from skl2onnx.operator_converters.common import concatenate_variables
    from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer
    from skl2onnx.proto import onnx_proto

    imputer = operator.raw_operator
    input_type = operator.inputs[0].type
    missing = imputer.missing_values
    missing_is_nan = missing is None or (isinstance(missing, float) and np.isnan(missing))
    text = isinstance(input_type, StringTensorType)
    numbers = isinstance(input_type, (DoubleTensorType, FloatTensorType))
    if imputer.add_indicator or not missing_is_nan or not (text or numbers):
        convert_sklearn_imputer(scope, operator, container)
        return

    source = concatenate_variables(scope, operator.inputs, container)
    statistics = scope.get_unique_variable_name("statistics")
    is_missing = scope.get_unique_variable_name("is_missing")
    shape = [1, imputer.statistics_.size]
    if text:
        values = [str(value).encode() for value in imputer.statistics_]
        container.add_initializer(statistics, onnx_proto.TensorProto.STRING, shape, values)
        empty = scope.get_unique_variable_name("empty")
        container.add_initializer(empty, onnx_proto.TensorProto.STRING, [], [b""])
        container.add_node(
            "Equal", [source, empty], [is_missing], name=scope.get_unique_operator_name("Equal")
        )
    else:
        double = isinstance(input_type, DoubleTensorType)
        element = onnx_proto.TensorProto.DOUBLE if double else onnx_proto.TensorProto.FLOAT
        values = imputer.statistics_.astype(np.float64 if double else np.float32).tolist()
        container.add_initializer(statistics, element, shape, values)
        container.add_node(
            "IsNaN", [source], [is_missing], name=scope.get_unique_operator_name("IsNaN")
        )
    container.add_node(
        "Where",
        [is_missing, statistics, source],
        [operator.outputs[0].full_name],
        name=scope.get_unique_operator_name("Where"),
    )
