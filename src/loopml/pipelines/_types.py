"""Type hints along the DAG's edges: what a step returns against what the next declares.

Not public: :mod:`loopml.pipelines.dag` checks every edge when a pipeline is traced, and
the driver checks the values themselves when a producer has no return hint.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loopml.errors import ValidationError

if TYPE_CHECKING:
    from loopml.pipelines.dag import Node

__all__ = ["check_types", "input_type_error"]


def _hints(function: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function)
    except Exception:  # unresolvable string annotations: nothing to check
        return {}


def check_types(producer: Node, consumer: Node, argument: str) -> None:
    produced = _hints(producer.step.function).get("return")
    expected = _hints(consumer.step.function).get(argument)
    if produced is None or expected is None or _compatible(produced, expected):
        return
    raise ValidationError(
        f"Step {consumer.name!r} declares {argument}: {_type_name(expected)}, but it is "
        f"fed by step {producer.name!r}, which returns {_type_name(produced)}. Change one "
        "of the type hints, or convert the value in a step between them."
    )


def input_type_error(producer: str, consumer: Node, argument: str, value: Any) -> str | None:
    """Why ``value`` (the output of ``producer``) cannot be ``argument`` of ``consumer``
    as its type hint declares, or None when it can (or nothing is declared)."""
    expected = _hints(consumer.step.function).get(argument)
    if expected is None or _compatible(type(value), expected):
        return None
    return (
        f"step {consumer.name!r} declares {argument}: {_type_name(expected)}, but step "
        f"{producer!r} returned {type(value).__name__}; change one of the type hints, or "
        "convert the value in a step between them"
    )


def _members(kind: Any) -> list[Any]:
    origin = typing.get_origin(kind)
    if origin is typing.Union or origin is types.UnionType:
        return list(typing.get_args(kind))
    return [kind]


def _compatible(produced: Any, expected: Any) -> bool:
    if expected is Any or produced is Any:
        return True
    wanted = [typing.get_origin(e) or e for e in _members(expected)]
    for member in _members(produced):
        kind = typing.get_origin(member) or member
        if member is type(None) and type(None) in wanted:
            continue
        if not isinstance(kind, type):
            continue  # TypeVars, Literals and the like: not checked
        if not any(_subtype(kind, want) for want in wanted):
            return False
    return True


def _subtype(kind: type, want: Any) -> bool:
    if want is Any or not isinstance(want, type):
        return True  # a TypeVar, Literal, Protocol-like form: not checked
    return issubclass(kind, want) or (want is float and kind is int)


def _type_name(kind: Any) -> str:
    return kind.__name__ if isinstance(kind, type) and not typing.get_args(kind) else str(kind)
