"""Inferring a contract from data: the types, ranges, categories and key it shows.

Internal: use ``loopml.data.contract.infer_contract``, whose docstring states the rules.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from loopml.data._contract_checks import BOUNDED_TYPES
from loopml.errors import ValidationError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from loopml.data.contract import ColumnContract, Contract

__all__ = ["infer_from_data"]


def infer_from_data(data: pd.DataFrame | pa.Table, categories_max: int) -> Contract:
    """The contract ``infer_contract`` describes, for ``data``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from loopml.data._conform import arrow_columns  # imports pyarrow, unlike this module
    from loopml.data.contract import ColumnContract, Contract  # it imports this module

    names, arrays = arrow_columns(data)
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise ValidationError(
            f"The data has repeated column names ({', '.join(repeated)}); rename them first."
        )
    columns: list[ColumnContract] = []
    key: list[str] | None = None
    for name, array in zip(names, arrays, strict=True):
        kind = _infer_type(array.type)
        if kind == "float":
            array = pc.if_else(pc.is_nan(array), None, array)
        if kind in ("string", "category") and pa.types.is_dictionary(array.type):
            array = array.dictionary_decode()
        nulls = array.null_count
        present = len(array) - nulls
        column = ColumnContract(name=name, type=kind, nullable=nulls > 0 or present == 0)
        if present and kind in BOUNDED_TYPES:
            extremes = pc.min_max(array)
            column.min = _observed(extremes["min"].as_py())
            column.max = _observed(extremes["max"].as_py())
        if present and kind in ("string", "category"):
            distinct = pc.unique(array.drop_null())
            if kind == "category" or (
                len(distinct) <= categories_max and len(distinct) * 2 <= present
            ):
                column.type = "category"
                column.categories = sorted(str(v) for v in distinct.to_pylist())
            elif nulls == 0 and len(distinct) == present:
                column.unique = True
        elif present and kind == "int" and nulls == 0:
            column.unique = pc.count_distinct(array).as_py() == present
        if column.unique and nulls == 0 and _looks_like_id(name):
            # Identifiers grow: bounding them by today's range would refuse every new row.
            column.min = column.max = None
            key = key or [name]
        if kind in ("datetime", "date"):
            column.max = None  # tomorrow's data is newer than anything seen today
        columns.append(column)
    return Contract(columns=columns, key=key)


def _infer_type(arrow_type: pa.DataType) -> str:
    import pyarrow as pa

    t = pa.types
    if t.is_dictionary(arrow_type):
        return "category"
    if t.is_boolean(arrow_type):
        return "bool"
    if t.is_integer(arrow_type):
        return "int"
    if t.is_floating(arrow_type) or t.is_decimal(arrow_type):
        return "float"
    if t.is_timestamp(arrow_type):
        return "datetime"
    if t.is_date(arrow_type):
        return "date"
    return "string"


def _observed(value: Any) -> float | str | None:
    if isinstance(value, datetime):
        moment: datetime = value
        if moment.tzinfo is not None:  # stated in UTC, as the validator compares
            moment = moment.replace(tzinfo=None) - (moment.utcoffset() or timedelta(0))
        return moment.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None:
        return None
    if isinstance(value, int):
        return int(value)
    return float(value)


def _looks_like_id(name: str) -> bool:
    lowered = name.lower()
    return (
        lowered in ("id", "key")
        or lowered.endswith(("_id", "-id", " id"))
        or name.endswith(("Id", "ID"))
    )
