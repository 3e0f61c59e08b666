"""Conformance: any input batch as Arrow columns, each cast to its contract type.

Internal: use ``loopml.data.validation``, whose docstring states the conversion rules (what
text parses, what becomes null and fails the ``type`` check, what is structural).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from loopml.errors import ValidationError

if TYPE_CHECKING:
    import pandas as pd

    from loopml.data.validation import _Plan  # the compiled column; validation imports this

__all__ = [
    "Uncastable",
    "arrow_columns",
    "as_text",
    "conform",
    "row_count",
    "type_family",
    "uncastable_problem",
]

_TRUE = pa.array(["true", "t", "yes", "y", "1"])
_FALSE = pa.array(["false", "f", "no", "n", "0"])
# Supersets of what Arrow's parsers accept; values they reject are never tried one by one.
_LOOKS_LIKE = {
    "int": r"^[+-]?(?:[0-9]+|0[xX][0-9a-fA-F]+)$",
    "float": r"(?i)^[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[+-]?[0-9]+)?|inf(?:inity)?|nan)$",
    "date": r"^[+-]?[0-9]{4,}-[0-9]{1,2}-[0-9]{1,2}$",
    "datetime": r"^[+-]?[0-9]{4,}-?[0-9]{1,2}-?[0-9]{1,2}(?:[T ].*)?$",
}
_ACCEPTS = {
    "int": {"int", "float", "decimal", "bool", "text"},
    "float": {"int", "float", "decimal", "text"},
    "string": {"int", "float", "decimal", "bool", "text", "timestamp", "date"},
    "category": {"int", "float", "decimal", "bool", "text", "timestamp", "date"},
    "bool": {"bool", "int", "text"},
    "datetime": {"timestamp", "date", "text"},
    "date": {"date", "timestamp", "text"},
}


class Uncastable(Exception):
    """A column whose Arrow type cannot become its contract type (a structural problem)."""


# -- input -----------------------------------------------------------------------------


def arrow_columns(data: Any) -> tuple[list[str], list[pa.Array]]:
    """Column names and one contiguous Arrow array per column, duplicates kept."""
    if isinstance(data, pa.RecordBatch):
        return list(data.schema.names), list(data.columns)
    if isinstance(data, pa.Table):
        arrays = []
        for column in data.columns:
            if column.num_chunks == 1:
                arrays.append(column.chunk(0))
            elif column.num_chunks == 0:
                arrays.append(pa.nulls(0, column.type))
            else:
                arrays.append(pa.concat_arrays(column.chunks))
        return list(data.schema.names), arrays
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        names = [str(name) for name in data.columns]
        return names, [_from_series(data.iloc[:, index]) for index in range(data.shape[1])]
    raise ValidationError(
        f"Validation takes a pyarrow RecordBatch or Table or a pandas DataFrame, got "
        f"{type(data).__name__}."
    )


def _from_series(series: pd.Series[Any]) -> pa.Array:
    try:
        array = pa.array(series, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        # Mixed types (1, "2", "abc"): validate their text, value by value.
        missing = series.isna().to_numpy()
        texts = [
            None if gone else str(value)
            for value, gone in zip(series.to_numpy(object), missing, strict=True)
        ]
        return pa.array(texts, pa.string())
    if isinstance(array, pa.ChunkedArray):
        return pa.concat_arrays(array.chunks) if array.num_chunks != 1 else array.chunk(0)
    return array


def row_count(batch: Any, arrays: list[pa.Array]) -> int:
    if arrays:
        return len(arrays[0])
    return int(batch.num_rows if hasattr(batch, "num_rows") else len(batch))


# -- conformance -----------------------------------------------------------------------


def type_family(arrow: pa.DataType) -> str:
    t = pa.types
    if t.is_boolean(arrow):
        return "bool"
    if t.is_integer(arrow):
        return "int"
    if t.is_floating(arrow):
        return "float"
    if t.is_decimal(arrow):
        return "decimal"
    if t.is_string(arrow) or t.is_large_string(arrow) or t.is_string_view(arrow):
        return "text"
    if t.is_timestamp(arrow):
        return "timestamp"
    if t.is_date(arrow):
        return "date"
    return "other"


def conform(raw: pa.Array, plan: _Plan) -> tuple[pa.Array, pa.BooleanArray | None]:
    """(values of the contract type, bad values null; extra missing values, e.g. NaN)."""
    kind = plan.column.type
    target = plan.type
    if pa.types.is_null(raw.type):
        return pa.nulls(len(raw), target), None
    if pa.types.is_dictionary(raw.type):
        if kind == "category":
            return _to_category(raw, plan), None
        raw = raw.dictionary_decode()
    family = type_family(raw.type)
    if family not in _ACCEPTS[kind]:
        raise Uncastable
    if family == "text" and kind not in ("string", "category"):
        return _parse_text(raw, kind, target)
    if kind == "category":
        return _to_category(raw, plan), None
    if kind == "string":
        return (raw if raw.type == target else pc.cast(raw, target)), None
    extra_missing = None
    if family == "float":
        nan = pc.is_nan(raw)
        if nan.true_count:
            raw = pc.if_else(nan, None, raw)
            extra_missing = nan.fill_null(False)
    if raw.type == target:
        return raw, extra_missing
    if kind == "bool":  # from 0/1
        values = pc.if_else(pc.equal(raw, 1), True, pc.if_else(pc.equal(raw, 0), False, None))
        return values, extra_missing
    if family == "timestamp" and raw.type.unit == "ns":
        return pc.cast(raw, target, safe=False), None  # drops nanoseconds
    if kind == "int" and family in ("float", "decimal"):
        numbers = raw if family == "float" else pc.cast(raw, pa.float64())
        whole = pc.and_(
            pc.equal(pc.floor(numbers), numbers),
            pc.and_(pc.greater_equal(numbers, -(2.0**63)), pc.less(numbers, 2.0**63)),
        )
        return pc.cast(pc.if_else(whole, numbers, None), target, safe=False), extra_missing
    if kind == "date" and family == "timestamp":
        return pc.cast(pc.cast(raw, pa.timestamp("us"), safe=False), target, safe=False), None
    safe = kind != "float"
    return _cast_or_null(raw, lambda a: pc.cast(a, target, safe=safe), target), extra_missing


def _parse_text(
    raw: pa.Array, kind: str, target: pa.DataType
) -> tuple[pa.Array, pa.BooleanArray | None]:
    """Text to numbers, bools, dates or datetimes; blank text is missing."""
    try:  # fast path: every value parses (Arrow's bools are a subset of ours)
        values = pc.cast(raw, target)
    except pa.ArrowInvalid:
        pass
    else:
        return (_nan_to_null(values) if kind == "float" else values), None
    text = pc.utf8_trim_whitespace(raw)
    blank = pc.equal(text, "").fill_null(False)
    if kind == "bool":
        lowered = pc.ascii_lower(text)
        values = pc.if_else(
            pc.is_in(lowered, value_set=_TRUE),
            True,
            pc.if_else(pc.is_in(lowered, value_set=_FALSE), False, None),
        )
        return pc.if_else(raw.is_null(), None, values), blank if blank.true_count else None
    plausible = pc.match_substring_regex(text, _LOOKS_LIKE[kind]).fill_null(False)
    candidates = pc.if_else(plausible, text, None)
    if kind in ("datetime", "date"):
        values = _parse_times(candidates, target)
    else:
        if kind == "int":
            candidates = _without_overflow(pc.replace_substring_regex(candidates, r"^\+", ""))
        values = _cast_or_null(candidates, lambda a: pc.cast(a, target), target)
        if kind == "float":
            values = _nan_to_null(values)
    return values, blank if blank.true_count else None


def _parse_times(candidates: pa.Array, target: pa.DataType) -> pa.Array:
    """ISO 8601 text to naive UTC times (offsets converted), unparseable ones null.

    pandas' ISO parser accepts everything Arrow's does and marks each bad value
    instead of failing, so one bad date costs one vectorized pass, not a search.
    """
    import pandas as pd

    parsed = pd.to_datetime(
        pd.Series(candidates.to_pandas()), errors="coerce", utc=True, format="ISO8601"
    )
    moments = pc.cast(pa.array(parsed, from_pandas=True), pa.timestamp("us"), safe=False)
    return moments if target == moments.type else pc.cast(moments, target, safe=False)


def _without_overflow(digits: pa.Array) -> pa.Array:
    """Integer text with the values beyond int64 set to null (compared as text)."""
    negative = pc.starts_with(digits, "-").fill_null(False)
    body = pc.replace_substring_regex(pc.utf8_ltrim(digits, "-"), r"^0+([0-9])", r"\1")
    length = pc.utf8_length(body)
    limit = pc.if_else(negative, "9223372036854775808", "9223372036854775807")
    too_big = pc.or_(
        pc.greater(length, 19), pc.and_(pc.equal(length, 19), pc.greater(body, limit))
    ).fill_null(False)
    return pc.if_else(too_big, None, digits) if too_big.true_count else digits


def _nan_to_null(values: pa.Array) -> pa.Array:
    nan = pc.is_nan(values)
    return pc.if_else(nan, None, values) if nan.true_count else values


def _cast_or_null(
    array: pa.Array, cast: Callable[[pa.Array], pa.Array], target: pa.DataType
) -> pa.Array:
    """``cast(array)``, with each value Arrow refuses set to null (found by halving)."""
    try:
        return cast(array)
    except (pa.ArrowInvalid, OverflowError):
        pass
    if len(array) <= 8:
        pieces = []
        for index in range(len(array)):
            try:
                pieces.append(cast(array.slice(index, 1)))
            except (pa.ArrowInvalid, OverflowError):
                pieces.append(pa.nulls(1, target))
        return pa.concat_arrays(pieces) if pieces else pa.nulls(0, target)
    half = len(array) // 2
    return pa.concat_arrays(
        [
            _cast_or_null(array.slice(0, half), cast, target),
            _cast_or_null(array.slice(half), cast, target),
        ]
    )


def _to_category(raw: pa.Array, plan: _Plan) -> pa.Array:
    if plan.categories is None:
        if pa.types.is_dictionary(raw.type):
            return raw.cast(plan.type)
        return pc.dictionary_encode(as_text(raw))
    if pa.types.is_dictionary(raw.type):
        mapping = pc.index_in(as_text(raw.dictionary), value_set=plan.categories)
        indices = pc.take(mapping, raw.indices)
    else:
        indices = pc.index_in(as_text(raw), value_set=plan.categories)
    return pa.DictionaryArray.from_arrays(indices, plan.categories)


def as_text(array: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if type_family(array.type) not in (
        "text",
        "int",
        "float",
        "decimal",
        "bool",
        "timestamp",
        "date",
    ):
        raise Uncastable
    return array if array.type == pa.string() else pc.cast(array, pa.string())


def uncastable_problem(name: str, arrow: pa.DataType, plan: _Plan) -> str:
    return (
        f"column {name!r} holds {arrow} values, which cannot become {plan.column.type}; "
        "fix the data or change the column's type in the contract"
    )
