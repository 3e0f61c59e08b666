"""A step that raises StepWaiting: the run ends WAITING (not FAILED), the other branches
finish, nothing expires it, and ``resume`` continues it once what it waits for came."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import loopml
from loopml._time import now_ms
from loopml.pipelines import (
    StepWaiting,
    get_run,
    list_runs,
    pipeline,
    resume,
    run_pipeline,
    step,
)
from loopml.pipelines._driver import repository
from loopml.pipelines.runner import expire_stale


@step
def draft(word: str) -> str:
    return word


@step
def shout(value: str) -> str:
    return value.upper()


@step(retries=2, backoff=0.01)
def sign_off(value: str, approval: str, marker: str) -> str:
    """Waits until the file ``approval`` exists (its attempts counted in ``marker``)."""
    counter = Path(marker)
    counter.write_text(str(int(counter.read_text()) + 1 if counter.exists() else 1))
    if not Path(approval).exists():
        raise StepWaiting(f"waiting for a sign-off: create {approval}, then resume the run")
    return f"{value} signed by {Path(approval).read_text()}"


@step
def broken() -> str:
    raise RuntimeError("broken on purpose")


@step
def join(signed: str, other: str) -> str:
    return f"{signed} + {other}"


@pipeline
def publishing(approval: str, marker: str) -> Any:
    """``shout`` does not depend on the sign-off; ``publish`` (a second ``shout``) does."""
    text = draft("release notes")
    return {"loud": shout(text), "published": shout(sign_off(text, approval, marker))}


@pipeline
def waiting_and_failing(approval: str, marker: str) -> Any:
    return join(sign_off(draft("notes"), approval, marker), broken())


def statuses(run: loopml.pipelines.PipelineRun) -> dict[str, str]:
    return {s.step: s.status for s in run.steps}


@pytest.mark.parametrize("executor", ["local", "process"])
def test_a_waiting_step_ends_the_run_waiting_and_the_other_branch_still_runs(
    ws: loopml.Workspace, tmp_path: Path, executor: str
) -> None:
    approval, marker = tmp_path / "approved", tmp_path / "attempts"
    run = run_pipeline(
        ws,
        publishing,
        {"approval": str(approval), "marker": str(marker)},
        executor=executor,
    )

    assert run.status == "WAITING"
    assert run.error == f"waiting for a sign-off: create {approval}, then resume the run"
    assert run.result is None and run.ended_at is not None
    assert statuses(run) == {
        "draft": "SUCCEEDED",
        "shout": "SUCCEEDED",  # the independent branch finished
        "sign_off": "WAITING",
        "shout_2": "PENDING",  # behind the waiting step: it runs when the run is resumed
    }
    waiting = run.step("sign_off")
    assert waiting.error == run.error and waiting.traceback is None
    assert waiting.attempts == 1 and marker.read_text() == "1"  # no retries
    with pytest.raises(StepWaiting, match=f"`loopml pipeline resume {run.run_id[:8]}`"):
        run.raise_for_status()


def test_resume_continues_a_waiting_run_once_what_it_waited_for_came(
    ws: loopml.Workspace, tmp_path: Path
) -> None:
    approval, marker = tmp_path / "approved", tmp_path / "attempts"
    params = {"approval": str(approval), "marker": str(marker)}
    first = run_pipeline(ws, publishing, params)
    still = resume(ws, first.run_id[:8])  # nothing came yet: it waits again

    assert still.status == "WAITING" and still.resumed_from == first.run_id
    assert statuses(still)["sign_off"] == "WAITING" and statuses(still)["draft"] == "CACHED"

    approval.write_text("ada")
    done = resume(ws, still.run_id)

    assert done.status == "SUCCEEDED", done.error
    assert done.result == {"loud": "RELEASE NOTES", "published": "RELEASE NOTES SIGNED BY ADA"}
    assert statuses(done) == {
        "draft": "CACHED",
        "shout": "CACHED",  # reused from the waiting run, not executed
        "sign_off": "SUCCEEDED",
        "shout_2": "SUCCEEDED",
    }
    assert done.step("shout").cached_from == still.step("shout").step_run_id
    assert marker.read_text() == "3"
    assert get_run(ws, first.run_id).status == "WAITING"  # the record of what happened


def test_a_waiting_run_is_not_expired_by_the_stale_run_sweep(
    ws: loopml.Workspace, tmp_path: Path
) -> None:
    params = {"approval": str(tmp_path / "approved"), "marker": str(tmp_path / "m")}
    run = run_pipeline(ws, publishing, params)
    assert run.owner is not None

    # Every heartbeat is stale and the run's owner counts as dead: still not touched.
    assert repository(ws).expire_stale(now_ms() + 3_600_000, [run.owner]) == []
    assert expire_stale(ws) == []
    [listed] = list_runs(ws, status="waiting")
    assert listed.run_id == run.run_id and listed.error == run.error
    assert statuses(listed) == statuses(run)


def test_a_failure_beside_a_waiting_step_fails_the_run_and_names_both(
    ws: loopml.Workspace, tmp_path: Path
) -> None:
    params = {"approval": str(tmp_path / "approved"), "marker": str(tmp_path / "m")}
    run = run_pipeline(ws, waiting_and_failing, params)

    assert run.status == "FAILED"
    assert statuses(run) == {
        "draft": "SUCCEEDED",
        "sign_off": "WAITING",
        "broken": "FAILED",
        "join": "SKIPPED",  # a failed parent skips it, whatever the other one does
    }
    assert run.error == (
        "step 'broken' failed: RuntimeError: broken on purpose; step 'sign_off' is waiting: "
        f"waiting for a sign-off: create {tmp_path / 'approved'}, then resume the run"
    )


def test_a_trigger_whose_run_waits_records_a_waiting_firing(
    ws: loopml.Workspace, tmp_path: Path
) -> None:
    from loopml.pipelines import add_trigger, fire, firings

    approval, marker = tmp_path / "approved", tmp_path / "attempts"
    params = {"approval": str(approval), "marker": str(marker)}
    add_trigger(ws, "release", "tests.pipelines.test_waiting:publishing", on="manual",
                params=params)  # fmt: skip

    fired = fire(ws, "release")

    assert fired.status == "waiting" and fired.run_id is not None
    assert fired.error is not None and "waiting for a sign-off" in fired.error
    assert get_run(ws, fired.run_id).status == "WAITING"
    assert [f.status for f in firings(ws, "release")] == ["waiting"]
