"""Pipelines: steps in plain Python or YAML, a DAG with caching, retries and resume.

Example:
    >>> from loopml.pipelines import pipeline, step, run_pipeline
    >>> @step
    ... def load(n: int) -> list[int]:
    ...     return list(range(n))
    >>> @step(retries=2)
    ... def total(values: list[int]) -> int:
    ...     return sum(values)
    >>> @pipeline
    ... def numbers(n: int = 10):
    ...     return total(load(n))
    >>> run = run_pipeline(ws, numbers, {"n": 5})
    >>> run.status, run.result
    ('SUCCEEDED', 10)

``run_pipeline`` and ``resume`` are the interface the CLI, the scheduler and the
triggers use; schedules and triggers live in ``schedule``/``triggers``/``scheduler``.
The built-in continuous-training pipeline of a project file (``loopml.yaml``, read by
``project``) is in ``ct``: ``run_ct(ws)``, or the target ``ct`` wherever one is taken.
"""

from loopml.pipelines.builtin import BUILTINS, GateFailedError
from loopml.pipelines.ct import (
    ApprovalPendingError,
    CanaryFailedError,
    ContinuousTraining,
    run_ct,
)
from loopml.pipelines.dag import Node, Pipeline, pipeline
from loopml.pipelines.project import ProjectConfig, ProjectError, load_project
from loopml.pipelines.records import PipelineFailedError, PipelineRun, StepRun, StepWaiting
from loopml.pipelines.runner import (
    get_run,
    list_runs,
    resume,
    run_pipeline,
    step_output,
)
from loopml.pipelines.schedule import Schedule, add_schedule, list_schedules, remove_schedule
from loopml.pipelines.scheduler import Scheduler
from loopml.pipelines.step import Step, step
from loopml.pipelines.triggers import (
    Firing,
    Trigger,
    add_trigger,
    fire,
    firings,
    list_triggers,
    poll_triggers,
    remove_trigger,
)

__all__ = [
    "BUILTINS",
    "ApprovalPendingError",
    "CanaryFailedError",
    "ContinuousTraining",
    "Firing",
    "GateFailedError",
    "Node",
    "Pipeline",
    "PipelineFailedError",
    "PipelineRun",
    "ProjectConfig",
    "ProjectError",
    "Schedule",
    "Scheduler",
    "Step",
    "StepRun",
    "StepWaiting",
    "Trigger",
    "add_schedule",
    "add_trigger",
    "fire",
    "firings",
    "get_run",
    "list_runs",
    "list_schedules",
    "list_triggers",
    "load_project",
    "pipeline",
    "poll_triggers",
    "remove_schedule",
    "remove_trigger",
    "resume",
    "run_ct",
    "run_pipeline",
    "step",
    "step_output",
]
