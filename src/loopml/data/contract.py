"""Data contracts: what a dataset's columns and rows must be, as plain data with a loader.

A contract is written in YAML (or the same structure in JSON, or as a dict)::

    columns:
      customer_id: {type: int, nullable: false, unique: true}
      age: {type: int, min: 0, max: 120}
      plan: {type: category, categories: [basic, pro, team]}
      email: {type: string, regex: '[^@]+@[^@]+'}
      signup: {type: datetime, min: '2020-01-01'}
      score: float                # a column may be written as just its type
    dataset:
      rows: {min: 1, max: 10000000}
      key: [customer_id]          # unique together, never null
      freshness: {column: signup, max_age: 7d}
      extra_columns: error        # error | drop | allow

Column fields (only ``type`` is required):

- ``type``: ``int``, ``float``, ``string``, ``bool``, ``datetime``, ``date`` or ``category``.
- ``nullable`` (default true): whether a value may be missing (NaN counts as missing).
- ``min`` / ``max``: inclusive bounds; numbers for ``int``/``float``, ISO 8601 text for
  ``datetime``/``date`` (a timezone offset is converted to UTC).
- ``categories``: the allowed values of a ``category`` or ``string`` column.
- ``regex``: a pattern every value must match in full (RE2 syntax, as pyarrow runs it;
  ``\\d`` and ``\\w`` are ASCII-only there).
- ``unique`` (default false): no value may repeat (missing values do not count).

Dataset fields (all optional): ``rows`` bounds on the number of valid rows, ``key``
columns that together identify a row, ``freshness`` (the newest value of a datetime or
date column must be younger than ``max_age``: a number and a unit among ``s``, ``m``,
``h``, ``d``, ``w``, e.g. ``30m``, ``36h``, ``7d``, ``1d12h``), and ``extra_columns``:
what to do with data columns the contract does not name.

YAML is read with YAML 1.2 scalars: only ``true``/``false`` are booleans, so
``categories: [yes, no]`` are two strings, and dates stay text. Every problem in a
contract file is reported at once, each naming its line and column.

The loader and its line tracking are in ``_contract_loading``, the checks a contract must
pass in ``_contract_checks`` and the inference from data in ``_contract_inference``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.data._contract_checks import (
    ContractProblems,
    canonical_number,
    check_contract,
    duration_problem,
    parse_duration,
    plain_bound,
    plain_text,
)
from loopml.data._contract_inference import infer_from_data
from loopml.data._contract_loading import dump_yaml, from_data, load_file, load_text
from loopml.errors import NotFoundError, ValidationError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = [
    "COLUMN_TYPES",
    "ColumnContract",
    "Contract",
    "Freshness",
    "infer_contract",
    "load_contract",
]

COLUMN_TYPES = ("int", "float", "string", "bool", "datetime", "date", "category")
EXTRA_COLUMNS = ("error", "drop", "allow")


@dataclass
class ColumnContract:
    """What one column must hold; see the module docstring for each field."""

    name: str
    type: str
    nullable: bool = True
    min: float | str | None = None
    max: float | str | None = None
    categories: list[str] | None = None
    regex: str | None = None
    unique: bool = False

    def __post_init__(self) -> None:
        self.min = plain_bound(self.min)
        self.max = plain_bound(self.max)
        if isinstance(self.categories, (list, tuple)):
            self.categories = [plain_text(value) for value in self.categories]

    def to_dict(self) -> dict[str, Any]:
        """The fields that differ from their defaults, ``type`` first (no ``name``)."""
        spec: dict[str, Any] = {"type": self.type}
        if not self.nullable:
            spec["nullable"] = False
        for bound in ("min", "max"):
            value = getattr(self, bound)
            if value is not None:
                spec[bound] = canonical_number(value)
        if self.categories is not None:
            spec["categories"] = list(self.categories)
        if self.regex is not None:
            spec["regex"] = self.regex
        if self.unique:
            spec["unique"] = True
        return spec


@dataclass
class Freshness:
    """The newest value of ``column`` must be younger than ``max_age`` (e.g. ``"36h"``)."""

    column: str
    max_age: str

    @property
    def max_age_timedelta(self) -> timedelta:
        """``max_age`` parsed; raises ValidationError if it is not a duration."""
        parsed = parse_duration(self.max_age)
        if parsed is None:
            raise ValidationError(duration_problem(self.max_age))
        return parsed


@dataclass
class Contract:
    """A data contract: columns in order, row bounds, key, freshness, extra columns.

    Constructing one checks it; a bad contract raises ValidationError listing every
    problem (with line numbers when it came from a file or text, see ``load_contract``).
    """

    columns: list[ColumnContract]
    min_rows: int | None = None
    max_rows: int | None = None
    key: list[str] | None = None
    freshness: Freshness | None = None
    extra_columns: str = "error"

    def __post_init__(self) -> None:
        if isinstance(self.key, str):
            self.key = [self.key]
        elif isinstance(self.key, tuple):
            self.key = list(self.key)
        problems = check_contract(self)
        if problems:
            raise ContractProblems(problems)

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]

    def column(self, name: str) -> ColumnContract:
        """The contract of column ``name``; NotFoundError naming the known columns."""
        for column in self.columns:
            if column.name == name:
                return column
        raise NotFoundError(
            f"The contract has no column {name!r}; its columns are "
            f"{', '.join(map(repr, self.column_names))}."
        )

    def to_dict(self) -> dict[str, Any]:
        """The YAML structure as a JSON-safe dict, defaults left out."""
        data: dict[str, Any] = {"columns": {c.name: c.to_dict() for c in self.columns}}
        dataset: dict[str, Any] = {}
        rows = {
            bound: value
            for bound, value in (("min", self.min_rows), ("max", self.max_rows))
            if value is not None
        }
        if rows:
            dataset["rows"] = rows
        if self.key:
            dataset["key"] = list(self.key)
        if self.freshness is not None:
            dataset["freshness"] = {
                "column": self.freshness.column,
                "max_age": self.freshness.max_age,
            }
        if self.extra_columns != "error":
            dataset["extra_columns"] = self.extra_columns
        if dataset:
            data["dataset"] = dataset
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Contract:
        """The contract a dict in the YAML structure describes (see ``load_contract``)."""
        return from_data(data, source="dict", locations={})

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def to_yaml(self) -> str:
        """YAML text in the documented layout: one line per column."""
        return dump_yaml(self.to_dict())

    @property
    def sha256(self) -> str:
        """Hash of the canonical JSON: equal for contracts that mean the same."""
        canonical = json.dumps(
            self.to_dict(), separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


def load_contract(source: Contract | str | Path | Mapping[str, Any]) -> Contract:
    """Reads a contract from a YAML or JSON file, YAML or JSON text, or a dict.

    A ``str`` is a file path when such a file exists, otherwise contract text. Files
    ending in ``.json`` (and text starting with ``{``) are read as JSON.

    Raises:
        ValidationError: listing every problem, each with its line and column (for
            dicts, the path of the field, e.g. ``columns.age.min``).
        NotFoundError: ``source`` looks like a file path and no such file exists.
    """
    if isinstance(source, Contract):
        return source
    if isinstance(source, Mapping):
        return from_data(source, source="dict", locations={})
    if isinstance(source, Path):
        return load_file(source)
    if not isinstance(source, str):
        raise ValidationError(
            f"A contract is a Contract, a file path, YAML/JSON text or a dict; got "
            f"{type(source).__name__}."
        )
    text = source.strip()
    if not text:
        raise ValidationError(
            "The contract text is empty; write at least 'columns:' with one column, or pass "
            "the path of a contract file."
        )
    if "\n" not in text and not text.startswith("{"):
        path = Path(text).expanduser()
        if path.is_file():
            return load_file(path)
        if ":" not in text or path.suffix.lower() in (".yaml", ".yml", ".json"):
            raise NotFoundError(
                f"No contract file at {text!r}. Pass the path of an existing .yaml or .json "
                "file, contract text, or a dict."
            )
    return load_text(source, "contract text", as_json=text.startswith("{"))


def infer_contract(data: pd.DataFrame | pa.Table, *, categories_max: int = 50) -> Contract:
    """A contract that ``data`` satisfies, for a person to review and tighten.

    Types come from the data as stored (a text column of digits stays ``string``);
    ``nullable`` from whether values are missing; ``min``/``max`` are the observed
    range of numbers, datetimes and dates; a text column with at most
    ``categories_max`` distinct values, each seen twice on average, becomes a
    ``category`` listing them sorted; ``unique`` marks int and text columns whose
    values are all present and distinct; ``key`` is the first such column named like
    an identifier (``id``, ``key``, ``*_id``, ``*Id``).
    """
    return infer_from_data(data, categories_max)
