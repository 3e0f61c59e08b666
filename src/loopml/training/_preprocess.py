"""Builds the preprocessing that loopml puts in front of a bare estimator.

Not public: :func:`loopml.training.train` is the interface. The preprocessing becomes
the first step of a scikit-learn Pipeline, so the stored model takes raw records:

- numbers (contract types int, float) -> impute the median, then scale;
- categories, strings and bools -> impute the most frequent value, then one-hot
  encode with ``handle_unknown="ignore"`` (a value unseen in training encodes as zeros);
- datetimes and dates -> expanded into numeric parts (year, month, day, day of week,
  hour), then handled like numbers.

Column kinds come from the dataset's data contract when it has one, else from the
pandas dtypes of the training frame.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from loopml.data.contract import Contract

__all__ = ["DATETIME_PARTS", "build_preprocessor", "column_kinds", "datetime_parts"]

DATETIME_PARTS = ("year", "month", "day", "day_of_week", "hour")
_KIND_OF_TYPE = {
    "int": "numeric",
    "float": "numeric",
    "string": "categorical",
    "bool": "categorical",
    "category": "categorical",
    "datetime": "datetime",
    "date": "datetime",
}


def column_kinds(
    frame: pd.DataFrame, features: list[str], contract: Contract | None
) -> dict[str, list[str]]:
    """Sorts ``features`` into numeric, categorical and datetime columns.

    The contract decides for the columns it describes; the dtype decides for the rest.
    """
    import pandas as pd

    typed = {column.name: column.type for column in contract.columns} if contract else {}
    kinds: dict[str, list[str]] = {"numeric": [], "categorical": [], "datetime": []}
    for name in features:
        if name in typed:
            kinds[_KIND_OF_TYPE[typed[name]]].append(name)
            continue
        dtype = frame[name].dtype
        if pd.api.types.is_bool_dtype(dtype):
            kinds["categorical"].append(name)
        elif pd.api.types.is_numeric_dtype(dtype):
            kinds["numeric"].append(name)
        elif pd.api.types.is_datetime64_any_dtype(dtype):
            kinds["datetime"].append(name)
        else:
            kinds["categorical"].append(name)
    return kinds


def datetime_parts(frame: Any) -> np.ndarray:
    """Year, month, day, day of week and hour of each datetime column, as floats
    (NaN where the value is missing). A module-level function so models pickle."""
    import pandas as pd

    columns = []
    for name in frame.columns:
        values = pd.to_datetime(frame[name], errors="coerce", utc=True)
        for part in DATETIME_PARTS:
            columns.append(getattr(values.dt, part).to_numpy(dtype="float64", na_value=np.nan))
    return np.column_stack(columns) if columns else np.empty((len(frame), 0))


def _datetime_names(transformer: Any, names: Any) -> list[str]:
    return [f"{name}_{part}" for name in names for part in DATETIME_PARTS]


def build_preprocessor(kinds: dict[str, list[str]]) -> Any:
    """A ColumnTransformer for the sorted columns (unlisted columns are dropped)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    steps: list[tuple[str, Any, list[str]]] = []
    if kinds["numeric"]:
        numeric = Pipeline(
            [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
        )
        steps.append(("numeric", numeric, kinds["numeric"]))
    if kinds["categorical"]:
        categorical = Pipeline(
            [
                ("as_text", FunctionTransformer(_as_object, feature_names_out="one-to-one")),
                ("impute", SimpleImputer(strategy="most_frequent", missing_values=None)),
                ("one_hot", OneHotEncoder(handle_unknown="ignore")),
            ]
        )
        steps.append(("categorical", categorical, kinds["categorical"]))
    if kinds["datetime"]:
        dates = Pipeline(
            [
                ("parts", FunctionTransformer(datetime_parts, feature_names_out=_datetime_names)),
                ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                ("scale", StandardScaler()),
            ]
        )
        steps.append(("datetime", dates, kinds["datetime"]))
    return ColumnTransformer(steps, remainder="drop")


def _as_object(frame: Any) -> np.ndarray:
    """Categorical columns as an object array with None for every kind of missing value,
    so bools, pandas strings and categories all impute and encode the same way."""
    import pandas as pd

    # A copy: under pandas 3's copy-on-write the array of a frame is read-only.
    values = np.array(frame.astype(object), dtype=object)
    values[pd.isna(values)] = None
    return values
