"""Times as the metadata store keeps them: whole milliseconds since the Unix epoch, UTC.

A naive datetime is taken as UTC, never as the machine's local time, everywhere.
"""

from __future__ import annotations

import datetime as dt
import time

__all__ = ["from_ms", "now_ms", "to_ms", "utc"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MS = dt.timedelta(milliseconds=1)


def utc(moment: dt.datetime) -> dt.datetime:
    """``moment`` in UTC (a naive one is read as UTC)."""
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def to_ms(moment: dt.datetime) -> int:
    """Milliseconds since the epoch, rounded down, in integer arithmetic (a float
    timestamp times 1000 can land a millisecond low)."""
    return (utc(moment) - _EPOCH) // _MS


def from_ms(ms: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(milliseconds=ms)


def now_ms() -> int:
    return time.time_ns() // 1_000_000
