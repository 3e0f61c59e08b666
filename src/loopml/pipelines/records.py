"""What a pipeline run leaves behind: :class:`PipelineRun` and its :class:`StepRun` s.

A run ends SUCCEEDED, FAILED, or WAITING: a step raised :class:`StepWaiting` because it
cannot go on until something outside the pipeline happens (a person approves a model).
``resume`` continues a WAITING run as it continues a FAILED one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loopml.errors import LoopmlError
from loopml.store.repositories.pipelines import PipelineRunRecord, StepRunRecord

__all__ = ["PipelineFailedError", "PipelineRun", "StepRun", "StepWaiting"]

StepRun = StepRunRecord
"""One step of a pipeline run: status, cache key, attempts, inputs, outputs, logs."""


class PipelineFailedError(LoopmlError, RuntimeError):
    """A pipeline run failed; ``loopml pipeline show <id>`` has each step's traceback."""


class StepWaiting(LoopmlError):
    """Raised by a step that cannot go on yet (it waits for an approval, say): the step and
    the run end WAITING, not FAILED, without retries; steps that do not depend on it still
    run. The message is the run's ``error``: say what the run waits for and how to provide
    it; ``resume`` (``loopml pipeline resume <run>``) then runs the step again.

    Example:
        >>> @step
        ... def sign_off(ws, model: str) -> str:
        ...     if not ws.registry.approvals("churn", 3, "production"):
        ...         raise StepWaiting("waiting for an approval of churn 3: run `loopml models "
        ...                           "approve churn 3 --alias production`, then resume")
        ...     return model
    """

    http_status = 409
    headline = "Waiting"


@dataclass
class PipelineRun(PipelineRunRecord):
    """A pipeline run: the stored record, plus the result when this process ran it."""

    result: Any = field(default=None, repr=False)

    @classmethod
    def from_record(cls, record: PipelineRunRecord, result: Any = None) -> PipelineRun:
        values = {name: getattr(record, name) for name in record.__dataclass_fields__}
        return cls(**values, result=result)

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCEEDED"

    @property
    def seconds(self) -> float | None:
        return None if self.ended_at is None else (self.ended_at - self.started_at) / 1000

    def step(self, name: str) -> StepRun:
        """The step run called ``name``."""
        for found in self.steps:
            if found.step == name:
                return found
        raise KeyError(f"Pipeline run {self.run_id[:8]} has no step {name!r}.")

    @property
    def cache_hits(self) -> int:
        return sum(1 for s in self.steps if s.status == "CACHED")

    def raise_for_status(self) -> PipelineRun:
        """Returns the run if it succeeded.

        Raises:
            StepWaiting: The run waits (``error`` says for what); resume it once that came.
            PipelineFailedError: The run failed.
        """
        if self.status == "WAITING":
            raise StepWaiting(
                f"Pipeline {self.pipeline!r} run {self.run_id[:8]} is waiting: {self.error} "
                f"`loopml pipeline resume {self.run_id[:8]}` continues it."
            )
        if self.status != "SUCCEEDED":
            raise PipelineFailedError(
                f"Pipeline {self.pipeline!r} run {self.run_id[:8]} {self.status.lower()}: "
                f"{self.error}. See `loopml pipeline show {self.run_id[:8]}`; "
                f"`loopml pipeline resume {self.run_id[:8]}` re-runs what failed."
            )
        return self
