"""Cron schedules: the due-occurrence rule of each catch-up policy, time zones, the store,
and bad input (malformed cron or time zone, unknown policy, a target that cannot import)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

import loopml
from loopml.errors import ConflictError, NotFoundError, ValidationError
from loopml.pipelines.schedule import (
    add_schedule,
    due_occurrences,
    enable_schedule,
    get_schedule,
    list_schedules,
    next_occurrences,
    remove_schedule,
)

UTC = dt.UTC
T0 = dt.datetime(2026, 1, 1, tzinfo=UTC)
TARGET = "py:tests.pipelines.test_schedule:nothing"


def nothing(ws: loopml.Workspace, occurrence: Any) -> None:
    """A target that does nothing (the store tests only need one that imports)."""


def _hours(*hours: int) -> list[dt.datetime]:
    return [T0 + dt.timedelta(hours=h) for h in hours]


# -- which occurrences are due -----------------------------------------------------------
@pytest.mark.parametrize(
    ("policy", "max_catch_up", "expected", "left_out"),
    [
        ("none", 10, [5], True),  # only the latest missed one
        ("all", 10, [1, 2, 3, 4, 5], False),  # every missed one, oldest first
        ("all", 3, [3, 4, 5], True),  # the newest max_catch_up of them
        ("skip", 10, [], True),  # 05:00 is 30 minutes late: missed, not run
    ],
)
def test_catch_up_policies_choose_the_missed_occurrences(
    policy: Any, max_catch_up: int, expected: list[int], left_out: bool
) -> None:
    now = T0 + dt.timedelta(hours=5, minutes=30)
    due, skipped = due_occurrences(
        "0 * * * *", "UTC", after=T0, now=now, catch_up=policy, max_catch_up=max_catch_up
    )
    assert due == _hours(*expected)
    assert skipped is left_out


def test_an_occurrence_seen_on_time_runs_under_every_policy() -> None:
    now = T0 + dt.timedelta(hours=1, seconds=20)
    for policy in ("none", "all", "skip"):
        due, skipped = due_occurrences("0 * * * *", "UTC", after=T0, now=now, catch_up=policy)
        assert (due, skipped) == (_hours(1), False), policy


def test_an_occurrence_at_now_is_due_and_the_claimed_one_is_not() -> None:
    at_one = T0 + dt.timedelta(hours=1)
    assert due_occurrences("0 * * * *", "UTC", after=T0, now=at_one)[0] == [at_one]
    assert due_occurrences("0 * * * *", "UTC", after=at_one, now=at_one)[0] == []
    # Naive datetimes are read as UTC.
    naive = at_one.replace(tzinfo=None)
    assert due_occurrences("0 * * * *", "UTC", after=T0.replace(tzinfo=None), now=naive)[0] == [
        at_one
    ]


def test_a_year_of_missed_minutes_costs_only_the_catch_up_window() -> None:
    now = T0 + dt.timedelta(days=365, seconds=30)
    started = time.perf_counter()
    due, skipped = due_occurrences(
        "* * * * *", "UTC", after=T0, now=now, catch_up="all", max_catch_up=5
    )
    elapsed = time.perf_counter() - started
    latest = T0 + dt.timedelta(days=365)
    assert due == [latest - dt.timedelta(minutes=m) for m in (4, 3, 2, 1, 0)]
    assert skipped
    assert elapsed < 0.5  # walking 525,600 minutes forward would take seconds


def test_the_time_zone_follows_daylight_saving() -> None:
    # 03:00 in Paris is 02:00 UTC in winter and 01:00 UTC from 29 March 2026 (CEST).
    found = next_occurrences("0 3 * * *", "Europe/Paris", dt.datetime(2026, 3, 27, tzinfo=UTC), 3)
    assert found == [
        dt.datetime(2026, 3, 27, 2, tzinfo=UTC),
        dt.datetime(2026, 3, 28, 2, tzinfo=UTC),
        dt.datetime(2026, 3, 29, 1, tzinfo=UTC),
    ]
    due, _ = due_occurrences(
        "0 3 * * *",
        "America/New_York",
        after=dt.datetime(2026, 7, 1, tzinfo=UTC),
        now=dt.datetime(2026, 7, 1, 7, 30, tzinfo=UTC),
    )
    assert due == [dt.datetime(2026, 7, 1, 7, tzinfo=UTC)]  # EDT is UTC-4


# -- bad input ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cron", "problem"),
    [
        ("61 * * * *", "out of range"),
        ("* * *", "columns"),
        ("every day", ""),
        ("", "must be a cron expression"),
    ],
)
def test_a_malformed_cron_expression_names_the_field_and_shows_an_example(
    sqlite_workspace: loopml.Workspace, cron: str, problem: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        add_schedule(sqlite_workspace, "nightly", cron, TARGET)
    message = str(caught.value)
    assert "Schedule 'nightly'" in message
    assert "`cron`" in message
    assert "'0 3 * * *'" in message  # an example to copy
    assert problem in message
    assert list_schedules(sqlite_workspace) == []


def test_an_unknown_time_zone_names_the_field_and_shows_an_example(
    sqlite_workspace: loopml.Workspace,
) -> None:
    with pytest.raises(ValidationError, match=r"`timezone` 'Mars/Olympus'.*'Europe/Paris'"):
        add_schedule(sqlite_workspace, "nightly", "0 3 * * *", TARGET, timezone="Mars/Olympus")
    with pytest.raises(ValidationError, match="`timezone`"):
        add_schedule(sqlite_workspace, "nightly", "0 3 * * *", TARGET, timezone="../etc/passwd")
    assert list_schedules(sqlite_workspace) == []


def test_an_unknown_catch_up_policy_lists_the_policies(
    sqlite_workspace: loopml.Workspace,
) -> None:
    with pytest.raises(ValidationError, match=r"`catch_up` 'latest'.*'none'.*'all'.*'skip'"):
        add_schedule(sqlite_workspace, "nightly", "0 3 * * *", TARGET, catch_up="latest")
    with pytest.raises(ValidationError, match="`max_catch_up`"):
        add_schedule(sqlite_workspace, "nightly", "0 3 * * *", TARGET, catch_up="all",
                     max_catch_up=0)  # fmt: skip


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("py:no_such_package.jobs:nightly", "cannot be imported (ModuleNotFoundError"),
        ("py:tests.pipelines.test_schedule:no_such_function", "cannot be imported"),
        ("py:tests.pipelines.test_schedule:T0", "not a callable"),
        ("no_such_package.pipelines:retrain", "cannot be imported"),
        ("pipelines/missing.yaml", "no YAML file"),
        ("retrain", "neither module:function"),
    ],
)
def test_a_target_that_cannot_be_imported_is_refused(
    sqlite_workspace: loopml.Workspace, target: str, problem: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        add_schedule(sqlite_workspace, "nightly", "0 3 * * *", target)
    assert "`target`" in str(caught.value)
    assert problem in str(caught.value)
    assert list_schedules(sqlite_workspace) == []


# -- stored schedules ---------------------------------------------------------------------
def test_schedules_round_trip_through_the_store(workspace: loopml.Workspace) -> None:
    start = dt.datetime(2026, 5, 1, 12, tzinfo=UTC)
    added = add_schedule(
        workspace, "nightly", "0  3 * * *", TARGET, timezone="Europe/Paris",
        params={"n_trials": 20}, catch_up="all", max_catch_up=4, start_at=start,
        max_runs=2, per="1d",
    )  # fmt: skip
    assert added.cron == "0 3 * * *"  # spaces normalized
    assert get_schedule(workspace, "nightly") == added
    assert added.params == {"n_trials": 20}
    assert (added.catch_up, added.max_catch_up, added.start_at) == ("all", 4, start)
    assert (added.max_runs, added.period) == (2, dt.timedelta(days=1))
    assert added.next_occurrences(start) == [dt.datetime(2026, 5, 2, 1, tzinfo=UTC)]

    with pytest.raises(ConflictError, match="replace=True"):
        add_schedule(workspace, "nightly", "0 4 * * *", TARGET)
    replaced = add_schedule(workspace, "nightly", "0 4 * * *", TARGET, replace=True)
    assert replaced.cron == "0 4 * * *"
    assert [s.name for s in list_schedules(workspace)] == ["nightly"]

    assert enable_schedule(workspace, "nightly", False).enabled is False
    assert remove_schedule(workspace, "nightly") is True
    assert remove_schedule(workspace, "nightly") is False
    with pytest.raises(NotFoundError, match="loopml schedule list"):
        get_schedule(workspace, "nightly")
