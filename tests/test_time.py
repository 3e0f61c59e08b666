"""``loopml._time``: the store's millisecond timestamps."""

from __future__ import annotations

import datetime as dt
import time

from loopml._time import from_ms, now_ms, to_ms, utc


def test_a_naive_time_is_utc_and_an_aware_one_is_converted() -> None:
    naive = dt.datetime(2026, 12, 6, 7, 30)
    paris = dt.datetime(2026, 12, 6, 8, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert utc(naive) == utc(paris) == dt.datetime(2026, 12, 6, 7, 30, tzinfo=dt.UTC)
    assert to_ms(naive) == to_ms(paris) == 1_796_542_200_000


def test_milliseconds_round_down_and_come_back_exactly() -> None:
    moment = dt.datetime(2026, 12, 6, 7, 30, 0, 123_999, tzinfo=dt.UTC)
    assert to_ms(moment) == 1_796_542_200_123
    assert from_ms(to_ms(moment)) == moment.replace(microsecond=123_000)
    assert to_ms(dt.datetime(1969, 12, 31, 23, 59, 59, 999_500)) == -1  # down, not to zero


def test_now_is_the_clock_in_milliseconds() -> None:
    before = time.time()
    now = now_ms()
    assert before * 1000 - 1 <= now <= time.time() * 1000 + 1
