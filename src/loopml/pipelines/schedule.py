"""Cron schedules of pipelines: checked definitions, stored, and which occurrences are due.

A schedule names a pipeline ``target`` (anything ``run_pipeline`` takes, or
``py:module:function``), a cron expression read in a time zone, and what to do about
occurrences missed while no scheduler ran (``catch_up``):

``none``
    run only the latest missed occurrence (the default);
``all``
    run every missed occurrence, oldest first, but at most ``max_catch_up`` (the newest);
``skip``
    run none that are missed: only an occurrence the scheduler sees on time (within its
    grace period) runs.

:mod:`loopml.pipelines.scheduler` runs them; :func:`due_occurrences` is the pure rule it
applies, so it can be tested without a clock.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from loopml._time import to_ms, utc
from loopml.errors import ValidationError
from loopml.pipelines.triggers import check_params, check_rate, check_target
from loopml.store.repositories.schedules import ScheduleRepository, TriggerRecord

if TYPE_CHECKING:
    from loopml.workspace import Workspace

__all__ = [
    "CATCH_UP_POLICIES",
    "CatchUp",
    "Schedule",
    "add_schedule",
    "check_catch_up",
    "check_cron",
    "check_timezone",
    "due_occurrences",
    "enable_schedule",
    "get_schedule",
    "list_schedules",
    "next_occurrences",
    "remove_schedule",
]

CatchUp = Literal["none", "all", "skip"]
CATCH_UP_POLICIES: tuple[str, ...] = ("none", "all", "skip")
_CRON_EXAMPLE = (
    "five fields: minute hour day-of-month month day-of-week, e.g. '0 3 * * *' (every day "
    "at 03:00) or '*/15 * * * 1-5' (every 15 minutes on weekdays), or @hourly, @daily, @weekly"
)
_ONE_MICROSECOND = dt.timedelta(microseconds=1)


@dataclass(frozen=True)
class Schedule:
    """A stored cron schedule of a pipeline (see the module docstring for ``catch_up``)."""

    name: str
    cron: str
    target: str
    timezone: str = "UTC"
    params: dict[str, Any] = field(default_factory=dict)
    catch_up: CatchUp = "none"
    max_catch_up: int = 10
    enabled: bool = True
    # Occurrences at or before this time are never due (when the schedule was added).
    start_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    max_runs: int | None = None
    period: dt.timedelta | None = None
    trigger_id: int = field(default=0, repr=False, compare=False)

    def next_occurrences(self, after: dt.datetime, count: int = 1) -> list[dt.datetime]:
        """The next ``count`` occurrences strictly after ``after``, in UTC."""
        return next_occurrences(self.cron, self.timezone, after, count)


# -- checks ---------------------------------------------------------------------------
def check_cron(cron: Any, where: str = "The schedule") -> str:
    """``cron`` stripped, or a ValidationError that names the field and shows an example."""
    from croniter import croniter

    if not isinstance(cron, str) or not cron.strip():
        raise ValidationError(f"{where}: `cron` must be a cron expression: {_CRON_EXAMPLE}.")
    text = " ".join(cron.split())
    try:
        croniter(text)
    except (ValueError, KeyError, TypeError) as error:  # croniter's errors are ValueErrors
        raise ValidationError(
            f"{where}: `cron` {cron!r} is not a valid cron expression ({error}); write "
            f"{_CRON_EXAMPLE}."
        ) from None
    return text


def check_timezone(timezone: Any, where: str = "The schedule") -> zoneinfo.ZoneInfo:
    """The time zone called ``timezone``, or a ValidationError naming the field."""
    if not isinstance(timezone, str) or not timezone:
        raise ValidationError(
            f"{where}: `timezone` must be an IANA time zone name such as 'UTC' or "
            f"'Europe/Paris', got {timezone!r}."
        )
    try:
        return zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"{where}: `timezone` {timezone!r} is not a known time zone; use an IANA name "
            "such as 'UTC', 'Europe/Paris' or 'America/New_York'."
        ) from None


def check_catch_up(policy: Any, max_catch_up: Any, where: str = "The schedule") -> CatchUp:
    """The catch-up policy, checked with its ``max_catch_up``."""
    if policy not in CATCH_UP_POLICIES:
        raise ValidationError(
            f"{where}: `catch_up` {policy!r} is not a policy; use 'none' (run only the latest "
            "missed occurrence), 'all' (every missed one, up to max_catch_up) or 'skip' "
            "(no missed ones)."
        )
    if isinstance(max_catch_up, bool) or not isinstance(max_catch_up, int) or max_catch_up < 1:
        raise ValidationError(
            f"{where}: `max_catch_up` must be a whole number 1 or more, e.g. 24; got "
            f"{max_catch_up!r}."
        )
    checked: CatchUp = policy
    return checked


# -- occurrences ----------------------------------------------------------------------
def next_occurrences(
    cron: str, timezone: str, after: dt.datetime, count: int = 1
) -> list[dt.datetime]:
    """The next ``count`` occurrences of ``cron`` in ``timezone`` after ``after``, in UTC."""
    from croniter import croniter

    zone = check_timezone(timezone)
    iterator = croniter(cron, utc(after).astimezone(zone))
    return [utc(iterator.get_next(dt.datetime)) for _ in range(count)]


def due_occurrences(
    cron: str,
    timezone: str,
    *,
    after: dt.datetime,
    now: dt.datetime,
    catch_up: CatchUp = "none",
    max_catch_up: int = 10,
    grace: dt.timedelta = dt.timedelta(minutes=1),
) -> tuple[list[dt.datetime], bool]:
    """The occurrences in (``after``, ``now``] to run now, oldest first, and whether
    older due ones are left out by the catch-up policy.

    ``after`` is the newest occurrence already claimed (or the schedule's start); an
    occurrence older than ``now - grace`` counts as missed. Walks back from ``now``, so
    a schedule stopped for a year costs at most ``max_catch_up + 1`` steps.
    """
    from croniter import croniter

    zone = check_timezone(timezone)
    after, now = utc(after), utc(now)
    wanted = max_catch_up if catch_up == "all" else 1
    # croniter's get_prev is strict; a microsecond later makes an occurrence at ``now``
    # itself due.
    iterator = croniter(cron, (now + _ONE_MICROSECOND).astimezone(zone))
    found: list[dt.datetime] = []
    while len(found) <= wanted:  # one more than wanted tells whether some are left out
        occurrence = utc(iterator.get_prev(dt.datetime))
        if occurrence <= after:
            break
        found.append(occurrence)
    left_out = len(found) > wanted
    chosen = found[:wanted]
    if catch_up == "skip":
        on_time = [when for when in chosen if when >= now - grace]
        left_out = left_out or len(on_time) < len(chosen)
        chosen = on_time
    return sorted(chosen), left_out


# -- stored schedules -----------------------------------------------------------------
def add_schedule(
    ws: Workspace,
    name: str,
    cron: str,
    target: str,
    *,
    timezone: str = "UTC",
    params: Mapping[str, Any] | None = None,
    catch_up: str = "none",
    max_catch_up: int = 10,
    enabled: bool = True,
    start_at: dt.datetime | None = None,
    max_runs: int | None = None,
    per: str | dt.timedelta | None = None,
    replace: bool = False,
) -> Schedule:
    """Stores a cron schedule of ``target``, after checking every field.

    Args:
        ws: The workspace whose metadata store keeps the schedule.
        name: A unique name among the workspace's schedules and triggers.
        cron: A cron expression (5 fields, or croniter's 6 with seconds, or @daily).
        target: What to run: a pipeline reference as ``run_pipeline`` takes it
            (``module:function``, a YAML file) or ``py:module:function``, a plain
            callable taking ``(ws, occurrence)``. Module targets must import now.
        timezone: The IANA time zone the expression is read in (DST-aware).
        params: Parameters passed to every run.
        catch_up: ``none``, ``all`` or ``skip`` (see the module docstring).
        max_catch_up: With ``all``, the most missed occurrences run after an outage.
        enabled: A disabled schedule is kept but never run.
        start_at: Occurrences at or before it are never due (default: now, so a new
            schedule does not catch up on the past).
        max_runs: Rate limit: at most this many runs per ``per``.
        per: The rate limit's period (``1h``, ``1d``...).
        replace: Update a schedule of the same name instead of refusing; its claimed
            occurrences stay claimed.

    Raises:
        ValidationError: A field is wrong; the message names it and shows an example.
        ConflictError: ``name`` is taken and ``replace`` is False.
    """
    where = f"Schedule {name!r}"
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("A schedule needs a `name`, e.g. 'nightly-retrain'.")
    cron = check_cron(cron, where)
    check_timezone(timezone, where)
    policy = check_catch_up(catch_up, max_catch_up, where)
    check_target(target, where)
    checked_params = check_params(params, where)
    period_ms = check_rate(max_runs, per, where)
    start = utc(start_at) if start_at is not None else dt.datetime.now(dt.UTC)
    record = ScheduleRepository(ws.db).add(
        name,
        {
            "kind": "schedule", "target": target, "params": checked_params,
            "enabled": bool(enabled), "cron": cron, "timezone": timezone, "catch_up": policy,
            "max_catch_up": max_catch_up, "start_at": to_ms(start), "max_runs": max_runs,
            "period_ms": period_ms,
        },
        replace=replace,
    )  # fmt: skip
    return schedule_from_record(record)


def get_schedule(ws: Workspace, name: str) -> Schedule:
    """The schedule called ``name`` (NotFoundError if none, ValidationError if ``name``
    is a trigger of another kind)."""
    record = ScheduleRepository(ws.db).get(name)
    if record.kind != "schedule":
        raise ValidationError(f"{name!r} is a {record.kind} trigger, not a schedule.")
    return schedule_from_record(record)


def list_schedules(ws: Workspace) -> list[Schedule]:
    """Every schedule of the workspace, by name."""
    return [schedule_from_record(r) for r in ScheduleRepository(ws.db).triggers("schedule")]


def remove_schedule(ws: Workspace, name: str) -> bool:
    """Deletes a schedule and its firing history; False when there was none."""
    return ScheduleRepository(ws.db).remove(name)


def enable_schedule(ws: Workspace, name: str, enabled: bool = True) -> Schedule:
    """Turns a schedule on or off (off: kept, never run)."""
    get_schedule(ws, name)
    return schedule_from_record(ScheduleRepository(ws.db).set_enabled(name, enabled))


def schedule_from_record(record: TriggerRecord) -> Schedule:
    """The public view of a stored schedule row."""
    policy: CatchUp = record.catch_up if record.catch_up in CATCH_UP_POLICIES else "none"  # type: ignore[assignment]
    return Schedule(
        name=record.name,
        cron=record.cron or "",
        target=record.target,
        timezone=record.timezone or "UTC",
        params=dict(record.params),
        catch_up=policy,
        max_catch_up=record.max_catch_up or 1,
        enabled=record.enabled,
        start_at=dt.datetime.fromtimestamp(record.start_at / 1000, tz=dt.UTC),
        max_runs=record.max_runs,
        period=None if record.period_ms is None else dt.timedelta(milliseconds=record.period_ms),
        trigger_id=record.trigger_id,
    )
