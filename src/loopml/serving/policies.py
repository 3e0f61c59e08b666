"""Traffic policies of a deployment, as plain logic the server and tests share:
sticky weighted routing, the canary's step-by-step decision, the A/B test's statistics
and the shadow's agreement report.

Nothing here does I/O: the deployment feeds it counts and predictions and acts on what
it returns, so each rule is tested on numbers.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loopml.errors import ValidationError

__all__ = [
    "ABResult",
    "ArmStats",
    "CanaryDecision",
    "CanaryPlan",
    "ShadowReport",
    "ab_test",
    "bucket",
    "canary_decision",
    "parse_duration",
    "parse_steps",
    "shadow_report",
]


def bucket(key: str) -> float:
    """A stable position in [0, 1) for a routing key: the same key always lands in the
    same arm for the same weights, whatever the process (no salted ``hash``)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def parse_steps(text: str | Sequence[float]) -> list[float]:
    """``"5,25,50,100"`` -> [5, 25, 50, 100]: canary shares in percent, rising to 100."""
    items = text.split(",") if isinstance(text, str) else list(text)
    try:
        steps = [float(item) for item in items]
    except ValueError:
        raise ValidationError(
            f"Canary steps must be percentages like 5,25,50,100, got {text!r}."
        ) from None
    if not steps or any(b <= a for a, b in itertools.pairwise(steps)):
        raise ValidationError(f"Canary steps must rise, got {text!r}.")
    if steps[0] <= 0 or steps[-1] != 100:
        raise ValidationError(f"Canary steps must start above 0 and end at 100, got {text!r}.")
    return steps


def parse_duration(text: str | float) -> float:
    """``"2m"`` -> 120.0 seconds (s, m, h suffixes; a bare number is seconds)."""
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        units = {"s": 1.0, "m": 60.0, "h": 3600.0}
        value, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
        try:
            seconds = float(value) * units[unit]
        except ValueError:
            raise ValidationError(f"{text!r} is not a duration like 30s, 2m or 1h.") from None
    if seconds <= 0:
        raise ValidationError(f"A duration must be positive, got {text!r}.")
    return seconds


@dataclass
class ArmStats:
    """What one arm served during a canary step."""

    requests: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    predictions: list[float] = field(default_factory=list)  # a score per row (or the label)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def p99_ms(self) -> float:
        return float(np.percentile(self.latencies_ms, 99)) if self.latencies_ms else 0.0


@dataclass(frozen=True)
class CanaryPlan:
    """A canary's steps (percent of traffic), time per step and guards."""

    steps: tuple[float, ...] = (5.0, 25.0, 50.0, 100.0)
    interval_s: float = 120.0
    min_requests: int = 50  # per step on the canary before it is judged
    max_error_rate: float = 0.01  # absolute; and never worse than stable + this margin
    max_latency_ratio: float = 1.5  # canary p99 over stable p99
    # ...and over stable p99 plus this: the p99 of a step's 20-200 requests is nearly
    # their maximum, so a few ms of scheduling noise must not roll a canary back.
    latency_slack_ms: float = 10.0
    max_prediction_psi: float = 0.2  # population stability of the canary's predictions
    min_drift_rows: int = 200  # per arm before the PSI is judged: on fewer it is noise


@dataclass(frozen=True)
class CanaryDecision:
    action: str  # "wait" | "advance" | "promote" | "rollback"
    reason: str
    measurements: dict[str, float] = field(default_factory=dict)


def canary_decision(
    plan: CanaryPlan, step: int, elapsed_s: float, stable: ArmStats, canary: ArmStats
) -> CanaryDecision:
    """What the canary at ``steps[step]`` should do now.

    A failing guard rolls back at once, whatever the time; the step advances only when
    its interval has passed with at least ``min_requests`` on the canary and every guard
    holding; after the last step the canary is promoted. The latency guard fails only
    when the canary's p99 exceeds both ``max_latency_ratio`` times stable's and stable's
    plus ``latency_slack_ms``.
    """
    measured = {
        "canary_requests": float(canary.requests),
        "canary_error_rate": canary.error_rate,
        "stable_error_rate": stable.error_rate,
        "canary_p99_ms": canary.p99_ms,
        "stable_p99_ms": stable.p99_ms,
    }
    worst_errors = max(plan.max_error_rate, stable.error_rate + plan.max_error_rate)
    if canary.requests >= 10 and canary.error_rate > worst_errors:
        return CanaryDecision(
            "rollback",
            f"error rate {canary.error_rate:.1%} on the canary (stable {stable.error_rate:.1%},"
            f" allowed {worst_errors:.1%})",
            measured,
        )
    if canary.requests < plan.min_requests:
        return CanaryDecision(
            "wait", f"{canary.requests} of {plan.min_requests} requests", measured
        )
    if stable.latencies_ms:
        allowed = max(
            plan.max_latency_ratio * max(stable.p99_ms, 1.0),
            stable.p99_ms + plan.latency_slack_ms,
        )
        measured["allowed_p99_ms"] = allowed
        if canary.p99_ms > allowed:
            return CanaryDecision(
                "rollback",
                f"p99 latency {canary.p99_ms:.1f} ms on the canary against"
                f" {stable.p99_ms:.1f} ms (allowed {allowed:.1f} ms:"
                f" x{plan.max_latency_ratio:g} or +{plan.latency_slack_ms:g} ms)",
                measured,
            )
    if min(len(canary.predictions), len(stable.predictions)) >= plan.min_drift_rows:
        drift = psi(np.asarray(stable.predictions), np.asarray(canary.predictions))
        measured["prediction_psi"] = drift
        if drift > plan.max_prediction_psi:
            return CanaryDecision(
                "rollback",
                f"prediction drift against stable: PSI {drift:.3f} > {plan.max_prediction_psi}",
                measured,
            )
    if elapsed_s < plan.interval_s:
        return CanaryDecision("wait", f"{elapsed_s:.0f}s of {plan.interval_s:.0f}s", measured)
    last = step >= len(plan.steps) - 1
    return CanaryDecision(
        "promote" if last else "advance",
        f"guards held for {elapsed_s:.0f}s and {canary.requests} requests",
        measured,
    )


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index of ``current`` against ``reference`` (quantile bins)."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:  # a constant reference: compare the share equal to it
        same = float(np.mean(current == reference[0]))
        return 0.0 if same == 1.0 else float("inf")
    inner = edges[1:-1]
    expected = np.bincount(
        np.searchsorted(inner, reference, side="right"), minlength=len(edges) - 1
    )
    actual = np.bincount(np.searchsorted(inner, current, side="right"), minlength=len(edges) - 1)
    e = np.clip(expected / expected.sum(), 1e-4, None)
    a = np.clip(actual / actual.sum(), 1e-4, None)
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass(frozen=True)
class ABResult:
    """An A/B comparison of one metric: the difference B - A with its interval and test."""

    metric: str
    a: float
    b: float
    n_a: int
    n_b: int
    difference: float
    low: float
    high: float
    p_value: float
    significant: bool
    decision: str  # "b" | "a" | "inconclusive"
    needed_per_arm: int | None  # rows per arm to detect the observed difference, if short

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def ab_test(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    metric: str = "accuracy",
    alpha: float = 0.05,
    power: float = 0.8,
    higher_is_better: bool = True,
) -> ABResult:
    """Compares per-row outcomes of two arms (1/0 for correct/wrong, or any per-row loss).

    Welch's t-test on the means (for 0/1 outcomes it is the two-proportion z-test up to
    the pooled variance), a normal interval for the difference, and, while inconclusive,
    the rows per arm that would detect the observed difference at ``alpha`` and ``power``.
    """
    from scipy import stats  # type: ignore[import-untyped]

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) < 2 or len(y) < 2:
        raise ValidationError("An A/B test needs at least 2 outcomes per arm; wait for feedback.")
    mean_a, mean_b = float(x.mean()), float(y.mean())
    var_a, var_b = float(x.var(ddof=1)), float(y.var(ddof=1))
    se = math.sqrt(var_a / len(x) + var_b / len(y))
    difference = mean_b - mean_a
    if se == 0:
        p_value = 1.0 if difference == 0 else 0.0
    else:
        p_value = float(stats.ttest_ind(y, x, equal_var=False).pvalue)
    z = float(stats.norm.ppf(1 - alpha / 2))
    low, high = difference - z * se, difference + z * se
    significant = p_value < alpha
    better_b = (difference > 0) == higher_is_better
    decision = ("b" if better_b else "a") if significant else "inconclusive"
    needed = None
    if not significant and difference != 0:
        z_power = float(stats.norm.ppf(power))
        pooled = (var_a + var_b) / 2 or 1e-12
        needed = math.ceil(2 * pooled * (z + z_power) ** 2 / difference**2)
    return ABResult(
        metric, mean_a, mean_b, len(x), len(y), difference, low, high, p_value, significant,
        decision, needed,
    )  # fmt: skip


@dataclass(frozen=True)
class ShadowReport:
    rows: int
    label_agreement: float | None  # classifiers: share of rows with the same label
    difference_quantiles: dict[str, float]  # |primary - shadow| score: p50, p90, p99, max
    primary_latency_p50_ms: float
    shadow_latency_p50_ms: float
    primary_latency_p99_ms: float
    shadow_latency_p99_ms: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def shadow_report(
    primary: Sequence[Any] | np.ndarray,
    shadow: Sequence[Any] | np.ndarray,
    primary_latency_ms: Sequence[float] | np.ndarray,
    shadow_latency_ms: Sequence[float] | np.ndarray,
    primary_scores: Sequence[float] | np.ndarray | None = None,
    shadow_scores: Sequence[float] | np.ndarray | None = None,
) -> ShadowReport:
    """How the shadow's answers compare with the primary's on the same requests."""
    p, s = np.asarray(primary), np.asarray(shadow)
    if len(p) != len(s):
        raise ValidationError("Shadow and primary predictions must pair row by row.")
    numeric = np.issubdtype(p.dtype, np.number) and np.issubdtype(s.dtype, np.number)
    agreement = None
    if primary_scores is not None and shadow_scores is not None:
        gaps = np.abs(np.asarray(primary_scores, float) - np.asarray(shadow_scores, float))
        agreement = float(np.mean(p == s)) if len(p) else None
    elif numeric and not _integral(p):
        gaps = np.abs(p.astype(float) - s.astype(float))
    else:
        gaps = (p != s).astype(float)
        agreement = float(np.mean(p == s)) if len(p) else None
    quantiles = (
        {k: float(np.quantile(gaps, q)) for k, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))}
        | {"max": float(gaps.max())}
        if len(gaps)
        else {}
    )

    def pct(values: Sequence[float] | np.ndarray, q: float) -> float:
        return float(np.percentile(values, q)) if len(values) else 0.0

    return ShadowReport(
        len(p), agreement, quantiles,
        pct(primary_latency_ms, 50), pct(shadow_latency_ms, 50),
        pct(primary_latency_ms, 99), pct(shadow_latency_ms, 99),
    )  # fmt: skip


def _integral(values: np.ndarray) -> bool:
    return bool(np.issubdtype(values.dtype, np.integer) or np.all(np.mod(values, 1) == 0))
