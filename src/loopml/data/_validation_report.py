"""The results of validation: per batch, per check and for the whole run, with messages.

Internal: use ``loopml.data.validation``, which exports ``BatchResult``, ``CheckResult``,
``ValidationReport`` and ``DATASET_CHECKS``. Counts, examples and row messages are built
here from the failure masks the validator collects.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.data._conform import type_family

if TYPE_CHECKING:
    import pandas as pd

    from loopml.data.contract import ColumnContract
    from loopml.data.validation import Validator

__all__ = [
    "DATASET_CHECKS",
    "BatchResult",
    "CheckResult",
    "Failure",
    "ValidationReport",
    "json_safe",
    "record_failures",
    "row_reasons",
]

DATASET_CHECKS = frozenset({"min_rows", "max_rows", "freshness"})
_EXAMPLES = 5
_TEXT_LIMIT = 80


@dataclass
class CheckResult:
    """One check over everything seen so far.

    ``examples`` holds up to five failing values (JSON-safe; datetimes as ISO text);
    for ``not_null`` and ``key_not_null`` they are row numbers counted from 0 across
    all batches. ``detail`` states the rule (``max 120``, ``max_age 7d``).
    """

    check: str
    column: str | None
    failures: int = 0
    examples: list[Any] = field(default_factory=list)
    detail: str = ""

    @property
    def dataset_level(self) -> bool:
        """True for checks of the whole dataset (row bounds, freshness), not of rows."""
        return self.check in DATASET_CHECKS


@dataclass
class ValidationReport:
    """The outcome of validating every batch, with the dataset checks of ``finish()``."""

    rows_in: int
    rows_valid: int
    rows_invalid: int
    checks: list[CheckResult]
    structural: list[str]

    @property
    def passed(self) -> bool:
        """No structural problem and no failure of any check."""
        return not self.structural and all(c.failures == 0 for c in self.checks)

    @property
    def failed_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if c.failures]

    @property
    def dataset_passed(self) -> bool:
        """No structural problem and no dataset-level failure: what quarantining the
        invalid rows cannot fix."""
        return not self.structural and not any(c.failures for c in self.checks if c.dataset_level)

    def to_frame(self) -> pd.DataFrame:
        """One row per check: check, column, failures, examples, detail."""
        import pandas as pd

        return pd.DataFrame(
            [(c.check, c.column, c.failures, c.examples, c.detail) for c in self.checks],
            columns=["check", "column", "failures", "examples", "detail"],
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (``from_dict`` reads it back)."""
        return {
            "rows_in": self.rows_in,
            "rows_valid": self.rows_valid,
            "rows_invalid": self.rows_invalid,
            "passed": self.passed,
            "structural": list(self.structural),
            "checks": [
                {
                    "check": c.check,
                    "column": c.column,
                    "failures": c.failures,
                    "examples": [json_safe(v) for v in c.examples],
                    "detail": c.detail,
                }
                for c in self.checks
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationReport:
        return cls(
            rows_in=int(data["rows_in"]),
            rows_valid=int(data["rows_valid"]),
            rows_invalid=int(data["rows_invalid"]),
            structural=list(data.get("structural", [])),
            checks=[
                CheckResult(
                    check=c["check"],
                    column=c.get("column"),
                    failures=int(c.get("failures", 0)),
                    examples=list(c.get("examples", [])),
                    detail=c.get("detail", ""),
                )
                for c in data.get("checks", [])
            ],
        )

    def __str__(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        lines = [
            f"Validation {verdict}: {self.rows_in:,} rows in, {self.rows_valid:,} valid, "
            f"{self.rows_invalid:,} invalid; {len(self.checks)} checks."
        ]
        lines += [f"  structural: {problem}" for problem in self.structural]
        for c in self.failed_checks:
            where = f"{c.column} " if c.column else ""
            examples = ", ".join(_short(v) for v in c.examples)
            label = "rows" if c.check in ("not_null", "key_not_null") else "e.g."
            lines.append(
                f"  {where}{c.check}: {c.failures:,} failing"
                + (f" ({c.detail})" if c.detail else "")
                + (f", {label} {examples}" if examples else "")
            )
        return "\n".join(lines)


@dataclass
class Failure:
    """The failing rows of one check in one batch, kept to build messages on demand."""

    check: int
    mask: pa.BooleanArray
    values: Sequence[pa.Array] = ()


@dataclass
class BatchResult:
    """The outcome of one batch.

    Attributes:
        table: The conformed rows, all of them: contract columns in contract order cast
            to their contract types (extra columns after them under ``allow``).
        valid: One bool per row.
        structural: The structural problems of this batch (the report keeps them all).
    """

    table: pa.Table
    valid: np.ndarray[Any, np.dtype[np.bool_]]
    structural: list[str]
    _failures: list[Failure] = field(default_factory=list, repr=False)
    _validator: Validator | None = field(default=None, repr=False)

    @property
    def rows(self) -> int:
        return len(self.valid)

    @property
    def rows_valid(self) -> int:
        return int(np.count_nonzero(self.valid))

    @property
    def rows_invalid(self) -> int:
        return self.rows - self.rows_valid

    @cached_property
    def reasons(self) -> pa.StringArray:
        """One text per row, "" for valid rows, e.g. "age: 150 > max 120; plan: 'gold'
        not in categories" (built on first read)."""
        assert self._validator is not None
        return self._validator._reasons(self)

    def accepted(self) -> pa.Table:
        """The conformed valid rows."""
        return self.table.filter(pa.array(self.valid))


# -- counts, examples and messages ----------------------------------------------------


def record_failures(results: list[CheckResult], failures: list[Failure], offset: int) -> None:
    """Adds each failure's count and first examples to its check's result; ``offset`` is
    the number of rows before this batch (examples of missing values are row numbers)."""
    for failure in failures:
        count = failure.mask.true_count
        if not count:
            continue
        result = results[failure.check]
        result.failures += count
        wanted = _EXAMPLES - len(result.examples)
        if wanted <= 0:
            continue
        where = _first_true(failure.mask, wanted)
        if not failure.values:
            result.examples += [offset + int(i) for i in where.to_pylist()]
        elif len(failure.values) == 1:
            taken = failure.values[0].take(where)
            result.examples += [json_safe(v) for v in _decoded(taken).to_pylist()]
        else:
            columns = [_decoded(v.take(where)).to_pylist() for v in failure.values]
            result.examples += [[json_safe(v) for v in row] for row in zip(*columns, strict=True)]


def row_reasons(
    result: BatchResult, results: list[CheckResult], columns: Mapping[str, ColumnContract]
) -> pa.StringArray:
    """One message per row of ``result``, "" for valid rows (see ``BatchResult.reasons``)."""
    rows = result.rows
    invalid = np.flatnonzero(~result.valid)
    if not len(invalid):
        return pc.fill_null(pa.nulls(rows, pa.string()), "")
    parts = []
    for failure in result._failures:
        where = pc.indices_nonzero(failure.mask).to_numpy()
        messages = _messages(failure, pa.array(where), results, columns)
        slot = np.full(len(invalid), -1, dtype=np.int64)
        slot[np.searchsorted(invalid, where)] = np.arange(len(where))
        parts.append(pc.take(messages, pa.array(slot, mask=slot < 0)))
    joined = pc.binary_join_element_wise(*parts, "; ", null_handling="skip")
    slot = np.full(rows, -1, dtype=np.int64)
    slot[invalid] = np.arange(len(invalid))
    return pc.take(joined, pa.array(slot, mask=slot < 0)).fill_null("")


def _messages(
    failure: Failure,
    where: pa.Array,
    results: list[CheckResult],
    columns: Mapping[str, ColumnContract],
) -> pa.Array:
    result = results[failure.check]
    check, column = result.check, result.column
    if check == "not_null":
        return _repeat(f"{column}: missing (not nullable)", len(where))
    if check == "key_not_null":
        return _repeat(f"key: {column} is missing", len(where))
    shown = [_show(v.take(where)) for v in failure.values]
    if check == "key_unique":
        pieces: list[Any] = [f"key ({column}) = ("]
        for index, value in enumerate(shown):
            pieces += [value, ", " if index < len(shown) - 1 else ""]
        return pc.binary_join_element_wise(*pieces, "): repeats an earlier row", "")
    spec = columns[str(column)]
    suffix = {
        "type": f" is not a valid {spec.type}",
        "min": f" < min {spec.min}",
        "max": f" > max {spec.max}",
        "categories": " not in categories",
        "regex": " does not match the regex",
        "unique": " repeats an earlier row",
    }[check]
    return pc.binary_join_element_wise(f"{column}: ", shown[0], suffix, "")


def _first_true(mask: pa.BooleanArray, wanted: int) -> pa.Array:
    """Positions of the first ``wanted`` true values, reading only as far as needed."""
    found: list[np.ndarray[Any, np.dtype[np.uint64]]] = []
    start, size, count = 0, 4096, 0
    while start < len(mask) and count < wanted:
        positions = pc.indices_nonzero(mask.slice(start, size)).to_numpy()[: wanted - count]
        found.append(positions + np.uint64(start))
        count += len(positions)
        start += size
        size *= 4
    return pa.array(np.concatenate(found) if found else np.zeros(0, np.uint64))


def _repeat(text: str, count: int) -> pa.Array:
    return pc.take(pa.array([text]), pa.array(np.zeros(count, dtype=np.int32)))


def _decoded(array: pa.Array) -> pa.Array:
    return array.dictionary_decode() if pa.types.is_dictionary(array.type) else array


def _show(values: pa.Array) -> pa.Array:
    """Values as short text for messages: text quoted, missing as null."""
    values = _decoded(values)
    if type_family(values.type) == "text":
        clipped = pc.utf8_slice_codeunits(pc.cast(values, pa.string()), 0, _TEXT_LIMIT)
        shown = pc.binary_join_element_wise("'", clipped, "'", "")
    elif pa.types.is_timestamp(values.type):
        seconds = pc.cast(values, pa.timestamp("s", values.type.tz), safe=False)
        shown = pc.strftime(seconds, "%Y-%m-%dT%H:%M:%S")
    else:
        try:
            shown = pc.cast(values, pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            shown = pa.array([repr(v) for v in values.to_pylist()], pa.string())
    return shown.fill_null("null")


def json_safe(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, str) and len(value) > 200:
        return value[:200] + "…"
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:39] + "…"
