"""Faults: retries with backoff, a failing step and resume, timeouts, a killed driver."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import loopml
from loopml.errors import ValidationError
from loopml.pipelines import get_run, list_runs, resume, run_pipeline
from loopml.pipelines.records import PipelineFailedError
from tests.pipelines import steps

ROOT = Path(__file__).resolve().parents[2]


def test_a_flaky_step_succeeds_on_a_retry(ws: loopml.Workspace, tmp_path: Path) -> None:
    run = run_pipeline(ws, steps.retrying, {"marker": str(tmp_path / "m"), "fail_times": 1})

    assert run.status == "SUCCEEDED" and run.result == "OK AFTER 2"
    flaky = run.step("flaky")
    assert flaky.attempts == 2
    assert flaky.logs is not None and "attempt 1 of step 'flaky' failed" in flaky.logs
    assert "RuntimeError: flaky failure 1" in flaky.logs


def test_a_failing_step_fails_the_run_and_resume_reruns_only_what_failed(
    ws: loopml.Workspace, tmp_path: Path
) -> None:
    marker = tmp_path / "m"
    failed = run_pipeline(ws, steps.resumable, {"marker": str(marker), "fail_times": 5})

    assert failed.status == "FAILED"
    assert failed.error == "step 'flaky' failed: RuntimeError: flaky failure 3"
    flaky = failed.step("flaky")
    assert flaky.attempts == 3 and marker.read_text() == "3"  # 1 try + 2 retries
    assert flaky.traceback is not None and "raise RuntimeError" in flaky.traceback
    assert failed.step("upper_2").status == "SKIPPED"
    assert failed.step("upper").status == "SUCCEEDED"  # the independent branch ran
    with pytest.raises(PipelineFailedError, match="flaky failure 3"):
        failed.raise_for_status()

    resumed = resume(ws, failed.run_id[:8])

    assert resumed.status == "SUCCEEDED", resumed.error
    assert resumed.resumed_from == failed.run_id
    assert resumed.result == {"kept": "KEPT", "flaky": "OK AFTER 6"}
    assert marker.read_text() == "6"  # attempts 4 and 5 failed, the 6th passed
    by_step = {s.step: s for s in resumed.steps}
    for name in ("source", "upper"):  # reused from the failed run, not executed
        assert by_step[name].status == "CACHED"
        assert by_step[name].cached_from == failed.step(name).step_run_id
    assert by_step["flaky"].status == "SUCCEEDED" and by_step["upper_2"].status == "SUCCEEDED"
    with pytest.raises(ValidationError, match="nothing to resume"):
        resume(ws, resumed.run_id)


def test_a_step_over_its_timeout_fails(ws: loopml.Workspace) -> None:
    started = time.perf_counter()
    run = run_pipeline(ws, steps.too_slow)

    assert time.perf_counter() - started < 3
    assert run.status == "FAILED"
    assert "took longer than 0.3s" in (run.error or "")


def test_a_killed_run_is_marked_failed_and_can_be_resumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    flag = tmp_path / "flag"
    flag.write_text("sleep")
    env = {**os.environ, "LOOPML_PIPELINE_HEARTBEAT": "0.1", "PYTHONPATH": str(ROOT)}
    script = (
        "import loopml\nfrom loopml.pipelines import run_pipeline\n"
        f"ws = loopml.Workspace.open({str(home)!r})\n"
        f"run_pipeline(ws, 'tests.pipelines.steps:killable', {{'flag': {str(flag)!r}}})\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 60
        while not Path(str(flag) + ".started").exists():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        process.kill()
        process.wait()
    monkeypatch.setenv("LOOPML_PIPELINE_HEARTBEAT", "0.1")
    time.sleep(0.3)  # two beats missed

    with loopml.Workspace.open(home) as ws:
        [run] = list_runs(ws)
        assert run.status == "FAILED"
        assert run.error is not None and run.error.startswith("no heartbeat since ")
        assert [(s.step, s.status) for s in run.steps] == [
            ("sleepy", "FAILED"),
            ("upper", "SKIPPED"),
        ]
        flag.unlink()
        resumed = resume(ws, run.run_id)
        assert resumed.status == "SUCCEEDED" and resumed.result == "WOKE"
        assert get_run(ws, run.run_id).status == "FAILED"


def test_a_live_run_is_not_expired(ws: loopml.Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPML_PIPELINE_HEARTBEAT", "0.1")
    seen: list[str] = []

    def look(step: str, status: str, detail: object) -> None:
        if step == "sleepy" and status == "RUNNING":
            time.sleep(0.8)  # eight beats: the heartbeat thread keeps the run alive
            seen.extend(r.status for r in list_runs(ws))

    flag = Path(ws.settings.home) / "absent"
    run = run_pipeline(ws, steps.killable, {"flag": str(flag)}, on_update=look)

    assert seen == ["RUNNING"] and run.status == "SUCCEEDED"
