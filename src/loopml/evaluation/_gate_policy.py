"""Reading a gate policy: YAML (a path or text) or the same mapping in Python (see
:mod:`loopml.evaluation.gate` for the format); its checks are parsed by
:mod:`loopml.evaluation._gate_expression`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopml._yaml import read_yaml
from loopml.errors import NotFoundError, ValidationError
from loopml.evaluation._gate_expression import EXAMPLE, Check, Reference, metric_name, parse_check
from loopml.evaluation._metrics import LOWER_IS_BETTER

__all__ = ["GatePolicy", "load_policy"]

_POLICY_KEYS = {
    "checks": "a list of check expressions (required)",
    "data": "the dataset to evaluate on, e.g. churn@4",
    "target": "the column of true labels",
    "slices": "columns to slice by (for worst_slice.*)",
    "sensitive": "a column for fairness.*",
    "bootstrap": "resamples for the metric intervals (default 200)",
    "resamples": "paired bootstrap resamples for `significantly` (default 1000)",
    "alpha": "significance level of `significantly` (default 0.05)",
    "latency_rows": "rows predicted one at a time for latency.* (default 200)",
    "seed": "seed of every resample (default 0)",
    "name": "a name for the gate",
}


@dataclass
class GatePolicy:
    """A gate policy read and checked; see :mod:`loopml.evaluation.gate` for the format."""

    checks: list[Check]
    data: Any = None
    target: str | None = None
    slices: list[str] = field(default_factory=list)
    sensitive: str | None = None
    bootstrap: int = 200
    resamples: int = 1000
    alpha: float = 0.05
    latency_rows: int = 200
    seed: int = 0
    name: str | None = None
    source: dict[str, Any] = field(default_factory=dict)  # the policy as given, for storing

    def references(self) -> list[Reference]:
        return [ref for check in self.checks for ref in check.references()]

    def needs(self, side: str, kind: str) -> bool:
        return any(r.side == side and r.kind == kind for r in self.references())


# -- loading -----------------------------------------------------------------------------
def load_policy(policy: Any) -> GatePolicy:
    """A policy from a dict, a YAML path (``str`` or ``Path``) or YAML text."""
    if isinstance(policy, GatePolicy):
        return policy
    one_line = isinstance(policy, str) and "\n" not in policy
    if isinstance(policy, Path) or (
        one_line and (policy.strip().endswith((".yaml", ".yml")) or _is_file(policy))
    ):
        path = Path(policy)
        if not path.is_file():
            raise NotFoundError(
                f"No gate policy file {str(path)!r}. Pass the path of a YAML file, YAML "
                "text or a dict with a `checks:` list."
            )
        mapping = _parse_yaml(path.read_text(encoding="utf-8"), str(path))
    elif isinstance(policy, str):
        mapping = _parse_yaml(policy, "The gate policy")
    elif isinstance(policy, Mapping):
        mapping = dict(policy)
    else:
        raise ValidationError(
            f"A gate policy is a dict, a YAML file path or YAML text, got {type(policy).__name__}."
        )
    return _from_mapping(mapping)


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # a name too long for a path, a NUL character
        return False


def _parse_yaml(text: str, where: str) -> dict[str, Any]:
    example = "checks:\n  - roc_auc >= 0.8"
    hint = f"A policy is a mapping with a `checks:` list, for example:\n{example}"
    loaded = read_yaml(text, where, hint)
    if not isinstance(loaded, dict):
        raise ValidationError(
            f"{where} must be a YAML mapping with a `checks:` list, got "
            f"{type(loaded).__name__}. For example:\n{example}"
        )
    return loaded


def _from_mapping(mapping: dict[str, Any]) -> GatePolicy:
    unknown = sorted(str(k) for k in mapping if k not in _POLICY_KEYS)
    if unknown:
        known = "; ".join(f"{k}: {v}" for k, v in _POLICY_KEYS.items())
        raise ValidationError(f"Unknown gate policy key(s) {unknown}. Known keys: {known}.")
    raw_checks = mapping.get("checks")
    if not isinstance(raw_checks, list) or not raw_checks:
        raise ValidationError(
            "A gate policy needs `checks:`, a non-empty list of expressions such as "
            f"'roc_auc >= 0.8' or '{EXAMPLE}'."
        )
    alpha = _number(mapping, "alpha", 0.05, 0.0, 1.0)
    checks = [_check_entry(entry, i + 1) for i, entry in enumerate(raw_checks)]
    slices = mapping.get("slices") or []
    if isinstance(slices, str):
        slices = [slices]
    if not isinstance(slices, list) or not all(isinstance(s, str) for s in slices):
        raise ValidationError(f"slices must be a column name or a list of them, got {slices!r}.")
    policy = GatePolicy(
        checks=checks,
        data=mapping.get("data"),
        target=_text(mapping, "target"),
        slices=list(slices),
        sensitive=_text(mapping, "sensitive"),
        bootstrap=int(_number(mapping, "bootstrap", 200, 0, math.inf)),
        resamples=int(_number(mapping, "resamples", 1000, 1, math.inf)),
        alpha=alpha,
        latency_rows=int(_number(mapping, "latency_rows", 200, 1, math.inf)),
        seed=int(_number(mapping, "seed", 0, 0, math.inf)),
        name=_text(mapping, "name"),
        source=_plain(mapping),
    )
    for check in policy.checks:
        for ref in check.references():
            if ref.kind == "worst_slice" and not policy.slices:
                raise ValidationError(
                    f"The check {check.expression!r} uses worst_slice, but the policy names "
                    "no slices. Add `slices: [column, ...]` to the policy."
                )
            if ref.kind == "fairness" and not policy.sensitive:
                raise ValidationError(
                    f"The check {check.expression!r} uses fairness, but the policy names no "
                    "sensitive column. Add `sensitive: column` to the policy."
                )
    return policy


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _text(mapping: Mapping[str, Any], key: str) -> str | None:
    value = mapping.get(key)
    if value is None or isinstance(value, str):
        return value
    raise ValidationError(f"{key} must be text, got {value!r}.")


def _number(mapping: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = mapping.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        bounds = f"between {low} and {high}" if math.isfinite(high) else f"at least {low}"
        raise ValidationError(f"{key} must be a number {bounds}, got {value!r}.")
    return float(value)


def _check_entry(entry: Any, number: int) -> Check:
    """A check: an expression string, ``{check: ..., alpha: ...}`` or
    ``{better_than_champion: {metric: ..., alpha: ..., margin: ...}}``."""
    if isinstance(entry, str):
        return parse_check(entry, number)
    if isinstance(entry, Mapping) and "check" in entry:
        extra = set(entry) - {"check", "alpha"}
        if extra:
            raise ValidationError(
                f"Check {number} has unknown key(s) {sorted(map(str, extra))}; a check entry "
                "is a string, {check: ..., alpha: ...} or {better_than_champion: {...}}."
            )
        check = parse_check(str(entry["check"]), number)
        if "alpha" in entry:
            alpha = _number(entry, "alpha", 0.05, 0.0, 1.0)
            check = Check(
                check.expression,
                check.left,
                check.operator,
                check.right,
                check.significantly,
                alpha,
            )
        return check
    if isinstance(entry, Mapping) and "better_than_champion" in entry and len(entry) == 1:
        spec = entry["better_than_champion"]
        if isinstance(spec, str):
            spec = {"metric": spec}
        if not isinstance(spec, Mapping) or "metric" not in spec:
            raise ValidationError(
                f"Check {number}: better_than_champion needs a metric, e.g. "
                "{better_than_champion: {metric: roc_auc, alpha: 0.05}}."
            )
        extra = set(spec) - {"metric", "alpha", "margin"}
        if extra:
            raise ValidationError(
                f"Check {number}: better_than_champion takes metric, alpha and margin, not "
                f"{sorted(map(str, extra))}."
            )
        metric = metric_name(str(spec["metric"]), f"check {number}")
        margin = _number(spec, "margin", 0.0, -math.inf, math.inf) if "margin" in spec else 0.0
        lower = metric in LOWER_IS_BETTER
        operator = "<" if lower else ">"
        offset = ""
        if margin:
            offset = f" {'-' if lower else '+'} {margin!r}"
        text = f"{metric} {operator} champion.{metric}{offset} significantly"
        if "alpha" in spec:
            text += f" at {_number(spec, 'alpha', 0.05, 0.0, 1.0)!r}"
        return parse_check(text, number)
    raise ValidationError(
        f"Check {number} must be an expression string such as {EXAMPLE!r}, "
        "{check: ..., alpha: ...} or {better_than_champion: {metric: ..., alpha: ...}}; "
        f"got {entry!r}."
    )
