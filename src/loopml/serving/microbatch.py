"""Adaptive micro-batching: concurrent requests to one model become one model call.

A batch holds at most ``max_batch_size`` rows (a bigger request runs alone, never split).
One batch runs at a time in the executor's thread, so while it runs the next requests
queue up: under load batches grow by themselves. The queue's oldest request waits for
company at most ``max_latency_ms``, and only while fewer requests wait than the last
batch held: clients that send their next request when answered (a closed loop: 32
connections of a load balancer, a service's thread pool) come back together, and once
they have there is no one else to wait for. Waiting the whole ``max_latency_ms`` for them
each time left a third of two workers' CPU idle. A lone request still waits the whole
``max_latency_ms`` (an idle server adds at most that): sent one at a time, requests would
otherwise each run alone at a latency of a few milliseconds, too noisy for a canary's
latency guard that compares two arms' p99. Batch sizes, queue waits and depth go to the
observer (metrics), so what batching does to latency is visible, not a black box.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import pandas as pd

from loopml.serving.inputs import RowBlock

if TYPE_CHECKING:
    from loopml.serving.served import Prediction

_Rows = pd.DataFrame | RowBlock

__all__ = ["BatchObserver", "MicroBatcher", "PredictionObserver"]

logger = logging.getLogger("loopml.serving")


class BatchObserver(Protocol):
    """Receives what the batcher does; the server's metrics implement it."""

    def batch_started(self, rows: int, requests: int, waits: list[float]) -> None: ...

    def queue_changed(self, rows: int) -> None: ...


class PredictionObserver(BatchObserver, Protocol):
    """An observer that also sees each model call's answers (the prediction
    distribution is counted once per call, not once per request)."""

    def predicted(self, prediction: Prediction) -> None: ...


@dataclass(slots=True)
class _Pending:
    frame: _Rows
    future: asyncio.Future[Prediction]
    arrived: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Gathers queued frames into model calls of ``run`` in ``executor``.

    Args:
        run: Predicts one frame (blocking); it runs in the executor.
        max_batch_size: Rows per call at most.
        max_latency_ms: The longest the oldest queued request waits for company.
    """

    def __init__(
        self,
        run: Callable[[_Rows], Prediction],
        executor: Executor | None,
        *,
        max_batch_size: int,
        max_latency_ms: float,
        observer: BatchObserver | None = None,
    ) -> None:
        self._run = run
        self._executor = executor
        self._max_rows = max_batch_size
        self._max_wait = max_latency_ms / 1000
        self._observer = observer
        self._predicted = getattr(observer, "predicted", None)
        self._pending: deque[_Pending] = deque()
        self._rows = 0
        self._expected = 2  # requests the last batch held (at least 2): how many to wait for
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def queued_rows(self) -> int:
        return self._rows

    async def submit(self, frame: _Rows) -> Prediction:
        """The predictions for ``frame`` (a DataFrame or a :class:`RowBlock`), computed in
        some batch."""
        loop = asyncio.get_running_loop()
        if self._closing:  # swapped out while this request was being checked
            return self._seen(await loop.run_in_executor(self._executor, self._run, frame))
        pending = _Pending(frame, loop.create_future())
        self._pending.append(pending)
        self._queued(len(frame))
        self._arrived.set()
        if self._task is None:
            self._task = loop.create_task(self._collect(), name="loopml-microbatcher")
        return await pending.future

    async def close(self) -> None:
        """Runs what is queued, then stops; later submissions run unbatched."""
        self._closing = True
        self._arrived.set()
        if self._task is not None:
            await self._task

    async def _collect(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._arrived.clear()
                await self._arrived.wait()
                continue
            deadline = self._pending[0].arrived + self._max_wait
            while (
                self._rows < self._max_rows
                and len(self._pending) < self._expected
                and not self._closing
            ):
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except TimeoutError:
                    break
            batch = self._take()
            self._expected = max(2, len(batch))
            await self._dispatch(batch)

    def _take(self) -> list[_Pending]:
        batch: list[_Pending] = []
        rows = 0
        while self._pending and (not batch or rows + len(self._pending[0].frame) <= self._max_rows):
            pending = self._pending.popleft()
            batch.append(pending)
            rows += len(pending.frame)
        self._queued(-rows)
        return batch

    async def _dispatch(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        frames = [pending.frame for pending in batch]
        rows = sum(len(frame) for frame in frames)
        if self._observer is not None:
            waits = [started - pending.arrived for pending in batch]
            self._observer.batch_started(rows, len(batch), waits)
        try:
            frame = _join(frames)
            result = await loop.run_in_executor(self._executor, self._run, frame)
            if len(result.predictions) != rows:
                raise RuntimeError(f"the model returned {len(result.predictions)} rows for {rows}")
            self._seen(result)
        except Exception as error:
            if len(batch) == 1:
                _settle(batch[0], error=error)
                return
            # One request's rows may be what breaks the model: retry each alone, so
            # only that request fails.
            logger.warning(
                "A batch of %d requests failed (%s); retrying each alone.", len(batch), error
            )
            for pending in batch:
                try:
                    _settle(
                        pending,
                        self._seen(
                            await loop.run_in_executor(self._executor, self._run, pending.frame)
                        ),
                    )
                except Exception as alone:
                    _settle(pending, error=alone)
            return
        offset = 0
        for pending in batch:
            count = len(pending.frame)
            _settle(pending, result.rows(offset, offset + count))
            offset += count

    def _seen(self, result: Prediction) -> Prediction:
        if self._predicted is not None:
            self._predicted(result)
        return result

    def _queued(self, rows: int) -> None:
        self._rows += rows
        if self._observer is not None:
            self._observer.queue_changed(self._rows)


def _join(frames: list[_Rows]) -> _Rows:
    """One model call's rows: blocks of one signature join as one array (no pandas);
    anything else as one DataFrame."""
    if len(frames) == 1:
        return frames[0]
    first = frames[0]
    if isinstance(first, RowBlock) and all(
        isinstance(frame, RowBlock)
        and (frame.columns is first.columns or frame.columns.equals(first.columns))
        and frame.values.dtype == first.values.dtype
        for frame in frames
    ):
        return RowBlock.join(frames)  # type: ignore[arg-type]
    as_frames = [frame.frame() if isinstance(frame, RowBlock) else frame for frame in frames]
    return pd.concat(as_frames, ignore_index=True)


def _settle(
    pending: _Pending, result: Prediction | None = None, error: BaseException | None = None
) -> None:
    if pending.future.done():  # the client went away
        return
    if error is not None:
        pending.future.set_exception(error)
    else:
        pending.future.set_result(result)  # type: ignore[arg-type]
