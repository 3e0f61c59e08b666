"""Plain records the store hands out; SQLAlchemy rows never leave ``loopml.store``."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ArtifactInfo", "Experiment", "Metric", "RunInfo", "RunRecord", "RunStatus"]


class RunStatus:
    """The states a run can be in."""

    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"
    ALL = (RUNNING, FINISHED, FAILED, KILLED)


@dataclass(frozen=True)
class Experiment:
    experiment_id: int
    name: str
    description: str | None
    created_at: int
    deleted: bool


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    experiment_id: int
    name: str
    status: str
    start_time: int
    end_time: int | None
    parent_run_id: str | None
    error: str | None
    user: str | None
    source: str | None
    git_commit: str | None
    git_dirty: bool | None
    git_diff_sha256: str | None
    environment_id: str | None
    deleted: bool


@dataclass(frozen=True)
class Metric:
    key: str
    value: float
    step: int
    timestamp: int


@dataclass(frozen=True)
class ArtifactInfo:
    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class RunRecord:
    """A run with its latest metrics, params and tags."""

    info: RunInfo
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
