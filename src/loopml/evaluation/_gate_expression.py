"""The check expression language of gate policies, parsed by a lark grammar (see
:mod:`loopml.evaluation.gate` for the language). Nothing the user writes is ever run as
Python: a check becomes a small tree of tuples, and :func:`compute` walks it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import LarkError, UnexpectedInput, VisitError

from loopml.errors import ValidationError
from loopml.evaluation._metrics import HIGHER_IS_BETTER, LOWER_IS_BETTER
from loopml.evaluation._robustness import PERTURBATIONS

__all__ = ["EXAMPLE", "Check", "Reference", "compute", "metric_name", "parse_check"]

_GRAMMAR = r"""
?start: check
check: sum COMPARE sum significance?
significance: SIGNIFICANTLY (AT NUMBER)?
?sum: product
    | sum "+" product   -> add
    | sum "-" product   -> sub
?product: unary
    | product "*" unary -> mul
    | product "/" unary -> div
?unary: "-" unary       -> neg
    | atom
?atom: NUMBER           -> number
    | NAME              -> name
    | "(" sum ")"

SIGNIFICANTLY.2: /significantly(?![\w.])/i
AT.2: /at(?![\w.])/i
COMPARE: ">=" | "<=" | "==" | "!=" | ">" | "<"
NAME: /[A-Za-z_]\w*(\.[A-Za-z_]\w*)*/
NUMBER: /(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?/
%ignore /\s+/
"""

EXAMPLE = "roc_auc >= champion.roc_auc - 0.005"

# Metric names a check may use (the evaluated task decides which exist), and aliases.
METRICS = frozenset((HIGHER_IS_BETTER | LOWER_IS_BETTER) - {"selection_rate"})
ALIASES = {
    "auc": "roc_auc",
    "average_precision": "pr_auc",
    "brier": "brier_score",
    "ece": "expected_calibration_error",
}
FAIRNESS_KEYS = ("demographic_parity_difference", "equalized_odds_difference", "mae_difference")
ROBUSTNESS_ALIASES = {
    "noise": "gaussian_noise",
    "missing": "missing_values",
    "rare_category": "rare_category_swap",
}
ROBUSTNESS_FIELDS = ("degradation", "value", "baseline")
LATENCY_KEYS = ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "mean_ms", "max_ms")
MODEL_KEYS = ("size_mb",)
INTERVAL_FIELDS = ("low", "high")


@dataclass(frozen=True)
class Reference:
    """One name in a check: ``side`` is candidate or champion; ``kind`` is metric,
    worst_slice, fairness, robustness, latency, model or interval."""

    side: str
    kind: str
    key: str
    detail: str = ""

    def __str__(self) -> str:
        prefix = "champion." if self.side == "champion" else ""
        if self.kind == "metric":
            return f"{prefix}{self.key}"
        return f"{prefix}{'.'.join(p for p in (self.kind, self.key, self.detail) if p)}"


@dataclass(frozen=True)
class Check:
    """One parsed check: ``left COMPARE right``, optionally ``significantly``."""

    expression: str
    left: Any  # tree of tuples
    operator: str
    right: Any
    significantly: bool = False
    alpha: float | None = None

    def references(self) -> list[Reference]:
        found: list[Reference] = []
        _collect(self.left, found)
        _collect(self.right, found)
        return found


# -- parsing -----------------------------------------------------------------------------
@functools.cache
def _parser() -> Lark:
    return Lark(_GRAMMAR, start="start", parser="lalr", maybe_placeholders=False)


def parse_check(text: str, number: int = 1) -> Check:
    """Parses one check expression; a ValidationError points at the column that is wrong."""
    try:
        tree = _parser().parse(text)
        parsed: Check = _ToCheck(text).transform(tree)
        return parsed
    except UnexpectedInput as error:
        column = getattr(error, "column", "?")
        context = error.get_context(text).rstrip()
        raise ValidationError(
            f"Cannot read check {number} at column {column}:\n{context}\n"
            f"Write `value OPERATOR value`, for example: {EXAMPLE}"
        ) from None
    except VisitError as error:
        if isinstance(error.orig_exc, ValidationError):
            raise ValidationError(f"Check {number} ({text!r}): {error.orig_exc}") from None
        raise
    except LarkError as error:
        raise ValidationError(f"Cannot read check {number}: {error}. Example: {EXAMPLE}") from None


@v_args(inline=True)
class _ToCheck(Transformer[Token, Any]):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def number(self, token: Token) -> Any:
        return ("number", float(token))

    def name(self, token: Token) -> Any:
        return ("ref", _reference(str(token)))

    def neg(self, inner: Any) -> Any:
        return ("neg", inner)

    def add(self, a: Any, b: Any) -> Any:
        return ("add", a, b)

    def sub(self, a: Any, b: Any) -> Any:
        return ("sub", a, b)

    def mul(self, a: Any, b: Any) -> Any:
        return ("mul", a, b)

    def div(self, a: Any, b: Any) -> Any:
        return ("div", a, b)

    def significance(self, _word: Token, *rest: Token) -> Any:
        if not rest:
            return ("significance", None)
        alpha = float(rest[-1])
        if not 0 < alpha < 1:
            raise ValidationError(f"the significance level must be between 0 and 1, got {alpha}.")
        return ("significance", alpha)

    def check(self, left: Any, operator: Token, right: Any, *rest: Any) -> Check:
        significant = bool(rest)
        alpha = rest[0][1] if rest else None
        found = Check(self.text.strip(), left, str(operator), right, significant, alpha)
        refs = found.references()
        if not refs:
            raise ValidationError("a check must name at least one metric.")
        if significant:
            if str(operator) not in (">", ">=", "<", "<="):
                raise ValidationError("`significantly` needs <, <=, > or >=.")
            odd = [str(r) for r in refs if r.kind != "metric"]
            if odd:
                raise ValidationError(
                    f"`significantly` works on plain metrics resampled row by row, not on "
                    f"{', '.join(odd)}."
                )
        return found


def metric_name(name: str, where: str) -> str:
    name = ALIASES.get(name, name)
    if name not in METRICS:
        raise ValidationError(
            f"Unknown metric {name!r} in {where}. Known metrics: {', '.join(sorted(METRICS))} "
            f"(aliases: {', '.join(f'{a}={m}' for a, m in ALIASES.items())}); also "
            "worst_slice.<metric>, interval.<metric>.low|high, fairness.<key>, "
            "robustness.<perturbation>.degradation, latency.p99_ms and model.size_mb, each "
            "optionally after champion."
        )
    return name


def _reference(text: str) -> Reference:
    parts = text.split(".")
    side = "candidate"
    if parts[0] == "champion":
        side, parts = "champion", parts[1:]
        if not parts:
            raise ValidationError("write champion.<metric>, e.g. champion.roc_auc.")
    if parts[0] == "candidate":
        parts = parts[1:]
    head, rest = parts[0], parts[1:]

    def shape(expected: str) -> ValidationError:
        return ValidationError(f"{text!r} is not a known name; write {expected}.")

    def choose(value: str, options: tuple[str, ...] | list[str], what: str) -> str:
        if value not in options:
            raise ValidationError(
                f"Unknown {what} {value!r} in {text!r}; known: {', '.join(options)}."
            )
        return value

    if head == "metrics" and len(rest) == 1:
        return Reference(side, "metric", metric_name(rest[0], repr(text)))
    if head == "worst_slice":
        if len(rest) != 1:
            raise shape("worst_slice.<metric>, e.g. worst_slice.recall")
        return Reference(side, "worst_slice", metric_name(rest[0], repr(text)))
    if head in ("interval", "intervals"):
        if len(rest) != 2:
            raise shape("interval.<metric>.low or interval.<metric>.high")
        metric = metric_name(rest[0], repr(text))
        return Reference(side, "interval", metric, choose(rest[1], INTERVAL_FIELDS, "bound"))
    if head == "fairness":
        if len(rest) != 1:
            raise shape("fairness.demographic_parity_difference (or another fairness key)")
        return Reference(side, "fairness", choose(rest[0], FAIRNESS_KEYS, "fairness key"))
    if head == "robustness":
        if len(rest) not in (1, 2):
            raise shape("robustness.<perturbation>.degradation, e.g. robustness.noise.degradation")
        perturbation = ROBUSTNESS_ALIASES.get(rest[0], rest[0])
        names = [*PERTURBATIONS, *ROBUSTNESS_ALIASES]
        if perturbation not in PERTURBATIONS:
            choose(rest[0], names, "perturbation")
        detail = rest[1] if len(rest) == 2 else "degradation"
        return Reference(
            side, "robustness", perturbation, choose(detail, ROBUSTNESS_FIELDS, "field")
        )
    if head == "latency":
        if len(rest) != 1:
            raise shape("latency.p99_ms (or p50_ms, p90_ms, p95_ms, mean_ms, max_ms)")
        return Reference(side, "latency", choose(rest[0], LATENCY_KEYS, "latency statistic"))
    if head == "model":
        if len(rest) != 1:
            raise shape("model.size_mb")
        return Reference(side, "model", choose(rest[0], MODEL_KEYS, "model property"))
    if rest:
        raise shape("a metric such as roc_auc, or worst_slice.<metric>, fairness.<key>, ...")
    return Reference(side, "metric", metric_name(head, repr(text)))


def _collect(node: Any, found: list[Reference]) -> None:
    if node[0] == "ref":
        found.append(node[1])
    elif node[0] != "number":
        for child in node[1:]:
            _collect(child, found)


def compute(node: Any, lookup: Any) -> Any:
    """The value of an expression tree; ``lookup(reference)`` gives each name's value
    (a float, or an array of resampled values, which this computes elementwise)."""
    kind = node[0]
    if kind == "number":
        return node[1]
    if kind == "ref":
        return lookup(node[1])
    if kind == "neg":
        return -compute(node[1], lookup)
    a, b = compute(node[1], lookup), compute(node[2], lookup)
    if kind == "add":
        return a + b
    if kind == "sub":
        return a - b
    if kind == "mul":
        return a * b
    return a / b if not (isinstance(b, float) and b == 0) else math.nan
