"""The search-space declaration of ``ws.tune``: checked once, then sampled per Optuna trial.

Not public: :func:`loopml.training.search.tune` is the interface. The format, the same in
Python and YAML (one entry per param, in any order)::

    C:        {type: float, low: 0.001, high: 100, log: true}   # log-scaled float
    max_iter: {type: int, low: 100, high: 500, step: 100}       # int (step optional)
    penalty:  [l1, l2, elasticnet]                              # categorical (a list)
    solver:   {type: categorical, choices: [saga]}              # the same, spelled out
    l1_ratio: {type: float, low: 0, high: 1, when: {penalty: elasticnet}}
    tol:      0.001                                             # fixed: not searched

``when`` makes a param conditional: it is sampled (and passed to the model) only when
each named param has that value, or one of the values of a list. Conditions may chain
(a condition on a conditional param); cycles are refused.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from loopml.errors import ValidationError

__all__ = ["Param", "SearchSpace", "parse_space"]

_TYPES = ("float", "int", "categorical")
_KEYS = {
    "float": ("type", "low", "high", "log", "step", "when"),
    "int": ("type", "low", "high", "log", "step", "when"),
    "categorical": ("type", "choices", "when"),
}
_EXAMPLE = "e.g. {'C': {'type': 'float', 'low': 0.001, 'high': 100, 'log': True}}"


@dataclass(frozen=True)
class Param:
    """One searched param: its kind, its range or choices, and when it applies."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    when: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    def suggest(self, trial: Any) -> Any:
        """Asks the Optuna trial for this param's value."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            step = int(self.step) if self.step is not None else 1
            return trial.suggest_int(
                self.name, int(self.low or 0), int(self.high or 0), step=step, log=self.log
            )
        return trial.suggest_float(
            self.name, float(self.low or 0), float(self.high or 0), step=self.step, log=self.log
        )


@dataclass(frozen=True)
class SearchSpace:
    """The checked space: searched params in sampling order, and fixed values."""

    params: tuple[Param, ...]
    fixed: dict[str, Any]
    declared: dict[str, Any]  # as given, for logging and the default study name

    def sample(self, trial: Any) -> dict[str, Any]:
        """The params of one trial: fixed values, then each param whose condition holds."""
        chosen: dict[str, Any] = dict(self.fixed)
        for param in self.params:
            if all(chosen.get(name, _MISSING) in values for name, values in param.when.items()):
                chosen[param.name] = param.suggest(trial)
        return chosen

    @property
    def names(self) -> list[str]:
        return [*self.fixed, *(param.name for param in self.params)]


_MISSING = object()


def parse_space(space: Any) -> SearchSpace:
    """Checks a declared space; every problem names the param and the fix."""
    if not isinstance(space, Mapping):
        raise ValidationError(
            f"The search space must be a mapping of param names to ranges, {_EXAMPLE}; got "
            f"{type(space).__name__}."
        )
    if not space:
        raise ValidationError(f"The search space is empty; declare at least one param, {_EXAMPLE}.")
    params: dict[str, Param] = {}
    fixed: dict[str, Any] = {}
    for name, spec in space.items():
        if not isinstance(name, str) or not name.strip():
            raise ValidationError(f"Search space param names must be text, got {name!r}.")
        if isinstance(spec, (list, tuple)):
            params[name] = _categorical(name, spec, {})
        elif isinstance(spec, Mapping):
            params[name] = _declared(name, spec)
        elif spec is None or isinstance(spec, (bool, int, float, str)):
            fixed[name] = spec
        else:
            raise ValidationError(
                f"Search space param {name!r}: expected a mapping with type:, a list of "
                f"choices or a fixed value, got {type(spec).__name__} {spec!r}."
            )
    if not params:
        raise ValidationError(
            f"The search space fixes every param ({', '.join(fixed)}) and searches none; "
            f"give at least one a range or choices, {_EXAMPLE}."
        )
    _check_conditions(params, fixed)
    return SearchSpace(tuple(_ordered(params)), fixed, dict(space))


def _declared(name: str, spec: Mapping[str, Any]) -> Param:
    kind = spec.get("type")
    if kind is None:
        kind = "categorical" if "choices" in spec else None
    if kind not in _TYPES:
        raise ValidationError(
            f"Search space param {name!r}: type must be one of {', '.join(_TYPES)}, got {kind!r}."
        )
    unknown = [key for key in spec if key not in _KEYS[kind]]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), _KEYS[kind], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValidationError(
            f"Search space param {name!r}: unknown key(s) {', '.join(map(repr, unknown))}"
            f"{hint}; a {kind} param takes {', '.join(_KEYS[kind])}."
        )
    when = _when(name, spec.get("when"))
    if kind == "categorical":
        return _categorical(name, spec.get("choices"), when)
    low, high = spec.get("low"), spec.get("high")
    for key, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValidationError(
                f"Search space param {name!r}: {key} must be a number, got {value!r}."
            )
        if kind == "int" and not float(value).is_integer():
            raise ValidationError(
                f"Search space param {name!r}: an int param needs whole-number bounds, got "
                f"{key}={value!r}; use type: float for fractions."
            )
        if not math.isfinite(value):
            raise ValidationError(f"Search space param {name!r}: {key} must be finite.")
    assert isinstance(low, (int, float)) and isinstance(high, (int, float))
    if low > high:
        raise ValidationError(
            f"Search space param {name!r}: low ({low}) is above high ({high}); swap them."
        )
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ValidationError(f"Search space param {name!r}: log must be true or false.")
    if log and low <= 0:
        raise ValidationError(
            f"Search space param {name!r}: a log-scaled range needs low > 0, got low={low}."
        )
    step = spec.get("step")
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0:
            raise ValidationError(
                f"Search space param {name!r}: step must be a positive number, got {step!r}."
            )
        if log:
            raise ValidationError(
                f"Search space param {name!r}: step and log cannot be combined; drop one."
            )
        if kind == "int" and not float(step).is_integer():
            raise ValidationError(
                f"Search space param {name!r}: an int param needs a whole-number step."
            )
    return Param(name, kind, low, high, log, step, (), when)


def _categorical(name: str, choices: Any, when: dict[str, tuple[Any, ...]]) -> Param:
    if not isinstance(choices, (list, tuple)) or not choices:
        raise ValidationError(
            f"Search space param {name!r}: a categorical param needs a non-empty list of "
            f"choices, got {choices!r}."
        )
    for choice in choices:
        if choice is not None and not isinstance(choice, (bool, int, float, str)):
            raise ValidationError(
                f"Search space param {name!r}: choices must be text, numbers, booleans or "
                f"null, got {type(choice).__name__} {choice!r}."
            )
    if len({(type(c), c) for c in choices}) != len(choices):
        raise ValidationError(f"Search space param {name!r}: choices repeat a value.")
    return Param(name, "categorical", choices=tuple(choices), when=when)


def _when(name: str, when: Any) -> dict[str, tuple[Any, ...]]:
    if when is None:
        return {}
    if not isinstance(when, Mapping) or not when:
        raise ValidationError(
            f"Search space param {name!r}: when must map other params to a value or a list "
            f"of values, e.g. when: {{penalty: elasticnet}}; got {when!r}."
        )
    return {
        str(other): tuple(value) if isinstance(value, (list, tuple)) else (value,)
        for other, value in when.items()
    }


def _check_conditions(params: dict[str, Param], fixed: dict[str, Any]) -> None:
    for param in params.values():
        for other, values in param.when.items():
            if other == param.name:
                raise ValidationError(
                    f"Search space param {param.name!r}: when cannot refer to the param itself."
                )
            if other in fixed:
                continue
            if other not in params:
                known = [*params, *fixed]
                close = difflib.get_close_matches(other, known, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ValidationError(
                    f"Search space param {param.name!r}: when refers to {other!r}, which is "
                    f"not in the space.{hint}"
                )
            target = params[other]
            if target.kind == "categorical":
                impossible = [value for value in values if value not in target.choices]
                if impossible:
                    raise ValidationError(
                        f"Search space param {param.name!r}: when {other} is "
                        f"{impossible[0]!r}, but {other!r} only takes "
                        f"{', '.join(map(repr, target.choices))}."
                    )


def _ordered(params: dict[str, Param]) -> list[Param]:
    """Params with each one after the params its condition reads (declaration order kept)."""
    placed: list[Param] = []
    done: set[str] = set()
    visiting: set[str] = set()

    def place(param: Param) -> None:
        if param.name in done:
            return
        if param.name in visiting:
            raise ValidationError(
                f"Search space param {param.name!r}: its when conditions form a cycle; a "
                "param cannot depend, directly or not, on itself."
            )
        visiting.add(param.name)
        for other in param.when:
            if other in params:
                place(params[other])
        visiting.discard(param.name)
        done.add(param.name)
        placed.append(param)

    for param in params.values():
        place(param)
    return placed
