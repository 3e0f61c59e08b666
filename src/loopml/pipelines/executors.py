"""Where steps execute: in this process, in parallel processes, or as Ray tasks.

Not public: ``run_pipeline(executor=...)`` is the interface. Every executor runs
:func:`loopml.pipelines._worker.execute` on a step (so all have retries, backoff and
timeouts) and hands back its outcome; the driver process alone writes pipeline state
to the store.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

from loopml._ray import connect_ray, release_ray
from loopml._time import now_ms
from loopml.errors import ValidationError
from loopml.pipelines._worker import Outcome, StepTask, dumps, execute, execute_pickled

if TYPE_CHECKING:
    from loopml.workspace import Workspace

__all__ = ["EXECUTORS", "Executor", "Outcome", "StepTask", "execute", "make_executor"]

EXECUTORS = ("local", "process", "ray")


class Executor(Protocol):
    """Runs step tasks and hands back outcomes as they finish."""

    name: str
    capacity: int

    def submit(self, task: StepTask) -> None:
        """Starts a task; its outcome comes back from :meth:`next`."""

    def next(self, timeout: float | None) -> tuple[str, Outcome] | None:
        """The node and outcome of a finished task, or None when ``timeout`` passes."""

    def close(self) -> None:
        """Cancels what is still running and releases the workers."""


class LocalExecutor:
    """One step at a time, in this process (the steps share the driver's workspace)."""

    name = "local"
    capacity = 1

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws
        self._done: deque[tuple[str, Outcome]] = deque()

    def submit(self, task: StepTask) -> None:
        self._done.append((task.node, execute(task, self._ws)))

    def next(self, timeout: float | None) -> tuple[str, Outcome] | None:
        return self._done.popleft() if self._done else None

    def close(self) -> None:
        self._done.clear()


class ProcessExecutor:
    """Independent steps in parallel worker processes (``concurrent.futures``)."""

    name = "process"

    def __init__(self, workers: int | None = None) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.capacity = max(1, workers or os.cpu_count() or 1)
        # spawn: the driver has threads (heartbeat, metric writer) that fork would copy.
        self._context = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(self.capacity, mp_context=self._context)
        self._broken = False
        self._pending: dict[Any, str] = {}

    def submit(self, task: StepTask) -> None:
        if self._broken:  # a worker died: the pool refuses work, so start a new one
            from concurrent.futures import ProcessPoolExecutor

            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = ProcessPoolExecutor(self.capacity, mp_context=self._context)
            self._broken = False
        future = self._pool.submit(execute_pickled, dumps(task), list(sys.path))
        self._pending[future] = task.node

    def next(self, timeout: float | None) -> tuple[str, Outcome] | None:
        import pickle
        from concurrent.futures import FIRST_COMPLETED, wait

        if not self._pending:
            return None
        done, _ = wait(list(self._pending), timeout=timeout, return_when=FIRST_COMPLETED)
        if not done:
            return None
        future = done.pop()
        node = self._pending.pop(future)
        try:
            return node, pickle.loads(future.result())
        except Exception as error:  # the worker process died (killed, out of memory)
            self._broken = True
            return node, Outcome(
                ok=False,
                error=f"{type(error).__name__}: the worker process running the step died ({error})",
                started_at=now_ms(),
                ended_at=now_ms(),
            )

    def close(self) -> None:
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor:
    """Each step a Ray task (one CPU). Connects to the running Ray of this process, else
    to ``LOOPML_RAY_ADDRESS`` (a cluster, or ``auto``), else starts a local Ray with
    ``workers`` CPUs (the machine's by default) and shuts it down in :meth:`close`."""

    name = "ray"

    def __init__(self, workers: int | None = None, address: str | None = None) -> None:
        self._ray, self._started, self.capacity = connect_ray(
            workers,
            address,
            missing="executor='ray' needs Ray; run: pip install 'loopml[ray]' (or use "
            "executor='local' or 'process').",
        )
        self._remote = self._ray.remote(num_cpus=1, max_retries=0)(execute_pickled)
        self._pending: dict[Any, str] = {}

    def submit(self, task: StepTask) -> None:
        ref = self._remote.remote(dumps(task), list(sys.path))
        self._pending[ref] = task.node

    def next(self, timeout: float | None) -> tuple[str, Outcome] | None:
        import pickle

        if not self._pending:
            return None
        ready, _ = self._ray.wait(list(self._pending), num_returns=1, timeout=timeout)
        if not ready:
            return None
        node = self._pending.pop(ready[0])
        try:
            return node, pickle.loads(self._ray.get(ready[0]))
        except Exception as error:  # the task's worker died
            return node, Outcome(
                ok=False,
                error=f"{type(error).__name__}: the Ray task running the step failed ({error})",
                started_at=now_ms(),
                ended_at=now_ms(),
            )

    def close(self) -> None:
        release_ray(self._ray, self._pending, self._started)
        self._pending.clear()


def make_executor(name: str, ws: Workspace, workers: int | None = None) -> Executor:
    """The executor called ``name``: ``local``, ``process`` or ``ray``."""
    if name == "local":
        return LocalExecutor(ws)
    if name == "process":
        return ProcessExecutor(workers)
    if name == "ray":
        return RayExecutor(workers)
    raise ValidationError(
        f"Unknown executor {name!r}; use one of {', '.join(EXECUTORS)} (local runs in this "
        "process, process runs independent steps in parallel, ray on a Ray cluster)."
    )
