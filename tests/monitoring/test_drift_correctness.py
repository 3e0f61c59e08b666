"""Drift detection on synthetic data with known drift: found fast, named right, few false alarms.

One seeded stream of windows per case. A reference of 20,000 rows (stored as its summary, as
a model version keeps it) is compared with windows of 500 rows (the p-value regime) and of
5,000 rows (the effect-size regime).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from loopml.data.summary import FrameSummary, summarize
from loopml.monitoring.drift import drift

PLANS = ["basic", "plus", "pro", "team"]
PLAN_SHARES = [0.4, 0.3, 0.2, 0.1]
REGIONS = ["north", "south", "east", "west", "central"]
MAX_WINDOWS = 3  # an injected shift must be flagged within this many windows


def _stable(rows: int, rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": rng.normal(40.0, 10.0, rows),
            "income": rng.lognormal(10.0, 0.6, rows),
            "tenure": rng.exponential(24.0, rows),
            "usage": rng.gamma(2.0, 3.0, rows),
            "visits": rng.poisson(4.0, rows),
            "plan": rng.choice(PLANS, rows, p=PLAN_SHARES),
            "region": rng.choice(REGIONS, rows),
            "mobile": rng.random(rows) < 0.6,
        }
    )


@pytest.fixture(scope="module")
def reference() -> FrameSummary:
    return summarize(_stable(20_000, np.random.default_rng(2026)))


def _mean_shift(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    return frame.assign(age=frame.age + 5.0)  # half a standard deviation


def _variance_change(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    usage = frame.usage.mean() + (frame.usage - frame.usage.mean()) * 2.0
    return frame.assign(usage=usage)


def _category_mix(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    return frame.assign(plan=rng.choice(PLANS, len(frame), p=[0.1, 0.2, 0.3, 0.4]))


def _new_category(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    region = frame.region.where(rng.random(len(frame)) >= 0.1, "overseas")
    return frame.assign(region=region)


def _missing_values(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    return frame.assign(income=frame.income.where(rng.random(len(frame)) >= 0.2))


CASES: dict[str, tuple[Callable[[pd.DataFrame, np.random.Generator], pd.DataFrame], str]] = {
    "mean shift": (_mean_shift, "age"),
    "variance change": (_variance_change, "usage"),
    "category mix": (_category_mix, "plan"),
    "new category": (_new_category, "region"),
    "missing values": (_missing_values, "income"),
}


@pytest.mark.parametrize("rows", [500, 5_000])
@pytest.mark.parametrize("case", list(CASES))
def test_injected_shift_is_found_and_named(reference: FrameSummary, case: str, rows: int) -> None:
    inject, feature = CASES[case]
    rng = np.random.default_rng([list(CASES).index(case), rows])
    found_at = None
    for window in range(MAX_WINDOWS):
        report = drift(reference, inject(_stable(rows, rng), rng))
        if report.drifted_features:
            found_at = window
            break
    assert found_at is not None, f"{case} not found in {MAX_WINDOWS} windows of {rows} rows"
    assert report.drifted_features == [feature]


def test_the_right_test_flags_each_shift(reference: FrameSummary) -> None:
    rng = np.random.default_rng(7)
    expected = {
        "mean shift": {"wasserstein"},
        "variance change": {"wasserstein"},
        "category mix": {"jensenshannon"},
        "new category": {"jensenshannon", "categories"},
        "missing values": {"missing"},
    }
    for case, (inject, feature) in CASES.items():
        report = drift(reference, inject(_stable(5_000, rng), rng))
        flagged = {t.test for t in report.tests if t.drifted}
        assert flagged == expected[case], case
        if case == "new category":
            test = next(t for t in report.tests if (t.feature, t.test) == (feature, "categories"))
            assert test.detail["new"] == ["overseas"]
            assert test.statistic == pytest.approx(0.1, abs=0.015)


@pytest.mark.parametrize("rows", [500, 2_000])
def test_stable_data_raises_at_most_one_false_alarm_in_100_windows(
    reference: FrameSummary, rows: int
) -> None:
    rng = np.random.default_rng(100 + rows)
    alarms = [drift(reference, _stable(rows, rng)).drifted_features for _ in range(100)]
    flagged = [names for names in alarms if names]
    assert len(flagged) <= 1, flagged


def test_negligible_shift_at_a_million_rows_is_not_flagged() -> None:
    rng = np.random.default_rng(11)
    reference = pd.DataFrame({"x": rng.normal(0.0, 1.0, 1_000_000)})
    current = pd.DataFrame({"x": rng.normal(0.01, 1.0, 1_000_000)})  # a hundredth of an sd
    assert drift(reference, current).drifted_features == []
    # The uncorrected-in-spirit KS sees it: that is why large samples use effect sizes.
    assert drift(reference, current, tests="ks").drifted_features == ["x"]
