"""Where the trials of ``ws.tune`` compute: in this process, or as Ray tasks.

Not public: :func:`loopml.training.search.tune` is the interface. The unit of work is one
*step*: fit on one cross-validation fold (or the holdout's train part) and score on the
other rows. A step is a pure function of its inputs and returns plain scores; the driver
process asks Optuna for trials, reports each step's score (so pruners can stop a trial
between folds), and writes every run and trial itself. Workers therefore never open
the workspace: a Ray cluster needs loopml and the model's libraries installed, not
access to the metadata database or the artifact store.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Protocol

from loopml._ray import connect_ray, release_ray

__all__ = ["Executor", "LocalExecutor", "RayExecutor", "run_step"]


def run_step(
    fit: Any,
    train_frame: Any,
    valid_frame: Any,
    train_rows: Any,
    valid_rows: Any,
    target: str,
    features: list[str],
    task: str,
    names: list[str],
) -> dict[str, float]:
    """Fits on the train rows and scores on the valid rows (all rows when None)."""
    from loopml.training._metrics import compute_metrics

    train_df = train_frame if train_rows is None else train_frame.iloc[train_rows]
    valid_df = valid_frame if valid_rows is None else valid_frame.iloc[valid_rows]
    started = time.perf_counter()
    model = fit(train_df, valid_df, train_df[target])
    seconds = time.perf_counter() - started
    scores = compute_metrics(model, valid_df[features], valid_df[target], task, names)
    return {**scores, "fit_seconds": seconds}


class Executor(Protocol):
    """Runs steps and hands back their outcomes (scores, or the exception raised)."""

    capacity: int

    def put(self, value: Any) -> Any:
        """A handle on a large input shared by many steps (the data)."""

    def submit(self, key: Any, args: tuple[Any, ...]) -> None:
        """Starts ``run_step(*args)``; its outcome comes back from :meth:`next` with ``key``."""

    def next(self) -> tuple[Any, dict[str, float] | BaseException]:
        """The key and outcome of a finished step (waits for one)."""

    def close(self) -> None:
        """Cancels what is still running and releases what was started."""


class LocalExecutor:
    """One step at a time, in this process."""

    capacity = 1

    def __init__(self) -> None:
        self._done: deque[tuple[Any, dict[str, float] | BaseException]] = deque()

    def put(self, value: Any) -> Any:
        return value

    def submit(self, key: Any, args: tuple[Any, ...]) -> None:
        try:
            self._done.append((key, run_step(*args)))
        except Exception as error:
            self._done.append((key, error))

    def next(self) -> tuple[Any, dict[str, float] | BaseException]:
        return self._done.popleft()

    def close(self) -> None:
        self._done.clear()


class RayExecutor:
    """Steps as Ray tasks (one CPU each), up to ``workers`` trials at a time.

    Connects to the running Ray of this process, else to ``LOOPML_RAY_ADDRESS`` (a
    cluster, or ``auto``), else starts a local Ray with ``workers`` CPUs (the machine's
    CPUs by default) and shuts it down again in :meth:`close`.
    """

    def __init__(self, workers: int | None = None, address: str | None = None) -> None:
        self._ray, self._started, self.capacity = connect_ray(
            workers,
            address,
            missing="executor='ray' needs Ray; run: pip install 'loopml[ray]' (or use "
            "executor='local').",
        )
        self._remote = self._ray.remote(num_cpus=1, max_retries=0)(run_step)
        self._pending: dict[Any, Any] = {}

    def put(self, value: Any) -> Any:
        return self._ray.put(value)

    def submit(self, key: Any, args: tuple[Any, ...]) -> None:
        self._pending[self._remote.remote(*args)] = key

    def next(self) -> tuple[Any, dict[str, float] | BaseException]:
        ready, _ = self._ray.wait(list(self._pending), num_returns=1)
        key = self._pending.pop(ready[0])
        try:
            return key, self._ray.get(ready[0])
        except Exception as error:
            return key, error

    def close(self) -> None:
        release_ray(self._ray, self._pending, self._started)
        self._pending.clear()
