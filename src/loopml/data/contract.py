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

The module is one file because its loader, line tracking and checks share one set of
field names; the inference of a contract from data is at the end.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
_COLUMN_FIELDS = ("type", "nullable", "min", "max", "categories", "regex", "unique")
_DATASET_FIELDS = ("rows", "key", "freshness", "extra_columns")
_BOUNDED = ("int", "float", "datetime", "date")
_TEXT = ("string", "category")
_DURATION_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", re.IGNORECASE)
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

Path_ = tuple[str | int, ...]


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
        self.min = _plain_bound(self.min)
        self.max = _plain_bound(self.max)
        if isinstance(self.categories, (list, tuple)):
            self.categories = [_plain_text(value) for value in self.categories]

    def to_dict(self) -> dict[str, Any]:
        """The fields that differ from their defaults, ``type`` first (no ``name``)."""
        spec: dict[str, Any] = {"type": self.type}
        if not self.nullable:
            spec["nullable"] = False
        for bound in ("min", "max"):
            value = getattr(self, bound)
            if value is not None:
                spec[bound] = _canonical_number(value)
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
        parsed = _parse_duration(self.max_age)
        if parsed is None:
            raise ValidationError(_duration_problem(self.max_age))
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
        problems = _problems(self)
        if problems:
            raise _ContractProblems(problems)

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
        return _from_data(data, source="dict", locations={})

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def to_yaml(self) -> str:
        """YAML text in the documented layout: one line per column."""
        import yaml

        data = self.to_dict()
        data["columns"] = {name: _Flow(spec) for name, spec in data["columns"].items()}
        if "dataset" in data:
            data["dataset"] = {
                field_: _Flow(value) if isinstance(value, dict) else value
                for field_, value in data["dataset"].items()
            }
            if "key" in data["dataset"]:
                data["dataset"]["key"] = _FlowList(data["dataset"]["key"])
        text: str = yaml.dump(
            data,
            Dumper=_dumper(),
            sort_keys=False,
            default_flow_style=False,
            allow_unicode=True,
            width=2**31,
        )
        return text

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
        return _from_data(source, source="dict", locations={})
    if isinstance(source, Path):
        return _load_file(source)
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
            return _load_file(path)
        if ":" not in text or path.suffix.lower() in (".yaml", ".yml", ".json"):
            raise NotFoundError(
                f"No contract file at {text!r}. Pass the path of an existing .yaml or .json "
                "file, contract text, or a dict."
            )
    return _load_text(source, "contract text", as_json=text.startswith("{"))


def _load_file(path: Path) -> Contract:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFoundError(f"No contract file at {str(path)!r}; check the path.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValidationError(f"Cannot read the contract file {path}: {error}.") from None
    return _load_text(text, str(path), as_json=path.suffix.lower() == ".json")


def _load_text(text: str, source: str, *, as_json: bool) -> Contract:
    if not as_json:
        data, locations, problems = _compose(text, source)
    else:
        duplicate = None
        try:
            data = json.loads(text, object_pairs_hook=_no_duplicate_keys)
        except json.JSONDecodeError as error:
            raise ValidationError(
                f"Invalid data contract in {source}: line {error.lineno}, column "
                f"{error.colno}: {error.msg}; fix the JSON syntax there."
            ) from None
        except _DuplicateKey as error:
            duplicate = error.key
        try:  # JSON is nearly always YAML too: borrow its line numbers
            yaml_data, locations, problems = _compose(text, source)
        except ValidationError:
            if duplicate is not None:
                raise ValidationError(
                    f"Invalid data contract in {source}: the key {duplicate!r} appears twice "
                    "in one object; keep one."
                ) from None
            locations, problems = {}, []
        if duplicate is not None:
            data = yaml_data
    if problems:
        raise _ContractProblems(problems, source, locations)
    return _from_data(data, source, locations)


# -- problems and where they are ------------------------------------------------------


@dataclass
class _Problem:
    path: Path_
    message: str
    line: tuple[int, int] | None = None  # explicit position, for problems with no path


class _ContractProblems(ValidationError):
    """Every problem found in one contract (a ValidationError)."""

    def __init__(
        self,
        problems: list[_Problem],
        source: str | None = None,
        locations: Mapping[Path_, tuple[int, int]] | None = None,
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

    def located(self, source: str, locations: Mapping[Path_, tuple[int, int]]) -> _ContractProblems:
        return _ContractProblems(self.problems, source, locations)


def _position(
    problem: _Problem, locations: Mapping[Path_, tuple[int, int]]
) -> tuple[int, int] | None:
    """Where a problem is: its own mark, else its path's, else its nearest parent's."""
    position = problem.line
    path = problem.path
    while position is None and path:
        position = locations.get(path)
        path = path[:-1]
    return position


def _describe(problem: _Problem, position: tuple[int, int] | None) -> str:
    dotted = ".".join(str(part) for part in problem.path)
    if position is not None:
        inside = f" ({dotted})" if dotted else ""
        return f"line {position[0]}, column {position[1]}{inside}: {problem.message}"
    return f"{dotted or 'contract'}: {problem.message}"


# -- YAML with line numbers -----------------------------------------------------------

_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_NULL = "tag:yaml.org,2002:null"
_STR = "tag:yaml.org,2002:str"
_YAML12_RESOLVERS: list[tuple[str, re.Pattern[str], str]] = [
    (_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), "tTfF"),
    (_INT, re.compile(r"^[-+]?[0-9]+$"), "-+0123456789"),
    (
        _FLOAT,
        re.compile(
            r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
        "-+.0123456789",
    ),
    (_NULL, re.compile(r"^(?:~|null|Null|NULL|)$"), "~nN"),
]


@functools.cache
def _loader() -> Any:
    """A SafeLoader whose plain scalars follow YAML 1.2 (``yes`` and dates stay text)."""
    import yaml

    class Loader(yaml.SafeLoader):
        yaml_implicit_resolvers: dict[str | None, list[tuple[str, re.Pattern[str]]]] = {}

    for tag, pattern, first in _YAML12_RESOLVERS:
        Loader.add_implicit_resolver(tag, pattern, list(first))
    Loader.add_implicit_resolver(_NULL, _YAML12_RESOLVERS[3][1], [""])
    return Loader


@functools.cache
def _dumper() -> Any:
    """A SafeDumper that quotes anything YAML 1.1 or 1.2 would not read back as text."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    for tag, pattern, first in _YAML12_RESOLVERS:
        Dumper.add_implicit_resolver(tag, pattern, list(first))
    Dumper.add_representer(
        _Flow, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v, flow_style=True)
    )
    Dumper.add_representer(
        _FlowList, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True)
    )
    return Dumper


class _Flow(dict[str, Any]):
    """A mapping written on one line."""


class _FlowList(list[Any]):
    """A list written on one line."""


def _compose(
    text: str, source: str = "contract text"
) -> tuple[Any, dict[Path_, tuple[int, int]], list[_Problem]]:
    """YAML text to plain data, the (line, column) of every key and item, and problems."""
    import yaml

    try:
        node = yaml.compose(text, Loader=_loader())
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        what = error.problem or error.context or "invalid YAML"
        context = ""
        if error.context and error.problem:
            started = error.context_mark
            context = f" ({error.context}"
            if started is not None and mark is not None and started.line != mark.line:
                context += f" started on line {started.line + 1}"
            context += ")"
        position = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ValidationError(
            f"Invalid data contract in {source}: {position}YAML syntax error, {what}{context}; "
            "fix the YAML there (check indentation, colons and brackets)."
        ) from None
    except yaml.YAMLError as error:
        raise ValidationError(f"Invalid data contract in {source}: {error}") from None
    locations: dict[Path_, tuple[int, int]] = {}
    problems: list[_Problem] = []
    if node is None:
        return None, locations, problems
    return _walk(node, (), locations, problems, 0), locations, problems


def _walk(
    node: Any,
    path: Path_,
    locations: dict[Path_, tuple[int, int]],
    problems: list[_Problem],
    depth: int,
) -> Any:
    import yaml

    here = (node.start_mark.line + 1, node.start_mark.column + 1)
    if depth > 20:
        problems.append(_Problem(path, "nested too deeply (a recursive alias?)", here))
        return None
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key_at = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(_Problem(path, "a key must be a plain name", key_at))
                continue
            key = key_node.value
            if key in result:
                first = locations[(*path, key)]
                problems.append(
                    _Problem(
                        (*path, key),
                        f"{key!r} appears twice (first on line {first[0]}); keep one",
                        key_at,
                    )
                )
                continue
            locations[(*path, key)] = key_at
            result[key] = _walk(value_node, (*path, key), locations, problems, depth + 1)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            locations[(*path, index)] = (item.start_mark.line + 1, item.start_mark.column + 1)
            items.append(_walk(item, (*path, index), locations, problems, depth + 1))
        return items
    value: str = node.value
    if node.tag == _STR:
        return value
    if node.tag == _NULL:
        return None
    if node.tag == _BOOL:
        return value.lower() == "true"
    try:
        if node.tag == _INT:
            return int(value)
        if node.tag == _FLOAT:
            return float(value.lower().replace(".inf", "inf").replace(".nan", "nan"))
    except ValueError:
        problems.append(_Problem(path, f"{value!r} is not a number", here))
        return None
    problems.append(_Problem(path, f"the YAML tag {node.tag} is not supported; remove it", here))
    return None


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


# -- from plain data to a Contract ------------------------------------------------------


def _from_data(data: Any, source: str, locations: Mapping[Path_, tuple[int, int]]) -> Contract:
    problems: list[_Problem] = []
    kwargs, complete = _parse(data, problems)
    if kwargs is not None and complete:  # also check what parsed, to report everything at once
        try:
            contract = Contract(**kwargs)
        except _ContractProblems as error:
            problems += error.problems
        else:
            if not problems:
                return contract
    raise _ContractProblems(problems, source, locations)


def _parse(data: Any, problems: list[_Problem]) -> tuple[dict[str, Any] | None, bool]:
    """Checks the shape of ``data`` (fields, their kinds): Contract kwargs, and whether
    every column could be read (else checks naming columns would mislead)."""
    if not isinstance(data, Mapping):
        problems.append(
            _Problem((), "a contract is a mapping with 'columns' (and optionally 'dataset')")
        )
        return None, False
    _unknown(data, ("columns", "dataset"), (), problems)
    raw_columns = data.get("columns")
    columns: list[ColumnContract] = []
    if not isinstance(raw_columns, Mapping) or not raw_columns:
        problems.append(
            _Problem(
                ("columns",) if "columns" in data else (),
                "'columns' must map each column name to its type or fields, e.g. "
                "'columns: {age: {type: int}}'",
            )
        )
    else:
        for name, spec in raw_columns.items():
            column = _parse_column(str(name), spec, ("columns", str(name)), problems)
            if column is not None:
                columns.append(column)
    complete = isinstance(raw_columns, Mapping) and len(columns) == len(raw_columns)
    kwargs: dict[str, Any] = {"columns": columns}
    dataset = data.get("dataset")
    if dataset is None:
        return kwargs, complete
    if not isinstance(dataset, Mapping):
        problems.append(_Problem(("dataset",), "'dataset' must be a mapping of dataset fields"))
        return kwargs, complete
    _unknown(dataset, _DATASET_FIELDS, ("dataset",), problems)
    rows = dataset.get("rows")
    if rows is not None:
        if isinstance(rows, Mapping):
            _unknown(rows, ("min", "max"), ("dataset", "rows"), problems)
            kwargs["min_rows"] = rows.get("min")
            kwargs["max_rows"] = rows.get("max")
        else:
            problems.append(
                _Problem(("dataset", "rows"), "'rows' must be a mapping like {min: 1, max: 1000}")
            )
    key = dataset.get("key")
    if key is not None:
        if isinstance(key, str):
            key = [key]
        if isinstance(key, list) and all(isinstance(k, (str, int)) for k in key):
            kwargs["key"] = [str(k) for k in key]
        else:
            problems.append(_Problem(("dataset", "key"), "'key' must be a list of column names"))
    freshness = dataset.get("freshness")
    if freshness is not None:
        path: Path_ = ("dataset", "freshness")
        if isinstance(freshness, Mapping) and "column" in freshness and "max_age" in freshness:
            _unknown(freshness, ("column", "max_age"), path, problems)
            kwargs["freshness"] = Freshness(
                column=_plain_text(freshness["column"]), max_age=str(freshness["max_age"])
            )
        else:
            problems.append(
                _Problem(path, "'freshness' must be a mapping like {column: signup, max_age: 7d}")
            )
    if "extra_columns" in dataset:
        kwargs["extra_columns"] = dataset["extra_columns"]
    return kwargs, complete


def _parse_column(
    name: str, spec: Any, path: Path_, problems: list[_Problem]
) -> ColumnContract | None:
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, Mapping):
        problems.append(
            _Problem(path, f"column {name!r} must be a type or a mapping like {{type: int}}")
        )
        return None
    _unknown(spec, _COLUMN_FIELDS, path, problems)
    if "type" not in spec:
        problems.append(
            _Problem(
                path,
                f"column {name!r} has no type; add 'type: ' with one of {', '.join(COLUMN_TYPES)}",
            )
        )
        return None
    fields = {f: spec[f] for f in _COLUMN_FIELDS if f in spec}
    categories = fields.get("categories")
    if categories is not None and not isinstance(categories, list):
        problems.append(_Problem((*path, "categories"), "'categories' must be a list of values"))
        return None
    return ColumnContract(name=name, **fields)


def _unknown(
    data: Mapping[str, Any], allowed: tuple[str, ...], path: Path_, problems: list[_Problem]
) -> None:
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append(
                _Problem(
                    (*path, key),
                    f"unknown field {key!r}; {hint}the fields here are {', '.join(allowed)}",
                )
            )


# -- the checks of a contract ---------------------------------------------------------


def _problems(contract: Contract) -> list[_Problem]:
    problems: list[_Problem] = []

    def add(path: Path_, message: str) -> None:
        problems.append(_Problem(path, message))

    if not isinstance(contract.columns, list) or not contract.columns:
        add(("columns",), "a contract needs at least one column")
        return problems
    names: set[str] = set()
    for column in contract.columns:
        if not isinstance(column, ColumnContract):
            add(("columns",), f"{column!r} is not a ColumnContract")
            continue
        path: Path_ = ("columns", column.name)
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
        if _parse_duration(str(freshness.max_age)) is None:
            add((*path, "max_age"), _duration_problem(freshness.max_age))
    if contract.extra_columns not in EXTRA_COLUMNS:
        add(
            ("dataset", "extra_columns"),
            f"extra_columns must be one of "
            f"{', '.join(EXTRA_COLUMNS)}, got {contract.extra_columns!r}",
        )
    return problems


def _column_problems(column: ColumnContract, path: Path_) -> list[_Problem]:
    problems: list[_Problem] = []

    def add(path: Path_, message: str) -> None:
        problems.append(_Problem(path, message))

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
        if column.type not in _BOUNDED:
            add(
                (*path, bound),
                f"{bound} applies to int, float, datetime and date "
                f"columns, not {column.type}; remove it or use categories/regex",
            )
            continue
        parsed = _parse_bound(column.type, value)
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


def _duration_problem(text: Any) -> str:
    return (
        f"max_age {text!r} is not a positive duration; write a number and a unit (s, m, h, "
        "d, w), e.g. 30m, 36h, 7d or 1d12h"
    )


def _parse_duration(text: str) -> timedelta | None:
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


def _parse_bound(kind: str, value: Any) -> float | datetime | date | None:
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


def _plain_bound(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalar
        return value.item()
    return value


def _plain_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _canonical_number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# -- inference ------------------------------------------------------------------------


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
    import pyarrow as pa
    import pyarrow.compute as pc

    from loopml.data.validation import _arrow_columns

    names, arrays = _arrow_columns(data)
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
        if present and kind in _BOUNDED:
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
        if column.unique and nulls == 0 and key is None and _looks_like_id(name):
            key = [name]
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
