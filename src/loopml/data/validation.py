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

This module holds the validator and its checks. Conformance is in ``_conform``, the
keys of the uniqueness checks in ``_uniqueness``, the result classes with their examples
and row messages in ``_validation_report``, and ``contract_to_pandera`` is built in
``_pandera``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import reduce
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.data._conform import (
    Uncastable,
    arrow_columns,
    as_text,
    conform,
    row_count,
    uncastable_problem,
)
from loopml.data._contract_checks import parse_bound
from loopml.data._pandera import to_pandera
from loopml.data._uniqueness import EXACT_KINDS, KeyEncoder, LaterKeys, SeenSet, key_values, mix
from loopml.data._validation_report import (
    _EXAMPLES,
    DATASET_CHECKS,
    BatchResult,
    CheckResult,
    Failure,
    ValidationReport,
    json_safe,
    record_failures,
    row_reasons,
)
from loopml.data.contract import ColumnContract, Contract

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


# -- the validator -------------------------------------------------------------------


@dataclass
class _Plan:
    """The compiled checks of one column (``_conform`` and ``_uniqueness`` read it too)."""

    column: ColumnContract
    type: pa.DataType
    checks: dict[str, int]
    low: pa.Scalar | None = None
    high: pa.Scalar | None = None
    categories: pa.Array | None = None
    category_regex_fails: pa.Array | None = None
    regex: str | None = None


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
        self._seen: dict[int, SeenSet] = {}
        self._later: dict[int, tuple[LaterKeys, _Plan]] = {}
        self._invalid: list[tuple[int, int, np.ndarray[Any, np.dtype[np.uint8]]]] = []
        self._newest: Any = None
        self._keys = KeyEncoder()

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
            parsed = parse_bound(column.type, value)
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

    def defer_unique_checks(self) -> None:
        """Checks ``unique`` columns (and a one-column ``key``) once, in ``finish()``,
        instead of batch by batch: one sort of all the keys instead of a search per
        batch. For callers that refuse all the data when any row fails, such as
        ingestion under ``on_invalid="fail"``; call it before the first batch.

        The batches' ``valid`` masks and ``reasons`` then do not show repeats; the report
        of ``finish()`` counts them, gives their examples and leaves them out of
        ``rows_valid`` (and so of ``min_rows``/``max_rows``), as batch by batch. Only
        ``freshness`` differs: a repeated row's timestamp still counts as valid. Text
        columns, categories without a list and keys of several columns, whose keys are
        hashes that cannot give back the value for an example, stay batch by batch.
        """
        if self._rows_in:
            raise RuntimeError("defer_unique_checks() must come before the first batch")
        for plan in self._plans:
            if "unique" in plan.checks and _exact(plan):
                self._later[plan.checks["unique"]] = (LaterKeys(), plan)
        key = self.contract.key or []
        if self._key_unique is not None and len(key) == 1 and _exact(self._by_name[key[0]]):
            self._later[self._key_unique] = (LaterKeys(), self._by_name[key[0]])

    # -- one batch ---------------------------------------------------------------------

    def check(self, batch: pa.RecordBatch | pa.Table | pd.DataFrame) -> BatchResult:
        """Validates one batch; see the module docstring for what is checked.

        Returns:
            The conformed table, a validity mask and (on demand) a reason per row.
        """
        names, arrays = arrow_columns(batch)
        rows = row_count(batch, arrays)
        structural = self._structure(names)
        position: dict[str, int] = {}
        for index, name in enumerate(names):
            position.setdefault(name, index)
        failures: list[Failure] = []
        conformed: dict[str, pa.Array] = {}
        for plan in self._plans:
            name = plan.column.name
            found = position.get(name)
            if found is None:
                conformed[name] = pa.nulls(rows, plan.type)
                continue
            try:
                conformed[name] = self._check_column(plan, arrays[found], failures)
            except Uncastable:
                structural.append(self._note(uncastable_problem(name, arrays[found].type, plan)))
                conformed[name] = pa.nulls(rows, plan.type)
        self._check_key(conformed, position, failures)
        masks = [f.mask for f in failures]
        if masks:
            invalid = reduce(pc.or_, masks)
            valid = pc.invert(invalid).to_numpy(zero_copy_only=False)
        else:
            valid = np.ones(rows, dtype=np.bool_)
        record_failures(self._results, failures, self._rows_in)
        valid_rows = int(np.count_nonzero(valid))
        if self._later and valid_rows < rows:  # finish() must not count these rows twice
            self._invalid.append((self._rows_in, rows, np.packbits(valid)))
        self._rows_in += rows
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

    def _check_column(self, plan: _Plan, raw: pa.Array, failures: list[Failure]) -> pa.Array:
        checks = plan.checks
        values, extra_missing = conform(raw, plan)
        missing_count = raw.null_count + (extra_missing.true_count if extra_missing else 0)
        missing: pa.Array | None = None
        if missing_count:
            missing = raw.is_null()
            if extra_missing is not None:
                missing = pc.or_(missing, extra_missing)
        fixed_categories = plan.column.type == "category" and plan.categories is not None
        if values.null_count > missing_count and not fixed_categories:
            bad = values.is_null() if missing is None else pc.and_not(values.is_null(), missing)
            failures.append(Failure(checks["type"], bad, (raw,)))
        if "not_null" in checks and missing is not None:
            failures.append(Failure(checks["not_null"], missing))
        if plan.low is not None or plan.high is not None:
            self._check_range(plan, values, failures)
        if plan.categories is not None:
            if plan.column.type == "category":
                failing = pc.and_not(values.is_null(), raw.is_null())
                if missing is not None:
                    failing = pc.and_not(failing, missing)
                if failing.true_count:
                    failures.append(Failure(checks["categories"], failing, (as_text(raw),)))
            else:
                failing = pc.invert(pc.is_in(values, value_set=plan.categories))
                if values.null_count:
                    failing = pc.and_(failing, values.is_valid())
                if failing.true_count:
                    failures.append(Failure(checks["categories"], failing, (values,)))
        if plan.regex is not None:
            if plan.category_regex_fails is not None:
                failing = pc.take(plan.category_regex_fails, values.indices).fill_null(False)
            elif pa.types.is_dictionary(values.type):
                fails = pc.invert(pc.match_substring_regex(values.dictionary, plan.regex))
                failing = pc.take(fails, values.indices).fill_null(False)
            else:
                failing = pc.invert(pc.match_substring_regex(values, plan.regex)).fill_null(False)
            if failing.true_count:
                failures.append(Failure(checks["regex"], failing, (values,)))
        if "unique" in checks:
            keys, present = self._keys.encode(values, plan)
            if checks["unique"] in self._later:
                self._later[checks["unique"]][0].add(keys, present, self._rows_in)
                return values
            repeats = self._seen.setdefault(checks["unique"], SeenSet()).repeats(keys, present)
            if repeats is not None:
                failures.append(Failure(checks["unique"], pa.array(repeats), (values,)))
        return values

    def _check_range(self, plan: _Plan, values: pa.Array, failures: list[Failure]) -> None:
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
                failures.append(Failure(plan.checks[bound], failing, (values,)))

    def _check_key(
        self, conformed: dict[str, pa.Array], position: dict[str, int], failures: list[Failure]
    ) -> None:
        key = self.contract.key
        if not key or any(name not in position for name in key):
            return
        present: np.ndarray[Any, np.dtype[np.bool_]] | None = None
        combined: np.ndarray[Any, np.dtype[np.uint64]] | None = None
        for name in key:
            values = conformed[name]
            if name in self._key_checks and values.null_count:
                failures.append(Failure(self._key_checks[name], values.is_null()))
            if self._key_unique is None:
                continue
            keys, valid = self._keys.encode(values, self._by_name[name])
            combined = keys if combined is None else mix(mix(combined) ^ keys)
            if valid is not None:
                present = valid if present is None else present & valid
        if self._key_unique in self._later and combined is not None:
            self._later[self._key_unique][0].add(combined, present, self._rows_in)
        elif self._key_unique is not None and combined is not None:
            repeats = self._seen.setdefault(self._key_unique, SeenSet()).repeats(combined, present)
            if repeats is not None:
                columns = tuple(conformed[name] for name in key)
                failures.append(Failure(self._key_unique, pa.array(repeats), columns))

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
        valid = self._rows_valid - self._later_repeats(checks)
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

    def _later_repeats(self, checks: list[CheckResult]) -> int:
        """Adds the repeats of the deferred unique checks to ``checks``; the number of
        rows they make invalid that no other check failed."""
        repeating: list[np.ndarray[Any, np.dtype[np.int64]]] = []
        for index, (later, plan) in self._later.items():
            rows, keys = later.repeats()
            if not len(rows):
                continue
            repeating.append(rows)
            result = checks[index]
            result.failures += len(rows)
            result.examples = [json_safe(v) for v in key_values(keys[:_EXAMPLES], plan).to_pylist()]
        if not repeating:
            return 0
        rows = reduce(np.union1d, repeating)
        invalid = [
            offset + np.flatnonzero(~np.unpackbits(packed, count=count).view(np.bool_))
            for offset, count, packed in self._invalid
        ]
        if invalid:
            rows = rows[~np.isin(rows, np.concatenate(invalid))]
        return len(rows)

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
        return CheckResult("freshness", freshness.column, int(stale), [json_safe(newest)], detail)

    # -- reasons -----------------------------------------------------------------------

    def _reasons(self, result: BatchResult) -> pa.StringArray:
        """The row messages of ``result``; ``BatchResult.reasons`` reads them."""
        columns = {name: plan.column for name, plan in self._by_name.items()}
        return row_reasons(result, self._results, columns)


def _exact(plan: _Plan) -> bool:
    """Whether the column's keys are its values (see ``_uniqueness.EXACT_KINDS``)."""
    kind = plan.column.type
    return kind in EXACT_KINDS or (kind == "category" and plan.categories is not None)


# -- the same contract as a pandera schema ---------------------------------------------


def contract_to_pandera(contract: Contract, now: datetime | None = None) -> pandera.DataFrameSchema:
    """The pandera schema equivalent to ``contract``, for pandas users of pandera.

    Dtypes are coerced (``int`` becomes pandas' nullable ``Int64``), checks become
    pandera checks, ``unique`` and ``key`` report repeats after the first, and the row
    bounds and freshness become dataframe checks. Differences from ``Validator``:
    pandera treats missing values in a unique column as equal to one another, and runs
    regexes with Python's ``re`` instead of RE2.
    """
    return to_pandera(contract, now)
