"""The scheduler: runs each due schedule occurrence and each trigger event once.

``loopml scheduler`` is a loop of :meth:`Scheduler.tick`. Each tick

1. marks failed the firings whose runner died mid-way (its lease, renewed by a
   heartbeat while the target runs, ran out), so none is left ``running`` forever;
2. for each enabled schedule, computes the due occurrences after the newest one ever
   claimed (see :func:`~loopml.pipelines.schedule.due_occurrences` for the catch-up
   policies) and claims each in the metadata store before running it; the claim row's
   unique key is the lock, so two schedulers never run the same occurrence and a
   restarted one never runs a claimed occurrence again;
3. polls the dataset and alert triggers (:func:`~loopml.pipelines.triggers.poll_triggers`).

The clock and the sleep are injected, so tests drive hours of schedule in milliseconds;
leases run on the wall clock, which is what tells a dead process from a slow one.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from loopml._time import to_ms, utc
from loopml.pipelines.schedule import due_occurrences, schedule_from_record
from loopml.pipelines.triggers import (
    DEFAULT_LEASE_S,
    Firing,
    claim_and_run,
    default_owner,
    firing_from_record,
    poll_triggers,
)
from loopml.store.repositories.schedules import ScheduleRepository

if TYPE_CHECKING:
    from loopml.workspace import Workspace

__all__ = ["Scheduler", "Tick"]

logger = logging.getLogger("loopml.pipelines")


@dataclass(frozen=True)
class Tick:
    """What one pass of the scheduler did."""

    time: dt.datetime
    firings: list[Firing] = field(default_factory=list)
    reaped: list[Firing] = field(default_factory=list)  # runners found dead, marked failed
    left_out: dict[str, bool] = field(default_factory=dict)  # schedule -> missed ones skipped


class Scheduler:
    """Runs a workspace's schedules and triggers; see the module docstring.

    Args:
        ws: The workspace.
        owner: This scheduler's name in claims (default host:pid:thread).
        poll_seconds: Seconds between ticks.
        lease_seconds: How long a running firing stays claimed without a heartbeat
            (renewed every third of it); a runner silent for longer is presumed dead.
        grace_seconds: How late an occurrence may be seen and still count as on time
            for ``catch_up="skip"`` (default: three polls, at least a minute).
        clock: The current time (default: the wall clock, UTC).
        sleep: How to wait between ticks (tests pass a recorder; the CLI an Event's wait).
        stop: Checked before each tick; True ends :meth:`run`.
        names: Only these schedules and triggers (default: all).
        triggers: Poll dataset and alert triggers too.
    """

    def __init__(
        self,
        ws: Workspace,
        *,
        owner: str | None = None,
        poll_seconds: float = 5.0,
        lease_seconds: float = DEFAULT_LEASE_S,
        grace_seconds: float | None = None,
        clock: Callable[[], dt.datetime] | None = None,
        sleep: Callable[[float], object] = time.sleep,
        stop: Callable[[], bool] | None = None,
        names: set[str] | None = None,
        triggers: bool = True,
    ) -> None:
        self.ws = ws
        self.owner = owner or default_owner()
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        self.grace = dt.timedelta(
            seconds=grace_seconds if grace_seconds is not None else max(60.0, 3 * poll_seconds)
        )
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.sleep = sleep
        self.stop = stop
        self.names = names
        self.triggers = triggers
        self._repository = ScheduleRepository(ws.db)

    def tick(self) -> Tick:
        """One pass: reap dead runners, run due occurrences, poll triggers."""
        now = utc(self.clock())
        repository = self._repository
        names = {record.trigger_id: record.name for record in repository.triggers()}
        reaped = [
            firing_from_record(record, names.get(record.trigger_id, "?"))
            for record in repository.reap(to_ms(now))
        ]
        for firing in reaped:
            logger.warning("%s %s: marked failed: %s", firing.trigger, firing.event, firing.error)
        firings: list[Firing] = []
        left_out: dict[str, bool] = {}
        for record in repository.triggers("schedule"):
            if not record.enabled or (self.names is not None and record.name not in self.names):
                continue
            try:
                schedule = schedule_from_record(record)
                last = repository.last_occurrence(record.trigger_id)
                after = max(
                    schedule.start_at, _time(last) if last is not None else schedule.start_at
                )
                due, skipped = due_occurrences(
                    schedule.cron, schedule.timezone, after=after, now=now,
                    catch_up=schedule.catch_up, max_catch_up=schedule.max_catch_up,
                    grace=self.grace,
                )  # fmt: skip
            except Exception as error:  # one broken schedule must not stop the others
                logger.error("schedule %s cannot be evaluated: %s", record.name, error)
                continue
            left_out[record.name] = skipped
            if skipped:
                logger.warning(
                    "schedule %s: occurrences missed before %s are left out (catch_up=%s)",
                    record.name, due[0].isoformat() if due else now.isoformat(),
                    schedule.catch_up,
                )  # fmt: skip
            for occurrence in due:
                stamp = _iso(occurrence)
                reason = {"schedule": record.name, "occurrence": stamp, "cron": schedule.cron,
                          "timezone": schedule.timezone}  # fmt: skip
                found = claim_and_run(
                    self.ws, record, stamp, reason, now=now, occurrence=occurrence,
                    owner=self.owner, lease_seconds=self.lease_seconds,
                )  # fmt: skip
                if found is not None:
                    firings.append(found)
        if self.triggers:
            firings.extend(
                poll_triggers(
                    self.ws,
                    now=now,
                    owner=self.owner,
                    lease_seconds=self.lease_seconds,
                    names=self.names,
                )
            )
        return Tick(now, firings, reaped, left_out)

    def run(
        self,
        *,
        max_ticks: int | None = None,
        on_tick: Callable[[Tick], None] | None = None,
    ) -> int:
        """Ticks every ``poll_seconds`` until ``stop()`` or ``max_ticks``; returns how
        many firings it made."""
        ticks = made = 0
        while not (self.stop and self.stop()) and (max_ticks is None or ticks < max_ticks):
            if ticks:
                self.sleep(self.poll_seconds)
                if self.stop and self.stop():
                    break
            try:
                result = self.tick()
            except Exception as error:  # a database hiccup: try again next tick
                logger.error("scheduler tick failed: %s", error)
            else:
                made += len(result.firings)
                if on_tick is not None:
                    on_tick(result)
            ticks += 1
        return made


def _time(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def _iso(when: dt.datetime) -> str:
    return utc(when).strftime("%Y-%m-%dT%H:%M:%SZ")
