"""The model server's settings: one frozen dataclass that the CLI and ``create_app`` share."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from loopml.errors import ValidationError

__all__ = ["RUNTIMES", "ServeOptions"]

RUNTIMES = ("pickle", "onnx")


@dataclass(frozen=True)
class ServeOptions:
    """How a model is served.

    Args:
        runtime: ``pickle`` (the model object itself) or ``onnx`` (the version's ONNX
            export, run by ONNX Runtime).
        batching: Gather concurrent requests into one model call.
        max_batch_size: Rows per model call at most (a larger request runs alone).
        max_latency_ms: The longest the first queued request waits for others to join it
            (it waits only while fewer requests are queued than the last batch held).
        log_predictions: Append every prediction to the workspace's prediction log.
        max_body_mb: Larger request bodies are refused with 413.
        poll_seconds: How often an alias reference is re-resolved (hot swap); 0 turns
            following the alias off.
        name: The name the model is served under; by default the registered name, or
            the bundle folder's name.
        health_interval: Seconds between the service-health snapshots written to the
            workspace's monitored series (``health.p99_ms``, ...); 0 turns them off.
    """

    runtime: str = "pickle"
    batching: bool = True
    max_batch_size: int = 64
    max_latency_ms: float = 2.0
    log_predictions: bool = True
    max_body_mb: float = 8.0
    poll_seconds: float = 2.0
    name: str | None = None
    health_interval: float = 60.0

    def __post_init__(self) -> None:
        problems = []
        if self.runtime not in RUNTIMES:
            problems.append(f"runtime must be one of {', '.join(RUNTIMES)}, got {self.runtime!r}")
        if self.max_batch_size < 1:
            problems.append(f"max_batch_size must be at least 1, got {self.max_batch_size}")
        if self.max_latency_ms < 0:
            problems.append(f"max_latency_ms must be 0 or more, got {self.max_latency_ms}")
        if self.max_body_mb <= 0:
            problems.append(f"max_body_mb must be positive, got {self.max_body_mb}")
        if self.poll_seconds < 0:
            problems.append(f"poll_seconds must be 0 or more, got {self.poll_seconds}")
        if self.health_interval < 0:
            problems.append(f"health_interval must be 0 or more, got {self.health_interval}")
        if problems:
            raise ValidationError("Invalid serving options: " + "; ".join(problems) + ".")

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
