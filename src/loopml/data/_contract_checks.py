"""The checks that make a contract valid, and the problems they raise, each placed at its line.

Internal: use ``loopml.data.contract``, whose docstring states what each field may hold.
The problem records live here rather than with the loader because a ``Contract`` built in
code raises them too; the loader only adds the line of each field.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from loopml.errors import ValidationError

if TYPE_CHECKING:
    from loopml.data.contract import ColumnContract, Contract

__all__ = [
    "BOUNDED_TYPES",
    "ContractProblems",
    "FieldPath",
    "Problem",
    "canonical_number",
    "check_contract",
    "duration_problem",
    "parse_bound",
    "parse_duration",
    "plain_bound",
    "plain_text",
]

BOUNDED_TYPES = ("int", "float", "datetime", "date")
_TEXT = ("string", "category")
_DURATION_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", re.IGNORECASE)
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

FieldPath = tuple[str | int, ...]


# -- problems and where they are ------------------------------------------------------


@dataclass
class Problem:
    """One problem: the path of the field it is about and what is wrong there."""

    path: FieldPath
    message: str
    line: tuple[int, int] | None = None  # explicit position, for problems with no path


class ContractProblems(ValidationError):
    """Every problem found in one contract (a ValidationError)."""

    def __init__(
        self,
        problems: list[Problem],
        source: str | None = None,
        locations: Mapping[FieldPath, tuple[int, int]] | None = None,
    ) -> None:
        self.problems = problems
        located = [_position(p, locations or {}) for p in problems]
        order = sorted(range(len(problems)), key=lambda i: located[i] or (0, 0))
        lines = [_describe(problems[i], located[i]) for i in order]
        where = f" in {source}" if source else ""
        if len(lines) == 1:
            text = f"Invalid data contract{where}: {lines[0]}"
        else:
            text = f"Invalid data contract{where}, {len(lines)} problems:\n  " + "\n  ".join(lines)
        super().__init__(text)

    def located(
        self, source: str, locations: Mapping[FieldPath, tuple[int, int]]
    ) -> ContractProblems:
        return ContractProblems(self.problems, source, locations)


def _position(
    problem: Problem, locations: Mapping[FieldPath, tuple[int, int]]
) -> tuple[int, int] | None:
    """Where a problem is: its own mark, else its path's, else its nearest parent's."""
    position = problem.line
    path = problem.path
    while position is None and path:
        position = locations.get(path)
        path = path[:-1]
    return position


def _describe(problem: Problem, position: tuple[int, int] | None) -> str:
    dotted = ".".join(str(part) for part in problem.path)
    if position is not None:
        inside = f" ({dotted})" if dotted else ""
        return f"line {position[0]}, column {position[1]}{inside}: {problem.message}"
    return f"{dotted or 'contract'}: {problem.message}"


# -- the checks of a contract ---------------------------------------------------------


def check_contract(contract: Contract) -> list[Problem]:
    """Every problem of ``contract``, each at the path of the field it is about."""
    from loopml.data.contract import EXTRA_COLUMNS, ColumnContract  # it imports this module

    problems: list[Problem] = []

    def add(path: FieldPath, message: str) -> None:
        problems.append(Problem(path, message))

    if not isinstance(contract.columns, list) or not contract.columns:
        add(("columns",), "a contract needs at least one column")
        return problems
    names: set[str] = set()
    for column in contract.columns:
        if not isinstance(column, ColumnContract):
            add(("columns",), f"{column!r} is not a ColumnContract")
            continue
        path: FieldPath = ("columns", column.name)
        if not isinstance(column.name, str) or not column.name:
            add(("columns",), "a column name must be non-empty text")
        elif column.name in names:
            add(path, f"column {column.name!r} is listed twice; keep one")
        names.add(column.name)
        problems.extend(_column_problems(column, path))
    by_name = {c.name: c for c in contract.columns if isinstance(c, ColumnContract)}
    for bound in ("min_rows", "max_rows"):
        value = getattr(contract, bound)
        if value is not None and (not _is_int(value) or value < 0):
            add(("dataset", "rows", bound[:3]), f"must be a whole number >= 0, got {value!r}")
    if (
        _is_int(contract.min_rows)
        and _is_int(contract.max_rows)
        and contract.min_rows > contract.max_rows  # type: ignore[operator]
    ):
        add(
            ("dataset", "rows", "min"),
            f"min {contract.min_rows} is greater than max "
            f"{contract.max_rows}; make min at most max",
        )
    if contract.key is not None:
        if not contract.key:
            add(("dataset", "key"), "'key' is empty; name at least one column or remove it")
        for index, name in enumerate(contract.key):
            if name not in by_name:
                add(("dataset", "key", index), _missing_column("key", name, by_name))
        if len(set(contract.key)) != len(contract.key):
            add(("dataset", "key"), "'key' names a column twice")
    freshness = contract.freshness
    if freshness is not None:
        path = ("dataset", "freshness")
        if freshness.column not in by_name:
            add((*path, "column"), _missing_column("freshness", freshness.column, by_name))
        elif by_name[freshness.column].type not in ("datetime", "date"):
            add(
                (*path, "column"),
                f"freshness needs a datetime or date column; "
                f"{freshness.column!r} is {by_name[freshness.column].type}",
            )
        if parse_duration(str(freshness.max_age)) is None:
            add((*path, "max_age"), duration_problem(freshness.max_age))
    if contract.extra_columns not in EXTRA_COLUMNS:
        add(
            ("dataset", "extra_columns"),
            f"extra_columns must be one of "
            f"{', '.join(EXTRA_COLUMNS)}, got {contract.extra_columns!r}",
        )
    return problems


def _column_problems(column: ColumnContract, path: FieldPath) -> list[Problem]:
    from loopml.data.contract import COLUMN_TYPES  # it imports this module

    problems: list[Problem] = []

    def add(path: FieldPath, message: str) -> None:
        problems.append(Problem(path, message))

    if column.type not in COLUMN_TYPES:
        close = difflib.get_close_matches(str(column.type), COLUMN_TYPES, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        add(
            (*path, "type"),
            f"unknown column type {column.type!r}; {hint}the types are {', '.join(COLUMN_TYPES)}",
        )
        return problems
    for flag in ("nullable", "unique"):
        if not isinstance(getattr(column, flag), bool):
            add((*path, flag), f"{flag} must be true or false, got {getattr(column, flag)!r}")
    bounds: dict[str, Any] = {}
    for bound in ("min", "max"):
        value = getattr(column, bound)
        if value is None:
            continue
        if column.type not in BOUNDED_TYPES:
            add(
                (*path, bound),
                f"{bound} applies to int, float, datetime and date "
                f"columns, not {column.type}; remove it or use categories/regex",
            )
            continue
        parsed = parse_bound(column.type, value)
        if parsed is None:
            example = "a number" if column.type in ("int", "float") else "ISO text like "
            example += {"datetime": "'2024-01-31T12:00:00'", "date": "'2024-01-31'"}.get(
                column.type, ""
            )
            add(
                (*path, bound),
                f"{bound} of {_article(column.type)} {column.type} column must be {example}, "
                f"got {value!r}",
            )
        else:
            bounds[bound] = parsed
    if len(bounds) == 2 and bounds["min"] > bounds["max"]:
        add(
            (*path, "min"),
            f"min {column.min!r} is greater than max {column.max!r}; make min at most max",
        )
    if column.categories is not None:
        if column.type not in _TEXT:
            add(
                (*path, "categories"),
                f"categories apply to category and string columns, not {column.type}",
            )
        elif not column.categories:
            add(
                (*path, "categories"),
                "categories is empty; list the allowed values or remove it",
            )
        else:
            seen: set[str] = set()
            for index, value in enumerate(column.categories):
                if value in seen:
                    add((*path, "categories", index), f"{value!r} is listed twice")
                seen.add(value)
    if column.regex is not None:
        if column.type not in _TEXT:
            add(
                (*path, "regex"),
                f"regex applies to string and category columns, not {column.type}",
            )
        elif not isinstance(column.regex, str):
            add((*path, "regex"), f"regex must be text, got {column.regex!r}")
        else:
            problem = _regex_problem(column.regex)
            if problem:
                add((*path, "regex"), problem)
    return problems


def _regex_problem(pattern: str) -> str | None:
    try:
        re.compile(pattern)
    except re.error as error:
        return f"invalid regex {pattern!r}: {error}; fix the pattern"
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        pc.match_substring_regex(pa.array([""]), f"^(?:{pattern})$")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        return (
            f"regex {pattern!r} is not supported by the RE2 engine that checks it "
            f"({error}); avoid lookarounds and backreferences"
        )
    return None


def _missing_column(role: str, name: str, by_name: Mapping[str, ColumnContract]) -> str:
    close = difflib.get_close_matches(str(name), list(by_name), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{role} names {name!r}, which is not a column of the contract; {hint}add the column"


def duration_problem(text: Any) -> str:
    return (
        f"max_age {text!r} is not a positive duration; write a number and a unit (s, m, h, "
        "d, w), e.g. 30m, 36h, 7d or 1d12h"
    )


def parse_duration(text: str) -> timedelta | None:
    """'36h' -> timedelta(hours=36); None if ``text`` is not a positive duration."""
    text = text.strip()
    position, seconds = 0, 0.0
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if match is None:
            return None
        seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
        position = match.end()
    return timedelta(seconds=seconds) if seconds > 0 else None


def parse_bound(kind: str, value: Any) -> float | datetime | date | None:
    """A bound as a comparable value, or None when it does not fit the column type."""
    if kind in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            return None
        return float(value)
    if not isinstance(value, str):
        return None
    try:
        if kind == "date":
            return date.fromisoformat(value)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=None) - (parsed.utcoffset() or timedelta(0))


def plain_bound(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalar
        return value.item()
    return value


def plain_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def canonical_number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
