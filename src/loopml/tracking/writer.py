"""The background metric writer: ``log_metric`` appends to memory, one thread writes batches.

What a process can lose: metrics are written at most ``flush_seconds`` (default 1 s,
``LOOPML_METRIC_FLUSH_SECONDS``) after they are logged, or sooner once ``max_pending``
points wait. A run's end, ``Run.flush()`` and interpreter exit write everything. So a
process killed with SIGKILL loses at most the metrics it logged in its last
``flush_seconds`` (plus the time of one batch write); a crash that lets Python exit
loses nothing.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from loopml.store.repositories.runs import MetricPoint

__all__ = ["MetricWriter"]

_WRITERS: weakref.WeakSet[MetricWriter] = weakref.WeakSet()


class MetricWriter:
    """Buffers metric points and writes them in batches on a daemon thread.

    Args:
        write: Stores one batch plus an optional extra write from ``flush`` in one
            transaction (and retries transient lock errors itself).
        flush_seconds: Longest time a point waits in memory.
        max_pending: A batch is written early once this many points wait.
    """

    def __init__(
        self,
        write: Callable[[Sequence[MetricPoint], Any], None],
        flush_seconds: float = 1.0,
        max_pending: int = 20_000,
    ) -> None:
        self._write = write
        self.flush_seconds = flush_seconds
        self.max_pending = max_pending
        self._pending: list[MetricPoint] = []
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._done = threading.Condition(self._lock)
        self._queued = 0  # points handed over so far
        self._written = 0  # points written (or failed) so far
        self._error: BaseException | None = None
        self._closed = False
        self._flush_requested = False
        self._thread: threading.Thread | None = None
        _WRITERS.add(self)

    def add(self, point: MetricPoint) -> None:
        with self._lock:
            self._pending.append(point)
            self._queued += 1
            self._start_locked()
            if len(self._pending) >= self.max_pending:
                self._wake.notify()

    def extend(self, points: Sequence[MetricPoint]) -> None:
        with self._lock:
            self._pending.extend(points)
            self._queued += len(points)
            self._start_locked()
            if len(self._pending) >= self.max_pending:
                self._wake.notify()

    def flush(self, extra: Any = None) -> None:
        """Blocks until every point added before the call is stored; re-raises a write error.

        The caller writes what is still pending itself, rather than waking the thread
        and waiting for it, and then waits only for a batch the thread has in flight.
        ``extra`` is handed to the write function with that batch (a run's end, say).
        """
        with self._lock:
            target = self._queued
            batch, self._pending = self._pending, []
        if batch or extra is not None:
            try:
                self._write(batch, extra)
            except BaseException as failure:
                with self._lock:
                    self._error = failure
            with self._lock:
                self._written += len(batch)
                self._done.notify_all()
        with self._lock:
            while self._written < target and self._thread is not None and self._thread.is_alive():
                self._done.wait(timeout=0.5)
            error, self._error = self._error, None
        if error is not None:
            raise error

    def close(self) -> None:
        try:
            self.flush()
        finally:
            with self._lock:
                self._closed = True
                self._flush_requested = True
                self._wake.notify()

    def _start_locked(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._loop, name="loopml-metric-writer", daemon=True
            )
            self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._lock:
                deadline = time.monotonic() + self.flush_seconds
                while (
                    not self._closed
                    and not self._flush_requested
                    and len(self._pending) < self.max_pending
                ):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._wake.wait(remaining)
                self._flush_requested = False
                batch, self._pending = self._pending, []
                if not batch and self._closed:
                    return
            if batch:
                try:
                    self._write(batch, None)
                except BaseException as error:  # reported to the next flush() caller
                    with self._lock:
                        self._error = error
            with self._lock:
                self._written += len(batch)
                self._done.notify_all()


@atexit.register
def _flush_all_at_exit() -> None:
    for writer in list(_WRITERS):
        with contextlib.suppress(Exception):
            writer.close()
