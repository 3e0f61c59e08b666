"""Running pipelines: ``run_pipeline``, ``resume`` and reading stored runs.

A run whose heartbeat stops (its process was killed) is marked FAILED by the next
``list_runs``/``get_run``/``resume``, with "no heartbeat since ..." as its error. A
WAITING run has ended (its driver is gone on purpose): nothing expires it, ``resume``
continues it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml._time import now_ms
from loopml.errors import ConflictError, NotFoundError, ValidationError
from loopml.pipelines._driver import DONE, HOST, Driver, OnUpdate, heartbeat_seconds, repository
from loopml.pipelines.dag import Pipeline, load_pipeline
from loopml.pipelines.executors import EXECUTORS
from loopml.pipelines.outputs import load_output, output_exists
from loopml.pipelines.records import PipelineRun

if TYPE_CHECKING:
    from loopml.workspace import Workspace

__all__ = ["expire_stale", "get_run", "list_runs", "resume", "run_pipeline", "step_output"]


def run_pipeline(
    ws: Workspace,
    target: Pipeline | str | Path,
    params: Mapping[str, Any] | None = None,
    *,
    executor: str = "local",
    cache: bool = True,
    reason: str | None = None,
    trigger: str | None = None,
    workers: int | None = None,
    on_update: OnUpdate | None = None,
) -> PipelineRun:
    """Runs a pipeline and returns its run (FAILED and WAITING runs are returned, not
    raised: ``run.raise_for_status()`` raises).

    Args:
        ws: The workspace that stores the run, its steps and their outputs.
        target: A :class:`Pipeline`, ``"module:function"``, ``"file.py:function"`` or a
            YAML file of built-in steps.
        params: The pipeline's params (arguments of the pipeline function, or
            ``${params.x}`` of a YAML pipeline).
        executor: ``local`` (in this process), ``process`` (independent steps in
            parallel processes) or ``ray`` (each step a Ray task).
        cache: False executes every step even when an earlier one matches (--no-cache).
        reason: Why it runs (a schedule, an alert, a person), kept on the run.
        trigger: What started it (``manual``, ``schedule:<name>``, ``alert:<id>``, ...).
        workers: How many steps may run at once (process and ray executors).
        on_update: Called after each state change of a step (the CLI's live view).

    Raises:
        ValidationError: the target cannot be loaded, the params do not fit, or the DAG
            has a cycle, an unknown input or mismatched types (before anything runs).
    """
    _check_executor(executor)
    pipeline = load_pipeline(target)
    graph = pipeline.graph(params)
    bound = pipeline.bind_params(params)
    driver = Driver(ws, pipeline, graph, bound, executor, cache, workers, on_update)
    return driver.run(reason=reason, trigger=trigger)


def resume(
    ws: Workspace,
    run_id: str,
    *,
    executor: str | None = None,
    cache: bool = True,
    pipeline: Pipeline | None = None,
    on_update: OnUpdate | None = None,
) -> PipelineRun:
    """Continues a failed or waiting pipeline run as a new run: the steps that failed or
    waited and what depends on them execute again (a waiting step passes once what it
    waited for came); every other step reuses the old run's output.

    Args:
        ws: The workspace.
        run_id: The failed or waiting run (a unique prefix of at least 6 characters).
        executor: Where to execute (the old run's executor by default).
        cache: As in :func:`run_pipeline`, for the steps that execute again.
        pipeline: The pipeline object, for a run started from one that cannot be
            loaded again by name (defined inside a function or in ``__main__``).
        on_update: As in :func:`run_pipeline`.
    """
    if executor is not None:
        _check_executor(executor)
    old = get_run(ws, run_id)
    if old.status == "SUCCEEDED":
        raise ValidationError(
            f"Pipeline run {old.run_id[:8]} succeeded; there is nothing to resume. Run the "
            "pipeline again (`loopml pipeline run`) to execute it anew."
        )
    if old.status in ("RUNNING", "PENDING"):
        raise ConflictError(
            f"Pipeline run {old.run_id[:8]} is still running (its heartbeat is alive); "
            "wait for it to end before resuming."
        )
    if pipeline is None:
        if old.target is None:
            raise ValidationError(
                f"Pipeline run {old.run_id[:8]} was started from a pipeline object that cannot "
                "be loaded by name; pass it: resume(ws, run_id, pipeline=...)."
            )
        pipeline = load_pipeline(old.target)
    graph = pipeline.graph(old.params)
    previous = {s.step: s for s in old.steps}
    failed = [
        node.name
        for node in graph.nodes
        if node.name not in previous
        or previous[node.name].status not in DONE
        or not output_exists(ws, previous[node.name].outputs)
    ]
    again = graph.downstream(failed)
    reuse = {name: s for name, s in previous.items() if name not in again and name in graph.by_name}
    driver = Driver(
        ws,
        pipeline,
        graph,
        old.params,
        executor or old.executor,
        cache,
        None,
        on_update,
        reuse=reuse,
    )
    return driver.run(
        reason=f"resume of run {old.run_id[:8]}" + (f" ({old.reason})" if old.reason else ""),
        trigger=old.trigger,
        resumed_from=old.run_id,
    )


def _check_executor(name: str) -> None:
    if name not in EXECUTORS:
        raise ValidationError(
            f"Unknown executor {name!r}; use one of {', '.join(EXECUTORS)} (local runs in this "
            "process, process runs independent steps in parallel, ray on a Ray cluster)."
        )


def get_run(ws: Workspace, run_id: str) -> PipelineRun:
    """A stored pipeline run by id or unique prefix (at least 6 characters)."""
    expire_stale(ws)
    store = repository(ws)
    if len(run_id) != 32:
        if len(run_id) < 6:
            raise NotFoundError(
                f"No pipeline run {run_id!r}: give its id or at least 6 of its first "
                "characters (`loopml pipeline list` shows them)."
            )
        matches = store.ids_starting_with(run_id)
        if len(matches) > 1:
            raise ValidationError(f"More than one pipeline run id starts with {run_id!r}.")
        run_id = matches[0] if matches else run_id
    record = store.get_run(run_id)
    if record is None:
        raise NotFoundError(
            f"No pipeline run {run_id!r}; `loopml pipeline list` shows the stored runs."
        )
    return PipelineRun.from_record(record)


def list_runs(
    ws: Workspace, pipeline: str | None = None, status: str | None = None, limit: int = 50
) -> list[PipelineRun]:
    """Stored pipeline runs, newest first (runs whose heartbeat stopped are failed first)."""
    expire_stale(ws)
    records = repository(ws).list_runs(pipeline, status.upper() if status else None, limit)
    return [PipelineRun.from_record(r) for r in records]


def step_output(ws: Workspace, run_id: str, step: str) -> Any:
    """The output value of a step of a stored run (loaded from the artifact store)."""
    found = get_run(ws, run_id).step(step)
    if found.outputs is None:
        raise NotFoundError(
            f"Step {step!r} of pipeline run {run_id[:8]} has no output ({found.status})."
        )
    return load_output(ws, found.outputs)


def expire_stale(ws: Workspace) -> list[str]:
    """Marks FAILED the RUNNING runs whose driver stopped beating; returns their ids."""
    interval = heartbeat_seconds()
    now = now_ms()
    store = repository(ws)
    dead: list[str] = []
    for run in store.list_runs(status="RUNNING", limit=1000):
        owner = run.owner or ""
        host, _, rest = owner.partition(":")
        pid = rest.partition(":")[0]
        age = now - (run.heartbeat_at or 0)
        if host == HOST and pid.isdigit() and age > 2000 * interval and not _alive(int(pid)):
            dead.append(owner)
    return store.expire_stale(now - int(6000 * interval), dead)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
