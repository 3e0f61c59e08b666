"""The pandera translation of a contract, for pandas users of pandera.

Internal: use ``loopml.data.validation.contract_to_pandera``, whose docstring lists where
pandera's checks differ from the validator's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loopml.data._contract_checks import parse_bound

if TYPE_CHECKING:
    import pandera.pandas as pandera

    from loopml.data.contract import ColumnContract, Contract

__all__ = ["to_pandera"]


def to_pandera(contract: Contract, now: datetime | None) -> pandera.DataFrameSchema:
    """The schema ``contract_to_pandera`` describes."""
    import pandas as pd
    import pandera.pandas as pandera

    columns = {}
    for column in contract.columns:
        checks = []
        if column.min is not None:
            checks.append(pandera.Check.ge(_pandas_bound(column, column.min)))
        if column.max is not None:
            checks.append(pandera.Check.le(_pandas_bound(column, column.max)))
        if column.categories is not None and column.type == "string":
            checks.append(pandera.Check.isin(column.categories))
        if column.regex is not None:
            checks.append(pandera.Check.str_matches(rf"(?:{column.regex})\Z"))
        dtype: Any = {
            "int": "Int64",
            "float": "float64",
            "string": "str",
            "bool": "boolean",
            "datetime": "datetime64[us]",
            "date": "date",
        }.get(column.type)
        if column.type == "category":
            dtype = "category"
            if column.categories is not None:
                checks.append(pandera.Check.isin(column.categories))
        if column.type == "date":
            from pandera.engines.pandas_engine import Date

            dtype = Date(to_datetime_kwargs={"format": "ISO8601"})
        columns[column.name] = pandera.Column(
            dtype,
            checks=checks,
            nullable=column.nullable,
            unique=column.unique,
            report_duplicates="exclude_first",
            coerce=True,
        )
    frame_checks = []
    if contract.key:
        key = list(contract.key)
        frame_checks.append(
            pandera.Check(lambda frame: frame[key].notna().all(axis=1), name="key_not_null")
        )
    if contract.min_rows is not None:
        least = contract.min_rows
        frame_checks.append(pandera.Check(lambda frame: len(frame) >= least, name="min_rows"))
    if contract.max_rows is not None:
        most = contract.max_rows
        frame_checks.append(pandera.Check(lambda frame: len(frame) <= most, name="max_rows"))
    if contract.freshness is not None:
        name = contract.freshness.column
        oldest = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None) - (
            contract.freshness.max_age_timedelta
        )
        frame_checks.append(
            pandera.Check(lambda frame: frame[name].max() >= pd.Timestamp(oldest), name="freshness")
        )
    strict: Any = {"error": True, "drop": "filter", "allow": False}[contract.extra_columns]
    return pandera.DataFrameSchema(
        columns,
        checks=frame_checks,
        strict=strict,
        unique=list(contract.key) if contract.key else None,
        report_duplicates="exclude_first",
        coerce=True,
    )


def _pandas_bound(column: ColumnContract, value: float | str) -> Any:
    import pandas as pd

    parsed = parse_bound(column.type, value)
    if column.type == "datetime" and isinstance(parsed, datetime):
        return pd.Timestamp(parsed)
    return parsed
