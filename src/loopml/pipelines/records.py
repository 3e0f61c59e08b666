"""What a pipeline run leaves behind: :class:`PipelineRun` and its :class:`StepRun` s."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loopml.errors import LoopmlError
from loopml.store.repositories.pipelines import PipelineRunRecord, StepRunRecord

__all__ = ["PipelineFailedError", "PipelineRun", "StepRun"]

StepRun = StepRunRecord
"""One step of a pipeline run: status, cache key, attempts, inputs, outputs, logs."""


class PipelineFailedError(LoopmlError, RuntimeError):
    """A pipeline run failed; ``loopml pipeline show <id>`` has each step's traceback."""


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
        """Raises :class:`PipelineFailedError` unless the run succeeded; returns the run."""
        if self.status != "SUCCEEDED":
            raise PipelineFailedError(
                f"Pipeline {self.pipeline!r} run {self.run_id[:8]} {self.status.lower()}: "
                f"{self.error}. See `loopml pipeline show {self.run_id[:8]}`; "
                f"`loopml pipeline resume {self.run_id[:8]}` re-runs what failed."
            )
        return self
