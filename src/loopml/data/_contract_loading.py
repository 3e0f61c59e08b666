"""Reading a contract from YAML or JSON text with the line of every field, and writing YAML.

Internal: use ``loopml.data.contract`` (``load_contract``, ``Contract.to_yaml``), whose
docstring describes the format. YAML is read with YAML 1.2 scalars and composed node by
node so that each problem can name its line and column.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.data._contract_checks import ContractProblems, FieldPath, Problem, plain_text
from loopml.errors import NotFoundError, ValidationError

if TYPE_CHECKING:
    from loopml.data.contract import ColumnContract, Contract

__all__ = ["dump_yaml", "from_data", "load_file", "load_text"]

_COLUMN_FIELDS = ("type", "nullable", "min", "max", "categories", "regex", "unique")
_DATASET_FIELDS = ("rows", "key", "freshness", "extra_columns")


def load_file(path: Path) -> Contract:
    """The contract in the file at ``path`` (JSON when it ends in ``.json``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFoundError(f"No contract file at {str(path)!r}; check the path.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValidationError(f"Cannot read the contract file {path}: {error}.") from None
    return load_text(text, str(path), as_json=path.suffix.lower() == ".json")


def load_text(text: str, source: str, *, as_json: bool) -> Contract:
    """The contract in YAML or JSON ``text``; ``source`` names it in messages."""
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
        raise ContractProblems(problems, source, locations)
    return from_data(data, source, locations)


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


def dump_yaml(data: dict[str, Any]) -> str:
    """A contract's ``to_dict()`` as YAML in the documented layout: one line per column."""
    import yaml

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


def _compose(
    text: str, source: str = "contract text"
) -> tuple[Any, dict[FieldPath, tuple[int, int]], list[Problem]]:
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
    locations: dict[FieldPath, tuple[int, int]] = {}
    problems: list[Problem] = []
    if node is None:
        return None, locations, problems
    return _walk(node, (), locations, problems, 0), locations, problems


def _walk(
    node: Any,
    path: FieldPath,
    locations: dict[FieldPath, tuple[int, int]],
    problems: list[Problem],
    depth: int,
) -> Any:
    import yaml

    here = (node.start_mark.line + 1, node.start_mark.column + 1)
    if depth > 20:
        problems.append(Problem(path, "nested too deeply (a recursive alias?)", here))
        return None
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key_at = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(Problem(path, "a key must be a plain name", key_at))
                continue
            key = key_node.value
            if key in result:
                first = locations[(*path, key)]
                problems.append(
                    Problem(
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
        problems.append(Problem(path, f"{value!r} is not a number", here))
        return None
    problems.append(Problem(path, f"the YAML tag {node.tag} is not supported; remove it", here))
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


def from_data(data: Any, source: str, locations: Mapping[FieldPath, tuple[int, int]]) -> Contract:
    """The contract ``data`` (the YAML structure as plain data) describes; raises
    ContractProblems listing every problem, placed by ``locations`` when known."""
    from loopml.data.contract import Contract  # it imports this module

    problems: list[Problem] = []
    kwargs, complete = _parse(data, problems)
    if kwargs is not None and complete:  # also check what parsed, to report everything at once
        try:
            contract = Contract(**kwargs)
        except ContractProblems as error:
            problems += error.problems
        else:
            if not problems:
                return contract
    raise ContractProblems(problems, source, locations)


def _parse(data: Any, problems: list[Problem]) -> tuple[dict[str, Any] | None, bool]:
    """Checks the shape of ``data`` (fields, their kinds): Contract kwargs, and whether
    every column could be read (else checks naming columns would mislead)."""
    from loopml.data.contract import Freshness  # it imports this module

    if not isinstance(data, Mapping):
        problems.append(
            Problem((), "a contract is a mapping with 'columns' (and optionally 'dataset')")
        )
        return None, False
    _unknown(data, ("columns", "dataset"), (), problems)
    raw_columns = data.get("columns")
    columns: list[ColumnContract] = []
    if not isinstance(raw_columns, Mapping) or not raw_columns:
        problems.append(
            Problem(
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
        problems.append(Problem(("dataset",), "'dataset' must be a mapping of dataset fields"))
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
                Problem(("dataset", "rows"), "'rows' must be a mapping like {min: 1, max: 1000}")
            )
    key = dataset.get("key")
    if key is not None:
        if isinstance(key, str):
            key = [key]
        if isinstance(key, list) and all(isinstance(k, (str, int)) for k in key):
            kwargs["key"] = [str(k) for k in key]
        else:
            problems.append(Problem(("dataset", "key"), "'key' must be a list of column names"))
    freshness = dataset.get("freshness")
    if freshness is not None:
        path: FieldPath = ("dataset", "freshness")
        if isinstance(freshness, Mapping) and "column" in freshness and "max_age" in freshness:
            _unknown(freshness, ("column", "max_age"), path, problems)
            kwargs["freshness"] = Freshness(
                column=plain_text(freshness["column"]), max_age=str(freshness["max_age"])
            )
        else:
            problems.append(
                Problem(path, "'freshness' must be a mapping like {column: signup, max_age: 7d}")
            )
    if "extra_columns" in dataset:
        kwargs["extra_columns"] = dataset["extra_columns"]
    return kwargs, complete


def _parse_column(
    name: str, spec: Any, path: FieldPath, problems: list[Problem]
) -> ColumnContract | None:
    from loopml.data.contract import COLUMN_TYPES, ColumnContract  # it imports this module

    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, Mapping):
        problems.append(
            Problem(path, f"column {name!r} must be a type or a mapping like {{type: int}}")
        )
        return None
    _unknown(spec, _COLUMN_FIELDS, path, problems)
    if "type" not in spec:
        problems.append(
            Problem(
                path,
                f"column {name!r} has no type; add 'type: ' with one of {', '.join(COLUMN_TYPES)}",
            )
        )
        return None
    fields = {f: spec[f] for f in _COLUMN_FIELDS if f in spec}
    categories = fields.get("categories")
    if categories is not None and not isinstance(categories, list):
        problems.append(Problem((*path, "categories"), "'categories' must be a list of values"))
        return None
    return ColumnContract(name=name, **fields)


def _unknown(
    data: Mapping[str, Any], allowed: tuple[str, ...], path: FieldPath, problems: list[Problem]
) -> None:
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append(
                Problem(
                    (*path, key),
                    f"unknown field {key!r}; {hint}the fields here are {', '.join(allowed)}",
                )
            )
