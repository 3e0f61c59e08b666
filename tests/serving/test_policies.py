"""Traffic policies on numbers: sticky routing, canary decisions, A/B tests, shadows."""

from __future__ import annotations

import numpy as np
import pytest

from loopml.errors import ValidationError
from loopml.serving.policies import (
    ArmStats,
    CanaryPlan,
    ab_test,
    bucket,
    canary_decision,
    parse_duration,
    parse_steps,
    psi,
    shadow_report,
)


def test_buckets_are_stable_and_uniform() -> None:
    keys = [f"customer-{i}" for i in range(20_000)]
    positions = np.array([bucket(k) for k in keys])
    assert bucket("customer-7") == bucket("customer-7")
    assert abs(np.mean(positions < 0.25) - 0.25) < 0.01  # a 25% arm gets ~25% of keys
    assert positions.min() >= 0.0 and positions.max() < 1.0


def test_steps_and_durations_parse_or_say_what_is_wrong() -> None:
    assert parse_steps("5,25,50,100") == [5, 25, 50, 100]
    for bad in ("", "5,x", "50,25,100", "5,25,50", "0,100"):
        with pytest.raises(ValidationError):
            parse_steps(bad)
    assert parse_duration("2m") == 120 and parse_duration("30s") == 30 and parse_duration(5) == 5
    with pytest.raises(ValidationError, match="duration"):
        parse_duration("soon")


def _arm(
    requests: int, errors: int = 0, latency: float = 5.0, scores: list[float] | None = None
) -> ArmStats:
    rng = np.random.default_rng(0)
    return ArmStats(
        requests, errors, list(rng.normal(latency, 0.5, requests)),
        scores if scores is not None else list(rng.uniform(size=requests)),
    )  # fmt: skip


def test_canary_advances_only_after_its_interval_with_guards_holding() -> None:
    plan = CanaryPlan(interval_s=60, min_requests=50)
    stable, canary = _arm(500), _arm(100)
    assert canary_decision(plan, 0, 10, stable, canary).action == "wait"
    assert canary_decision(plan, 0, 61, stable, _arm(20)).action == "wait"  # too few requests
    assert canary_decision(plan, 0, 61, stable, canary).action == "advance"
    assert canary_decision(plan, 3, 61, stable, canary).action == "promote"


def test_canary_rolls_back_on_errors_latency_or_prediction_drift() -> None:
    plan = CanaryPlan(interval_s=60, min_requests=50)
    stable = _arm(500)
    errors = canary_decision(plan, 1, 1, stable, _arm(100, errors=5))
    assert errors.action == "rollback" and "error rate" in errors.reason
    slow = canary_decision(plan, 1, 1, stable, _arm(100, latency=50.0))
    assert slow.action == "rollback" and "p99" in slow.reason
    plan = CanaryPlan(interval_s=60, min_requests=50, min_drift_rows=100)
    shifted = canary_decision(plan, 1, 1, stable, _arm(100, scores=[0.99] * 100))
    assert shifted.action == "rollback" and "PSI" in shifted.reason
    few = CanaryPlan(interval_s=60, min_requests=50, min_drift_rows=1000)  # too few to judge
    assert canary_decision(few, 1, 1, stable, _arm(100, scores=[0.99] * 100)).action == "wait"


def _latencies(requests: int, p99: float) -> ArmStats:
    """An arm whose p99 is exactly ``p99`` ms (every request took that long)."""
    return ArmStats(requests, 0, [p99] * requests, [0.5] * requests)


def test_canary_p99_over_the_ratio_but_within_the_slack_holds() -> None:
    plan = CanaryPlan(interval_s=60, min_requests=50)  # x1.5 or +10 ms
    stable = _latencies(500, 9.5)
    noisy = canary_decision(plan, 0, 61, stable, _latencies(100, 19.2))  # x2, +9.7 ms
    assert noisy.action == "advance", noisy.reason
    assert noisy.measurements["allowed_p99_ms"] == pytest.approx(19.5)
    # On a slow model the ratio allows more than the slack, and judges.
    slow_stable = _latencies(500, 100.0)
    assert canary_decision(plan, 0, 61, slow_stable, _latencies(100, 140.0)).action == "advance"
    over = canary_decision(plan, 0, 61, slow_stable, _latencies(100, 151.0))
    assert over.action == "rollback" and over.measurements["allowed_p99_ms"] == 150.0


def test_canary_p99_over_both_the_ratio_and_the_slack_rolls_back_naming_both() -> None:
    plan = CanaryPlan(interval_s=60, min_requests=50)
    slow = canary_decision(plan, 0, 61, _latencies(500, 9.5), _latencies(100, 31.0))
    assert slow.action == "rollback"
    assert slow.reason == (
        "p99 latency 31.0 ms on the canary against 9.5 ms (allowed 19.5 ms: x1.5 or +10 ms)"
    )
    assert slow.measurements["allowed_p99_ms"] == pytest.approx(19.5)


def test_a_canary_latency_slack_of_0_leaves_the_ratio_alone() -> None:
    plan = CanaryPlan(interval_s=60, min_requests=50, latency_slack_ms=0)
    noisy = canary_decision(plan, 0, 61, _latencies(500, 9.5), _latencies(100, 19.2))
    assert noisy.action == "rollback" and "x1.5 or +0 ms" in noisy.reason
    assert noisy.measurements["allowed_p99_ms"] == pytest.approx(14.25)
    within = canary_decision(plan, 0, 61, _latencies(500, 9.5), _latencies(100, 14.0))
    assert within.action == "advance"


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(size=5000)
    assert psi(reference, rng.normal(size=5000)) < 0.02
    assert psi(reference, rng.normal(1.0, 1.0, size=5000)) > 0.2


def test_ab_test_decides_when_the_difference_is_clear_and_says_how_many_rows_are_missing() -> None:
    rng = np.random.default_rng(2)
    clear = ab_test(rng.uniform(size=4000) < 0.80, rng.uniform(size=4000) < 0.85)
    assert clear.significant and clear.decision == "b" and clear.low > 0
    assert clear.needed_per_arm is None
    close = ab_test(rng.uniform(size=200) < 0.80, rng.uniform(size=200) < 0.82)
    assert close.decision == "inconclusive" and close.needed_per_arm is not None
    assert close.needed_per_arm > 200
    loss = ab_test(
        rng.normal(1.0, 1, 3000), rng.normal(1.2, 1, 3000), "loss", higher_is_better=False
    )
    assert loss.decision == "a"
    with pytest.raises(ValidationError, match="at least 2"):
        ab_test([1.0], [0.0, 1.0])


def test_shadow_report_pairs_answers() -> None:
    report = shadow_report(
        [0, 1, 1, 0], [0, 1, 0, 0], [2.0, 3.0, 2.5, 2.0], [4.0, 5.0, 4.5, 4.0],
        primary_scores=[0.1, 0.9, 0.6, 0.2], shadow_scores=[0.1, 0.8, 0.4, 0.2],
    )  # fmt: skip
    assert report.rows == 4 and report.label_agreement == 0.75
    assert report.difference_quantiles["max"] == pytest.approx(0.2)
    assert report.shadow_latency_p50_ms > report.primary_latency_p50_ms
    regression = shadow_report([1.5, 2.5], [1.0, 2.5], [1, 1], [1, 1])
    assert regression.label_agreement is None and regression.difference_quantiles["max"] == 0.5
    with pytest.raises(ValidationError, match="pair"):
        shadow_report([1], [1, 2], [1], [1])
