"""The same pipeline on every executor: in-process, parallel processes and Ray."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import loopml
from loopml.errors import ValidationError
from loopml.pipelines import list_runs, run_pipeline
from tests.pipelines import steps


def _hashes(run: loopml.pipelines.PipelineRun) -> dict[str, str]:
    return {s.step: s.outputs["sha256"] for s in run.steps if s.outputs}


def test_parallel_processes_give_the_local_results(ws: loopml.Workspace) -> None:
    local = run_pipeline(ws, steps.stats, {"n": 30, "seed": 1})
    parallel = run_pipeline(ws, steps.stats, {"n": 30, "seed": 1}, executor="process", cache=False)
    branches = run_pipeline(ws, steps.two_branches, executor="process", workers=2, cache=False)

    assert parallel.status == "SUCCEEDED" and parallel.executor == "process"
    assert parallel.result == local.result and _hashes(parallel) == _hashes(local)
    assert parallel.step("numbers").logs == "making 30 rows\n"  # captured in the worker
    first, second = branches.result
    assert os.getpid() not in (first, second)  # the steps ran in worker processes


def test_a_failing_step_reports_its_error_from_a_worker(
    ws: loopml.Workspace, tmp_path: Path
) -> None:
    run = run_pipeline(
        ws, steps.retrying, {"marker": str(tmp_path / "m"), "fail_times": 9}, executor="process"
    )

    assert run.status == "FAILED" and run.step("flaky").attempts == 3
    assert run.error == "step 'flaky' failed: RuntimeError: flaky failure 3"


def test_ray_tasks_give_the_local_results(ws: loopml.Workspace) -> None:
    pytest.importorskip("ray")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        local = run_pipeline(ws, steps.stats, {"n": 25})
        remote = run_pipeline(ws, steps.stats, {"n": 25}, executor="ray", cache=False)
        timed = run_pipeline(ws, steps.too_slow, executor="ray")
    finally:
        ray.shutdown()

    assert remote.status == "SUCCEEDED" and remote.executor == "ray"
    assert remote.result == local.result and _hashes(remote) == _hashes(local)
    assert timed.status == "FAILED" and "took longer than 0.3s" in (timed.error or "")


def test_an_unknown_executor_is_refused(ws: loopml.Workspace) -> None:
    with pytest.raises(ValidationError, match="Unknown executor 'dask'"):
        run_pipeline(ws, steps.stats, executor="dask")
    assert list_runs(ws) == []


def test_a_worker_killed_mid_step_fails_the_step_not_the_pool(ws: loopml.Workspace) -> None:
    run = run_pipeline(ws, steps.dying, executor="process", workers=1)

    assert run.status == "FAILED"
    assert run.step("die").status == "FAILED"
    assert "worker process running the step died" in (run.step("die").error or "")
    # one worker: the independent steps ran after it, on a fresh pool
    assert [run.step(s).status for s in ("source", "upper")] == ["SUCCEEDED", "SUCCEEDED"]
    assert [r.status for r in list_runs(ws)] == ["FAILED"]
