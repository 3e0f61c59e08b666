"""Checking prediction inputs against a signature, one vectorized pass per column.

Internal: :meth:`loopml.models.LoadedModel.predict` is the interface. It runs on every
served request and on batch scoring of millions of rows, so each column is checked with
whole-column pandas operations; per-value Python runs only to name a bad value once a
column is known to hold one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from loopml.errors import ValidationError
from loopml.models.signature import ColumnSpec

__all__ = ["as_frame", "conform"]

_TEXT_KINDS = ("string", "empty")
_DATETIME_KINDS = ("datetime", "datetime64", "date", "empty")


def as_frame(data: Any) -> pd.DataFrame:
    """A DataFrame from a DataFrame, a list of dict records, or one record."""
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, Mapping):
        data = [data]
    if (
        isinstance(data, Sequence)
        and not isinstance(data, (str, bytes))
        and all(isinstance(row, Mapping) for row in data)
    ):
        return pd.DataFrame.from_records(list(data))
    raise ValidationError(
        f"Prediction input must be a pandas DataFrame or a list of records (dicts of column "
        f"to value), got {type(data).__name__}."
    )


def conform(frame: pd.DataFrame, inputs: list[ColumnSpec]) -> pd.DataFrame:
    """``frame`` with the signature's columns, in its order, as its types.

    Extra columns are dropped, ints are accepted for floats, and text that reads as a
    number or an ISO 8601 time is converted. Anything that cannot be converted without
    losing information is refused.

    Raises:
        ValidationError: naming the missing columns, or a column with a value of the
            wrong type, the expected type and an example bad value.
    """
    names = [column.name for column in inputs]
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise ValidationError(
            f"The input is missing column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(map(repr, missing))}. The model takes {', '.join(map(repr, names))} "
            "(in any order; other columns are dropped)."
        )
    if list(frame.columns) == names and _already_numbers(frame, inputs):
        return frame  # the common case of a served request: nothing to check per column
    given = {name: frame[name] for name in names}
    columns = {column.name: _conform_column(given[column.name], column) for column in inputs}
    if list(frame.columns) == names and all(columns[name] is given[name] for name in names):
        return frame  # already as the model takes it: no copy
    return pd.DataFrame(columns, index=frame.index)


def _already_numbers(frame: pd.DataFrame, inputs: list[ColumnSpec]) -> bool:
    """Every input is a float64 (float) or int64 (int) column: conform would return it."""
    wanted = {"float": np.dtype(np.float64), "int": np.dtype(np.int64)}
    return all(
        wanted.get(column.type) == dtype for column, dtype in zip(inputs, frame.dtypes, strict=True)
    )


def _conform_column(values: pd.Series, column: ColumnSpec) -> pd.Series:
    kind = column.type
    if kind in ("int", "float"):
        return _numbers(values, column)
    if kind == "bool":
        return _booleans(values, column)
    if kind in ("datetime", "date"):
        return _times(values, column)
    return _texts(values, column)


def _numbers(values: pd.Series, column: ColumnSpec) -> pd.Series:
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        _refuse(values, column, values.notna())
        numbers = values.astype(np.float64)  # every value is missing
    elif pd.api.types.is_numeric_dtype(dtype):
        numbers = values
    else:  # text or mixed objects: numbers written as text convert, the rest is refused
        numbers = pd.to_numeric(values, errors="coerce")
        _refuse(values, column, numbers.isna() & values.notna())
    if column.type == "float":
        return numbers if numbers.dtype == np.float64 else numbers.astype(np.float64)
    if numbers.dtype.kind == "f":
        _refuse(values, column, numbers.notna() & (numbers % 1 != 0))
        # Whole floats become ints again unless missing values need the float NaN.
        return numbers if numbers.isna().any() else numbers.astype(np.int64)
    return numbers


def _booleans(values: pd.Series, column: ColumnSpec) -> pd.Series:
    if pd.api.types.is_bool_dtype(values.dtype):
        return values
    # isin matches 1 and 0 too, which convert to booleans without loss.
    _refuse(values, column, values.notna() & ~values.isin([True, False]))
    return values if values.isna().any() else values.astype(bool)


def _times(values: pd.Series, column: ColumnSpec) -> pd.Series:
    dtype = values.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return values
    if pd.api.types.is_numeric_dtype(dtype):  # epoch numbers are ambiguous: seconds? ms?
        _refuse(values, column, values.notna())
        return values  # every value is missing
    if pd.api.types.infer_dtype(values, skipna=True) in _DATETIME_KINDS:
        return values
    try:
        parsed = pd.to_datetime(values, errors="coerce", format="ISO8601")
    except (ValueError, TypeError):  # offsets that differ between rows: state them in UTC
        parsed = pd.to_datetime(values, errors="coerce", format="ISO8601", utc=True)
    _refuse(values, column, parsed.isna() & values.notna())
    return parsed


def _texts(values: pd.Series, column: ColumnSpec) -> pd.Series:
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        inferred = pd.api.types.infer_dtype(dtype.categories, skipna=True)
    elif dtype.kind == "O" or isinstance(dtype, pd.StringDtype):
        inferred = pd.api.types.infer_dtype(values, skipna=True)
    else:
        inferred = "other"
    if inferred not in _TEXT_KINDS:
        _refuse(values, column, values.notna() & ~values.map(_is_text).astype(bool))
    return values


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


def _refuse(values: pd.Series, column: ColumnSpec, bad: pd.Series) -> None:
    """Raises ValidationError naming the first value where ``bad`` holds, if any."""
    if not bad.any():
        return
    count = int(bad.sum())
    first = values[bad]
    example, row = first.iloc[0], first.index[0]
    if isinstance(example, np.generic):
        example = example.item()  # 5, not np.int64(5)
    raise ValidationError(
        f"Column {column.name!r} must hold {column.type} values, but {count} of {len(values)} "
        f"do not, for example {example!r} ({type(example).__name__}) in row {row!r}. Send "
        f"{column.type} values in {column.name!r}."
    )
