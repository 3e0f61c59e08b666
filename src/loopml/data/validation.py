"""Batch validation against a data contract: vectorized checks over Arrow, chunk by chunk.

::

    validator = Validator(contract)          # compiles the checks once
    for batch in batches:                    # pyarrow RecordBatch / Table, pandas DataFrame
        result = validator.check(batch)      # .table (conformed), .valid, .reasons
    report = validator.finish()              # + row bounds, freshness; .passed, .to_frame()

What a batch goes through:

- Structure: a contract column missing from the data, a data column missing from the
  contract (under ``extra_columns: error``), a repeated column name, or a column whose
  type cannot become the contract's (a list column for an ``int``) is a *structural*
  failure: the report fails whatever the rows. Rows are still checked against the other
  columns, so one run names every problem.
- Conformance: each column is cast to its contract type: ``int`` to int64, ``float`` to
  float64, ``string`` to string, ``bool`` to bool, ``datetime`` to naive UTC
  timestamp[us] (offsets converted), ``date`` to date32, ``category`` to a dictionary
  (whose dictionary is the contract's categories, in order, when it lists them). Text
  is parsed (surrounding spaces ignored; an empty text is missing), so a CSV read as
  text validates like typed data. A value that cannot be converted ("abc" in an int
  column, 1.5 in an int column) fails its row under the ``type`` check and becomes null
  in the conformed table; it never raises. Take rejected rows from the input, not the
  conformed table.
- Row checks, each a failure mask over the batch: ``not_null`` (NaN counts as missing),
  ``type``, ``min``, ``max``, ``categories``, ``regex`` (full match, RE2), ``unique``
  and the ``key`` (``key_not_null``, ``key_unique``). Uniqueness holds across every
  batch of a validator: the first occurrence of a value is valid, later ones are not;
  missing values never collide. Integers, floats, dates and datetimes are compared
  exactly, text through a 64-bit hash: the chance that any two distinct texts collide
  (and the later is wrongly refused) is about n²/2^65, 3e-8 at a million rows.
- ``finish()`` adds the dataset checks: ``min_rows``/``max_rows`` on the number of valid
  rows and ``freshness`` of the newest valid timestamp.

Everything runs as pyarrow.compute kernels or numpy operations on the Arrow buffers:
no loops over rows, no copies of the frame per check. Messages for failing rows are
built only when ``BatchResult.reasons`` is read.

One module because the conformance rules, the checks and the report read as one
story; the pandera translation (``contract_to_pandera``) is at the end.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cached_property, reduce
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.data.contract import ColumnContract, Contract, _parse_bound
from loopml.errors import ValidationError

if TYPE_CHECKING:
    import pandas as pd
    import pandera.pandas as pandera

__all__ = [
    "DATASET_CHECKS",
    "BatchResult",
    "CheckResult",
    "ValidationReport",
    "Validator",
    "arrow_type",
    "contract_to_pandera",
]

DATASET_CHECKS = frozenset({"min_rows", "max_rows", "freshness"})
_EXAMPLES = 5
_TEXT_LIMIT = 80
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


def arrow_type(column: ColumnContract) -> pa.DataType:
    """The Arrow type of a column in the conformed table."""
    return {
        "int": pa.int64(),
        "float": pa.float64(),
        "string": pa.string(),
        "bool": pa.bool_(),
        "datetime": pa.timestamp("us"),
        "date": pa.date32(),
        "category": pa.dictionary(pa.int32(), pa.string()),
    }[column.type]


# -- results ---------------------------------------------------------------------------


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
                    "examples": [_json_safe(v) for v in c.examples],
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
class _Failure:
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
    _failures: list[_Failure] = field(default_factory=list, repr=False)
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


# -- the validator -------------------------------------------------------------------


@dataclass
class _Plan:
    """The compiled checks of one column."""

    column: ColumnContract
    type: pa.DataType
    checks: dict[str, int]
    low: pa.Scalar | None = None
    high: pa.Scalar | None = None
    categories: pa.Array | None = None
    category_regex_fails: pa.Array | None = None
    regex: str | None = None


class _Uncastable(Exception):
    pass


class Validator:
    """Checks batches against one contract and accumulates the report.

    Args:
        contract: The contract (or anything ``load_contract`` reads).

    A validator keeps state across batches (row counts, values seen by unique and key
    checks, the newest timestamp); use one per dataset ingest.

    Attributes:
        contract: The contract checked.
        schema: The Arrow schema of every conformed table (the contract's columns; under
            ``extra_columns: allow`` the extra columns follow as they came).
    """

    def __init__(self, contract: Contract | Any) -> None:
        if not isinstance(contract, Contract):
            from loopml.data.contract import load_contract

            contract = load_contract(contract)
        self.contract = contract
        self.schema = pa.schema([pa.field(c.name, arrow_type(c)) for c in contract.columns])
        self._results: list[CheckResult] = []
        self._plans = [self._compile(column) for column in contract.columns]
        self._by_name = {plan.column.name: plan for plan in self._plans}
        self._key_checks: dict[str, int] = {}
        key = contract.key or []
        for name in key:
            if self._by_name[name].column.nullable:
                self._key_checks[name] = self._add(
                    "key_not_null", name, "key columns are never null"
                )
        single_unique = len(key) == 1 and self._by_name[key[0]].column.unique
        self._key_unique = (
            None if not key or single_unique else self._add("key_unique", ", ".join(key), "")
        )
        self._rows_in = 0
        self._rows_valid = 0
        self._structural: list[str] = []
        self._seen: dict[int, _SeenSet] = {}
        self._newest: Any = None
        self._duckdb: Any = None

    def _add(self, check: str, column: str | None, detail: str) -> int:
        self._results.append(CheckResult(check, column, detail=detail))
        return len(self._results) - 1

    def _compile(self, column: ColumnContract) -> _Plan:
        plan = _Plan(column, arrow_type(column), {})
        name = column.name
        plan.checks["type"] = self._add("type", name, column.type)
        if not column.nullable:
            plan.checks["not_null"] = self._add("not_null", name, "not nullable")
        for bound in ("min", "max"):
            value = getattr(column, bound)
            if value is None:
                continue
            parsed = _parse_bound(column.type, value)
            if column.type == "int":
                assert isinstance(parsed, float)
                rounded = math.ceil(parsed) if bound == "min" else math.floor(parsed)
                scalar = pa.scalar(max(min(rounded, 2**63 - 1), -(2**63)), pa.int64())
            else:
                scalar = pa.scalar(parsed, plan.type)
            setattr(plan, "low" if bound == "min" else "high", scalar)
            plan.checks[bound] = self._add(bound, name, f"{bound} {value}")
        if column.categories is not None:
            plan.categories = pa.array(column.categories, pa.string())
            plan.checks["categories"] = self._add(
                "categories", name, "in " + ", ".join(column.categories)
            )
        if column.regex is not None:
            plan.regex = f"^(?:{column.regex})$"
            plan.checks["regex"] = self._add("regex", name, f"matches {column.regex}")
            if plan.categories is not None and column.type == "category":
                plan.category_regex_fails = pc.invert(
                    pc.match_substring_regex(plan.categories, plan.regex)
                )
        if column.unique:
            plan.checks["unique"] = self._add("unique", name, "no repeats")
        return plan

    # -- one batch ---------------------------------------------------------------------

    def check(self, batch: pa.RecordBatch | pa.Table | pd.DataFrame) -> BatchResult:
        """Validates one batch; see the module docstring for what is checked.

        Returns:
            The conformed table, a validity mask and (on demand) a reason per row.
        """
        names, arrays = _arrow_columns(batch)
        rows = _row_count(batch, arrays)
        structural = self._structure(names)
        position: dict[str, int] = {}
        for index, name in enumerate(names):
            position.setdefault(name, index)
        failures: list[_Failure] = []
        conformed: dict[str, pa.Array] = {}
        for plan in self._plans:
            name = plan.column.name
            found = position.get(name)
            if found is None:
                conformed[name] = pa.nulls(rows, plan.type)
                continue
            try:
                conformed[name] = self._check_column(plan, arrays[found], failures)
            except _Uncastable:
                structural.append(self._note(_uncastable(name, arrays[found].type, plan)))
                conformed[name] = pa.nulls(rows, plan.type)
        self._check_key(conformed, position, failures)
        masks = [f.mask for f in failures]
        if masks:
            invalid = reduce(pc.or_, masks)
            valid = pc.invert(invalid).to_numpy(zero_copy_only=False)
        else:
            valid = np.ones(rows, dtype=np.bool_)
        self._record(failures, rows)
        self._rows_in += rows
        valid_rows = int(np.count_nonzero(valid))
        self._rows_valid += valid_rows
        freshness = self.contract.freshness
        if freshness is not None and freshness.column in position and valid_rows:
            column = conformed[freshness.column]
            newest = pc.max(column if valid_rows == rows else column.filter(pa.array(valid)))
            newest_value = newest.as_py()
            if newest_value is not None and (self._newest is None or newest_value > self._newest):
                self._newest = newest_value
        table = pa.Table.from_arrays(list(conformed.values()), schema=self.schema)
        if self.contract.extra_columns == "allow":
            for index, name in enumerate(names):
                if name not in self._by_name and position[name] == index:
                    table = table.append_column(name, arrays[index])
        return BatchResult(table, valid, structural, failures, self)

    def _structure(self, names: list[str]) -> list[str]:
        problems: list[str] = []
        counts: dict[str, int] = {}
        for name in names:
            counts[name] = counts.get(name, 0) + 1
        for name, count in counts.items():
            if count > 1:
                problems.append(
                    f"column {name!r} appears {count} times in the data; column names must "
                    "be unique, rename or drop the copies"
                )
        for plan in self._plans:
            if plan.column.name not in counts:
                problems.append(
                    f"column {plan.column.name!r} is in the contract but not in the data; add "
                    "it to the data or remove it from the contract"
                )
        if self.contract.extra_columns == "error":
            for name in counts:
                if name not in self._by_name:
                    problems.append(
                        f"column {name!r} is in the data but not in the contract; add it to "
                        "the contract, or set extra_columns to drop or allow"
                    )
        return [self._note(problem) for problem in problems]

    def _note(self, problem: str) -> str:
        if problem not in self._structural:
            self._structural.append(problem)
        return problem

    def _check_column(self, plan: _Plan, raw: pa.Array, failures: list[_Failure]) -> pa.Array:
        checks = plan.checks
        values, extra_missing = _conform(raw, plan)
        missing_count = raw.null_count + (extra_missing.true_count if extra_missing else 0)
        missing: pa.Array | None = None
        if missing_count:
            missing = raw.is_null()
            if extra_missing is not None:
                missing = pc.or_(missing, extra_missing)
        fixed_categories = plan.column.type == "category" and plan.categories is not None
        if values.null_count > missing_count and not fixed_categories:
            bad = values.is_null() if missing is None else pc.and_not(values.is_null(), missing)
            failures.append(_Failure(checks["type"], bad, (raw,)))
        if "not_null" in checks and missing is not None:
            failures.append(_Failure(checks["not_null"], missing))
        if plan.low is not None or plan.high is not None:
            self._check_range(plan, values, failures)
        if plan.categories is not None:
            if plan.column.type == "category":
                failing = pc.and_not(values.is_null(), raw.is_null())
                if missing is not None:
                    failing = pc.and_not(failing, missing)
                if failing.true_count:
                    failures.append(_Failure(checks["categories"], failing, (_as_text(raw),)))
            else:
                failing = pc.invert(pc.is_in(values, value_set=plan.categories))
                if values.null_count:
                    failing = pc.and_(failing, values.is_valid())
                if failing.true_count:
                    failures.append(_Failure(checks["categories"], failing, (values,)))
        if plan.regex is not None:
            if plan.category_regex_fails is not None:
                failing = pc.take(plan.category_regex_fails, values.indices).fill_null(False)
            elif pa.types.is_dictionary(values.type):
                fails = pc.invert(pc.match_substring_regex(values.dictionary, plan.regex))
                failing = pc.take(fails, values.indices).fill_null(False)
            else:
                failing = pc.invert(pc.match_substring_regex(values, plan.regex)).fill_null(False)
            if failing.true_count:
                failures.append(_Failure(checks["regex"], failing, (values,)))
        if "unique" in checks:
            keys, present = self._keys(values, plan)
            repeats = self._seen.setdefault(checks["unique"], _SeenSet()).repeats(keys, present)
            if repeats is not None:
                failures.append(_Failure(checks["unique"], pa.array(repeats), (values,)))
        return values

    def _check_range(self, plan: _Plan, values: pa.Array, failures: list[_Failure]) -> None:
        if values.null_count == len(values):
            return
        # Without nulls one min_max pass usually shows nothing is out of bounds; with
        # nulls that kernel is slower than the comparisons themselves.
        extremes = pc.min_max(values) if not values.null_count else None
        for bound, scalar, compare in (
            ("min", plan.low, pc.less),
            ("max", plan.high, pc.greater),
        ):
            if scalar is None:
                continue
            if extremes is not None and not compare(extremes[bound], scalar).as_py():
                continue
            failing = compare(values, scalar)
            if values.null_count:
                failing = failing.fill_null(False)
            if failing.true_count:
                failures.append(_Failure(plan.checks[bound], failing, (values,)))

    def _check_key(
        self, conformed: dict[str, pa.Array], position: dict[str, int], failures: list[_Failure]
    ) -> None:
        key = self.contract.key
        if not key or any(name not in position for name in key):
            return
        present: np.ndarray[Any, np.dtype[np.bool_]] | None = None
        combined: np.ndarray[Any, np.dtype[np.uint64]] | None = None
        for name in key:
            values = conformed[name]
            if name in self._key_checks and values.null_count:
                failures.append(_Failure(self._key_checks[name], values.is_null()))
            if self._key_unique is None:
                continue
            keys, valid = self._keys(values, self._by_name[name])
            combined = keys if combined is None else _mix(_mix(combined) ^ keys)
            if valid is not None:
                present = valid if present is None else present & valid
        if self._key_unique is not None and combined is not None:
            repeats = self._seen.setdefault(self._key_unique, _SeenSet()).repeats(combined, present)
            if repeats is not None:
                columns = tuple(conformed[name] for name in key)
                failures.append(_Failure(self._key_unique, pa.array(repeats), columns))

    def _keys(
        self, values: pa.Array, plan: _Plan
    ) -> tuple[np.ndarray[Any, np.dtype[np.uint64]], np.ndarray[Any, np.dtype[np.bool_]] | None]:
        """A uint64 per row (exact for numbers and dates, a hash for text) and which
        rows have a value (None: all)."""
        present = values.is_valid().to_numpy(zero_copy_only=False) if values.null_count else None
        kind = plan.column.type
        if kind == "category" and plan.categories is not None:
            values = values.indices  # positions in the contract's categories: exact
            kind = "int"
        if kind in ("string", "category"):
            return self._hash_text(values), present
        if kind == "bool":
            return values.fill_null(False).to_numpy(zero_copy_only=False).astype(np.uint64), present
        if values.null_count == len(values):
            return np.zeros(len(values), np.uint64), present
        dtype = np.dtype(np.float64 if kind == "float" else f"int{values.type.bit_width}")
        numbers = np.frombuffer(
            values.buffers()[1],
            dtype=dtype,
            count=len(values),
            offset=values.offset * dtype.itemsize,
        )
        if kind == "float":
            return (numbers + 0.0).view(np.uint64), present  # -0.0 and 0.0 are one value
        return numbers.astype(np.int64, copy=False).view(np.uint64), present

    def _hash_text(self, values: pa.Array) -> np.ndarray[Any, np.dtype[np.uint64]]:
        if self._duckdb is None:
            import duckdb

            self._duckdb = duckdb.connect()
        if pa.types.is_dictionary(values.type):
            values = values.dictionary_decode()
        relation = self._duckdb.from_arrow(pa.table({"v": values}))
        hashed = relation.project("hash(v) AS h").to_arrow_table().column(0)
        return np.asarray(hashed.to_numpy(), dtype=np.uint64)

    def _record(self, failures: list[_Failure], rows: int) -> None:
        offset = self._rows_in
        for failure in failures:
            count = failure.mask.true_count
            if not count:
                continue
            result = self._results[failure.check]
            result.failures += count
            wanted = _EXAMPLES - len(result.examples)
            if wanted <= 0:
                continue
            where = _first_true(failure.mask, wanted)
            if not failure.values:
                result.examples += [offset + int(i) for i in where.to_pylist()]
            elif len(failure.values) == 1:
                taken = failure.values[0].take(where)
                result.examples += [_json_safe(v) for v in _decoded(taken).to_pylist()]
            else:
                columns = [_decoded(v.take(where)).to_pylist() for v in failure.values]
                result.examples += [
                    [_json_safe(v) for v in row] for row in zip(*columns, strict=True)
                ]

    # -- the report --------------------------------------------------------------------

    def finish(self, now: datetime | None = None) -> ValidationReport:
        """The report so far, with the dataset checks (row bounds, freshness).

        Args:
            now: The time freshness is measured against (default: the current time; a
                naive datetime is taken as UTC, like the conformed times).

        It may be called again after more batches; each call reports everything seen.
        """
        checks = [
            CheckResult(r.check, r.column, r.failures, list(r.examples), r.detail)
            for r in self._results
        ]
        contract = self.contract
        valid = self._rows_valid
        if contract.min_rows is not None:
            failed = valid < contract.min_rows
            checks.append(
                CheckResult(
                    "min_rows",
                    None,
                    int(failed),
                    [valid] if failed else [],
                    f"at least {contract.min_rows:,} valid rows",
                )
            )
        if contract.max_rows is not None:
            failed = valid > contract.max_rows
            checks.append(
                CheckResult(
                    "max_rows",
                    None,
                    int(failed),
                    [valid] if failed else [],
                    f"at most {contract.max_rows:,} valid rows",
                )
            )
        if contract.freshness is not None:
            checks.append(self._freshness(now))
        return ValidationReport(
            rows_in=self._rows_in,
            rows_valid=valid,
            rows_invalid=self._rows_in - valid,
            checks=checks,
            structural=list(self._structural),
        )

    def _freshness(self, now: datetime | None) -> CheckResult:
        freshness = self.contract.freshness
        assert freshness is not None
        now = now or datetime.now(UTC)
        if now.tzinfo is not None:
            now = now.astimezone(UTC).replace(tzinfo=None)
        newest = self._newest
        detail = f"newest younger than {freshness.max_age}"
        if newest is None:
            return CheckResult(
                "freshness", freshness.column, 1, [None], detail + "; no valid value"
            )
        moment = (
            newest
            if isinstance(newest, datetime)
            else (datetime.combine(newest, datetime.min.time()) + timedelta(days=1))
        )  # a date lasts until its end
        stale = now - moment > freshness.max_age_timedelta
        return CheckResult("freshness", freshness.column, int(stale), [_json_safe(newest)], detail)

    # -- reasons -----------------------------------------------------------------------

    def _reasons(self, result: BatchResult) -> pa.StringArray:
        rows = result.rows
        invalid = np.flatnonzero(~result.valid)
        if not len(invalid):
            return pc.fill_null(pa.nulls(rows, pa.string()), "")
        parts = []
        for failure in result._failures:
            where = pc.indices_nonzero(failure.mask).to_numpy()
            messages = self._messages(failure, pa.array(where))
            slot = np.full(len(invalid), -1, dtype=np.int64)
            slot[np.searchsorted(invalid, where)] = np.arange(len(where))
            parts.append(pc.take(messages, pa.array(slot, mask=slot < 0)))
        joined = pc.binary_join_element_wise(*parts, "; ", null_handling="skip")
        slot = np.full(rows, -1, dtype=np.int64)
        slot[invalid] = np.arange(len(invalid))
        return pc.take(joined, pa.array(slot, mask=slot < 0)).fill_null("")

    def _messages(self, failure: _Failure, where: pa.Array) -> pa.Array:
        result = self._results[failure.check]
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
        plan = self._by_name[str(column)]
        suffix = {
            "type": f" is not a valid {plan.column.type}",
            "min": f" < min {plan.column.min}",
            "max": f" > max {plan.column.max}",
            "categories": " not in categories",
            "regex": " does not match the regex",
            "unique": " repeats an earlier row",
        }[check]
        return pc.binary_join_element_wise(f"{column}: ", shown[0], suffix, "")


# -- conformance -----------------------------------------------------------------------


def _family(arrow: pa.DataType) -> str:
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


def _conform(raw: pa.Array, plan: _Plan) -> tuple[pa.Array, pa.BooleanArray | None]:
    """(values of the contract type, bad values null; extra missing values, e.g. NaN)."""
    kind = plan.column.type
    target = plan.type
    if pa.types.is_null(raw.type):
        return pa.nulls(len(raw), target), None
    if pa.types.is_dictionary(raw.type):
        if kind == "category":
            return _to_category(raw, plan), None
        raw = raw.dictionary_decode()
    family = _family(raw.type)
    if family not in _ACCEPTS[kind]:
        raise _Uncastable
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
        return pc.dictionary_encode(_as_text(raw))
    if pa.types.is_dictionary(raw.type):
        mapping = pc.index_in(_as_text(raw.dictionary), value_set=plan.categories)
        indices = pc.take(mapping, raw.indices)
    else:
        indices = pc.index_in(_as_text(raw), value_set=plan.categories)
    return pa.DictionaryArray.from_arrays(indices, plan.categories)


def _as_text(array: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if _family(array.type) not in ("text", "int", "float", "decimal", "bool", "timestamp", "date"):
        raise _Uncastable
    return array if array.type == pa.string() else pc.cast(array, pa.string())


def _uncastable(name: str, arrow: pa.DataType, plan: _Plan) -> str:
    return (
        f"column {name!r} holds {arrow} values, which cannot become {plan.column.type}; "
        "fix the data or change the column's type in the contract"
    )


# -- uniqueness across batches ---------------------------------------------------------


class _SeenSet:
    """Every key seen so far, as sorted uint64 runs merged like a binary counter."""

    def __init__(self) -> None:
        self._runs: list[np.ndarray[Any, np.dtype[np.uint64]]] = []

    def repeats(
        self,
        keys: np.ndarray[Any, np.dtype[np.uint64]],
        present: np.ndarray[Any, np.dtype[np.bool_]] | None,
    ) -> np.ndarray[Any, np.dtype[np.bool_]] | None:
        """Marks each row whose key appeared before (earlier in this batch or in an
        earlier batch) and remembers the keys; None when nothing repeats."""
        rows = np.flatnonzero(present) if present is not None else None
        candidates = keys[rows] if rows is not None else keys
        ordered = np.sort(candidates)
        later = np.zeros(len(ordered), dtype=np.bool_)
        later[1:] = ordered[1:] == ordered[:-1]
        earlier = self._contains(ordered)
        if not later.any() and (earlier is None or not earlier.any()):
            self._add(ordered)
            return None
        order = np.argsort(candidates, kind="stable")  # equal keys keep their row order
        ordered = candidates[order]
        later[1:] = ordered[1:] == ordered[:-1]
        earlier = self._contains(ordered)
        repeated_sorted = later if earlier is None else later | earlier
        self._add(ordered[~later])
        repeated = np.empty(len(candidates), dtype=np.bool_)
        repeated[order] = repeated_sorted
        if rows is None:
            return repeated
        full = np.zeros(len(keys), dtype=np.bool_)
        full[rows] = repeated
        return full

    def _contains(
        self, ordered: np.ndarray[Any, np.dtype[np.uint64]]
    ) -> np.ndarray[Any, np.dtype[np.bool_]] | None:
        """Which of the sorted keys are in a run; None when none can be."""
        found = None
        for run in self._runs:
            # Only keys inside the run's range can be in it: ascending ids skip the search.
            start = int(np.searchsorted(ordered, run[0]))
            stop = int(np.searchsorted(ordered, run[-1], side="right"))
            if start >= stop:
                continue
            inside = ordered[start:stop]
            where = np.searchsorted(run, inside)
            np.minimum(where, len(run) - 1, out=where)
            if found is None:
                found = np.zeros(len(ordered), dtype=np.bool_)
            found[start:stop] |= run[where] == inside
        return found

    def _add(self, ordered: np.ndarray[Any, np.dtype[np.uint64]]) -> None:
        run = ordered
        if not len(run):
            return
        while self._runs and len(self._runs[-1]) <= 2 * len(run):
            older = self._runs.pop()
            run = np.concatenate([older, run])
            if older[-1] >= run[len(older)]:  # ascending keys need no sort
                run.sort()
        self._runs.append(run)


_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


def _mix(keys: np.ndarray[Any, np.dtype[np.uint64]]) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """splitmix64's finalizer: spreads a key's bits before combining key columns."""
    keys = (keys ^ (keys >> np.uint64(30))) * _MIX_1
    keys = (keys ^ (keys >> np.uint64(27))) * _MIX_2
    return keys ^ (keys >> np.uint64(31))


# -- helpers ---------------------------------------------------------------------------


def _arrow_columns(data: Any) -> tuple[list[str], list[pa.Array]]:
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


def _row_count(batch: Any, arrays: list[pa.Array]) -> int:
    if arrays:
        return len(arrays[0])
    return int(batch.num_rows if hasattr(batch, "num_rows") else len(batch))


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
    if _family(values.type) == "text":
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


def _json_safe(value: Any) -> Any:
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
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:39] + "…"


# -- the same contract as a pandera schema ---------------------------------------------


def contract_to_pandera(contract: Contract, now: datetime | None = None) -> pandera.DataFrameSchema:
    """The pandera schema equivalent to ``contract``, for pandas users of pandera.

    Dtypes are coerced (``int`` becomes pandas' nullable ``Int64``), checks become
    pandera checks, ``unique`` and ``key`` report repeats after the first, and the row
    bounds and freshness become dataframe checks. Differences from ``Validator``:
    pandera treats missing values in a unique column as equal to one another, and runs
    regexes with Python's ``re`` instead of RE2.
    """
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

    parsed = _parse_bound(column.type, value)
    if column.type == "datetime" and isinstance(parsed, datetime):
        return pd.Timestamp(parsed)
    return parsed
