"""The micro-batcher: concurrent requests share model calls within explicit limits."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopml.serving import Prediction
from loopml.serving.microbatch import MicroBatcher

pytestmark = pytest.mark.anyio


class Model:
    """Doubles ``x``; records each call's size; fails on a row with x < 0."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.calls: list[int] = []
        self.seconds = seconds
        self.lock = threading.Lock()

    def __call__(self, frame: pd.DataFrame) -> Prediction:
        with self.lock:
            self.calls.append(len(frame))
        time.sleep(self.seconds)
        if (frame["x"] < 0).any():
            raise ValueError("negative x")
        return Prediction(frame["x"].to_numpy() * 2)


class Observer:
    def __init__(self) -> None:
        self.batches: list[tuple[int, int, list[float]]] = []
        self.depths: list[int] = []

    def batch_started(self, rows: int, requests: int, waits: list[float]) -> None:
        self.batches.append((rows, requests, waits))

    def queue_changed(self, rows: int) -> None:
        self.depths.append(rows)


def frame(*values: float) -> pd.DataFrame:
    return pd.DataFrame({"x": list(values)})


async def gather(batcher: MicroBatcher, frames: list[pd.DataFrame]) -> list[Any]:
    return await asyncio.gather(*(batcher.submit(f) for f in frames), return_exceptions=True)


async def closed_loop(batcher: MicroBatcher, clients: int, requests: int) -> None:
    """``clients`` concurrent clients, each sending its next request once answered."""

    async def client(i: int) -> None:
        for _ in range(requests):
            await batcher.submit(frame(i))

    await asyncio.gather(*(client(i) for i in range(clients)))


async def test_concurrent_requests_share_one_call_and_get_their_own_rows() -> None:
    model, observer = Model(), Observer()
    with ThreadPoolExecutor(1) as executor:
        batcher = MicroBatcher(
            model, executor, max_batch_size=64, max_latency_ms=50, observer=observer
        )
        results = await gather(batcher, [frame(i, i + 0.5) for i in range(10)])
        await batcher.close()
    assert model.calls == [20]
    for i, result in enumerate(results):
        assert result.predictions.tolist() == [2 * i, 2 * i + 1]
    ((rows, requests, waits),) = observer.batches
    assert (rows, requests, len(waits)) == (20, 10, 10)
    assert max(observer.depths) == 20 and observer.depths[-1] == 0


async def test_batches_never_exceed_max_batch_size_and_a_big_request_runs_alone() -> None:
    model = Model()
    with ThreadPoolExecutor(1) as executor:
        batcher = MicroBatcher(model, executor, max_batch_size=4, max_latency_ms=50)
        frames = [frame(1, 2, 3), frame(4), frame(5, 6), frame(*range(10)), frame(7)]
        results = await gather(batcher, frames)
        await batcher.close()
    assert model.calls == [4, 2, 10, 1]
    assert [r.predictions.tolist() for r in results][:3] == [[2, 4, 6], [8], [10, 12]]


async def test_a_lone_request_waits_for_company_at_most_max_latency() -> None:
    model = Model()
    with ThreadPoolExecutor(1) as executor:
        batcher = MicroBatcher(model, executor, max_batch_size=64, max_latency_ms=60)
        waited = []
        for _ in range(2):  # idle; then after a batch of three: both wait in vain
            started = time.perf_counter()
            await batcher.submit(frame(1))
            waited.append(time.perf_counter() - started)
            await gather(batcher, [frame(1), frame(2), frame(3)])
        await batcher.close()
    assert model.calls == [1, 3, 1, 3]
    assert all(0.055 < seconds < 0.5 for seconds in waited)


async def test_closed_loop_clients_are_not_kept_waiting_once_all_are_back() -> None:
    # Four clients each sending their next request when answered: every batch holds
    # the four, dispatched as soon as the last is back rather than after 200 ms.
    model = Model(seconds=0.002)
    with ThreadPoolExecutor(1) as executor:
        batcher = MicroBatcher(model, executor, max_batch_size=64, max_latency_ms=200)
        started = time.perf_counter()
        await closed_loop(batcher, clients=4, requests=10)
        elapsed = time.perf_counter() - started
        await batcher.close()
    assert model.calls == [4] * 10
    assert elapsed < 1.0  # 10 rounds of 200 ms waiting would take 2 s


async def test_under_load_batches_grow_while_the_model_is_busy() -> None:
    model = Model(seconds=0.02)
    with ThreadPoolExecutor(1) as executor:
        batcher = MicroBatcher(model, executor, max_batch_size=64, max_latency_ms=0)
        await closed_loop(batcher, clients=16, requests=5)
        await batcher.close()
    assert sum(model.calls) == 80
    assert max(model.calls) >= 8  # requests queued up during the 20 ms calls


async def test_a_failing_request_fails_alone() -> None:
    model = Model()
    with ThreadPoolExecutor(1) as executor:
        batcher = MicroBatcher(model, executor, max_batch_size=64, max_latency_ms=50)
        results = await gather(batcher, [frame(1), frame(-1), frame(2)])
        await batcher.close()
    assert results[0].predictions.tolist() == [2]
    assert isinstance(results[1], ValueError)
    assert results[2].predictions.tolist() == [4]


async def test_close_finishes_queued_requests_and_later_ones_run_unbatched() -> None:
    model = Model()
    with ThreadPoolExecutor(1) as executor:
        batcher = MicroBatcher(model, executor, max_batch_size=64, max_latency_ms=1000)
        pending = asyncio.ensure_future(batcher.submit(frame(3)))
        await asyncio.sleep(0.01)
        await batcher.close()  # does not wait the full second
        late = await batcher.submit(frame(4))
    assert (await pending).predictions.tolist() == [6]
    assert late.predictions.tolist() == [8]
    assert np.array_equal(model.calls, [1, 1])
