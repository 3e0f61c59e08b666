"""The scheduler: each due occurrence runs once, across restarts, crashes (SIGKILL) and
two schedulers on one workspace (real processes, on SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import loopml
from loopml.pipelines.schedule import add_schedule
from loopml.pipelines.scheduler import Scheduler
from loopml.pipelines.triggers import Occurrence, firings

UTC = dt.UTC
T0 = dt.datetime(2026, 1, 1, tzinfo=UTC)
HERE = "tests.pipelines.test_scheduler"
REPOSITORY = Path(__file__).resolve().parents[2]


def record(ws: loopml.Workspace, occurrence: Occurrence) -> str:
    """Appends the occurrence to the log file named in params (one line per run)."""
    line = {"event": occurrence.event, "pid": os.getpid(), "time": occurrence.time.isoformat(),
            "reason": occurrence.reason}  # fmt: skip
    with open(occurrence.params["log"], "a") as log:
        log.write(json.dumps(line) + "\n")
    time.sleep(float(occurrence.params.get("sleep", 0)))
    return f"run-{occurrence.firing_id}"


def hang_once(ws: loopml.Workspace, occurrence: Occurrence) -> str:
    """Hangs the first time (so the test can kill the process mid-run), records later."""
    marker = Path(occurrence.params["marker"])
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        time.sleep(120)
    return record(ws, occurrence)


def explode(ws: loopml.Workspace, occurrence: Occurrence) -> None:
    if occurrence.time.hour == 1:
        raise RuntimeError("the 01:00 run breaks")
    record(ws, occurrence)


class Clock:
    """A settable clock whose sleep moves time on instead of waiting."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> dt.datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += dt.timedelta(seconds=seconds)


def _logged(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def _at(*hours: float) -> list[str]:
    return [(T0 + dt.timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ") for h in hours]


def _hourly(ws: loopml.Workspace, log: Path, catch_up: str, **options: Any) -> None:
    add_schedule(
        ws, "hourly", "0 * * * *", f"py:{HERE}:record", params={"log": str(log), **options},
        catch_up=catch_up, max_catch_up=24, start_at=T0,
    )  # fmt: skip


# -- one scheduler, a fake clock -----------------------------------------------------------
def test_each_occurrence_runs_once_with_its_reason(
    sqlite_workspace: loopml.Workspace, tmp_path: Path
) -> None:
    log = tmp_path / "runs.jsonl"
    _hourly(sqlite_workspace, log, "none")
    clock = Clock(T0 + dt.timedelta(minutes=30))
    scheduler = Scheduler(sqlite_workspace, clock=clock)
    assert scheduler.tick().firings == []  # nothing due before 01:00
    clock.now = T0 + dt.timedelta(hours=1, seconds=3)
    (firing,) = scheduler.tick().firings
    assert scheduler.tick().firings == []  # the same instant again: already claimed
    assert firing.status == "succeeded"
    assert firing.event == _at(1)[0]
    assert firing.occurrence == T0 + dt.timedelta(hours=1)
    assert firing.run_id == f"run-{firing.firing_id}"  # what the target returned
    assert firing.reason == {"kind": "schedule", "trigger": "hourly", "schedule": "hourly",
                             "occurrence": _at(1)[0], "cron": "0 * * * *",
                             "timezone": "UTC"}  # fmt: skip
    assert [line["event"] for line in _logged(log)] == _at(1)
    assert _logged(log)[0]["reason"]["occurrence"] == "2026-01-01T01:00:00Z"


def test_the_loop_sleeps_between_ticks_on_the_injected_clock(
    sqlite_workspace: loopml.Workspace, tmp_path: Path
) -> None:
    log = tmp_path / "runs.jsonl"
    add_schedule(sqlite_workspace, "quarterly", "*/15 * * * *", f"py:{HERE}:record",
                 params={"log": str(log)}, start_at=T0)  # fmt: skip
    clock = Clock(T0 + dt.timedelta(seconds=1))
    scheduler = Scheduler(sqlite_workspace, clock=clock, sleep=clock.sleep, poll_seconds=300)
    made = scheduler.run(max_ticks=13)  # an hour and a second of five-minute polls
    assert clock.slept == [300.0] * 12
    assert made == 4
    assert [line["event"] for line in _logged(log)] == _at(0.25, 0.5, 0.75, 1)


@pytest.mark.parametrize(
    ("catch_up", "after_restart"),
    [
        ("all", [2, 3, 4]),  # every missed occurrence, oldest first
        ("none", [4]),  # only the latest missed one
        ("skip", []),  # none of the missed ones...
    ],
)
def test_a_restart_runs_missed_occurrences_by_policy_and_repeats_none(
    sqlite_workspace: loopml.Workspace, tmp_path: Path, catch_up: str, after_restart: list[int]
) -> None:
    log = tmp_path / "runs.jsonl"
    _hourly(sqlite_workspace, log, catch_up)
    clock = Clock(T0 + dt.timedelta(hours=1, seconds=5))
    Scheduler(sqlite_workspace, clock=clock, owner="first").tick()
    # The first scheduler stops; three more hours pass; a new one starts.
    clock.now = T0 + dt.timedelta(hours=4, minutes=5)
    restarted = Scheduler(sqlite_workspace, clock=clock, owner="second")
    tick = restarted.tick()
    assert [f.event for f in tick.firings] == _at(*after_restart)
    assert tick.left_out == {"hourly": catch_up != "all"}
    clock.now = T0 + dt.timedelta(hours=5, seconds=5)
    restarted.tick()
    restarted.tick()
    # ...but what comes on time runs under every policy, once.
    assert [line["event"] for line in _logged(log)] == _at(1, *after_restart, 5)


def test_a_failing_target_is_recorded_and_later_occurrences_still_run(
    sqlite_workspace: loopml.Workspace, tmp_path: Path
) -> None:
    log = tmp_path / "runs.jsonl"
    add_schedule(sqlite_workspace, "hourly", "0 * * * *", f"py:{HERE}:explode",
                 params={"log": str(log)}, catch_up="all", start_at=T0)  # fmt: skip
    tick = Scheduler(sqlite_workspace, clock=Clock(T0 + dt.timedelta(hours=2, seconds=1))).tick()
    assert [(f.event, f.status) for f in tick.firings] == [
        (_at(1)[0], "failed"),
        (_at(2)[0], "succeeded"),
    ]
    assert tick.firings[0].error == "RuntimeError: the 01:00 run breaks"
    assert [line["event"] for line in _logged(log)] == _at(2)


def test_a_disabled_schedule_does_not_run(
    sqlite_workspace: loopml.Workspace, tmp_path: Path
) -> None:
    from loopml.pipelines.schedule import enable_schedule

    log = tmp_path / "runs.jsonl"
    _hourly(sqlite_workspace, log, "all")
    enable_schedule(sqlite_workspace, "hourly", False)
    assert Scheduler(sqlite_workspace, clock=Clock(T0 + dt.timedelta(hours=3))).tick().firings == []
    assert not log.exists()


def test_a_live_runner_keeps_its_claim_by_heartbeat(
    sqlite_workspace: loopml.Workspace, tmp_path: Path
) -> None:
    log = tmp_path / "runs.jsonl"
    _hourly(sqlite_workspace, log, "none", sleep=1.0)  # runs 1 s, lease 0.3 s
    clock = Clock(T0 + dt.timedelta(hours=1, seconds=1))
    busy = Scheduler(sqlite_workspace, clock=clock, owner="busy", lease_seconds=0.3)
    worker = threading.Thread(target=busy.tick)
    worker.start()
    time.sleep(0.7)  # two lease lengths: only the heartbeat keeps the claim alive
    other = Scheduler(sqlite_workspace, clock=clock, owner="other", lease_seconds=0.3).tick()
    worker.join()
    assert (other.reaped, other.firings) == ([], [])
    assert [f.status for f in firings(sqlite_workspace, "hourly")] == ["succeeded"]
    assert len(_logged(log)) == 1


# -- real processes ------------------------------------------------------------------------
_SCHEDULER = """
import datetime as dt, os, sys, time
import loopml
from loopml.pipelines.scheduler import Scheduler
home, url, now, lease, ticks, barrier, parties = sys.argv[1:8]
ws = loopml.Workspace.open(home, db_url=url)
clock = dt.datetime.fromisoformat(now)
if barrier:  # start together, once every process is past its imports
    open(os.path.join(barrier, str(os.getpid())), "w").close()
    while len(os.listdir(barrier)) < int(parties):
        time.sleep(0.005)
Scheduler(ws, clock=lambda: clock, sleep=lambda _: None, lease_seconds=float(lease)).run(
    max_ticks=int(ticks)
)
ws.close()
"""


def _spawn(
    ws: loopml.Workspace, now: dt.datetime, lease: float, ticks: int, barrier: Path | None = None,
    parties: int = 1,
) -> subprocess.Popen[bytes]:  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY), "MLFLOW_DISABLE_TELEMETRY": "true",
           "DO_NOT_TRACK": "1", "RAY_USAGE_STATS_ENABLED": "0"}  # fmt: skip
    arguments = [str(ws.settings.home), ws.db.url, now.isoformat(), str(lease), str(ticks),
                 str(barrier or ""), str(parties)]  # fmt: skip
    return subprocess.Popen([sys.executable, "-c", _SCHEDULER, *arguments], env=env)


def test_two_scheduler_processes_never_run_the_same_occurrence(
    workspace: loopml.Workspace, tmp_path: Path
) -> None:
    log = tmp_path / "runs.jsonl"
    _hourly(workspace, log, "all", sleep=0.05)  # 24 missed hours, claimed in turn
    now = T0 + dt.timedelta(hours=24, seconds=1)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    processes = [_spawn(workspace, now, 30.0, 3, barrier, parties=2) for _ in range(2)]
    assert [process.wait(timeout=120) for process in processes] == [0, 0]
    lines = _logged(log)
    assert sorted(line["event"] for line in lines) == _at(*range(1, 25))  # none twice
    # Both really competed: each ran some of the occurrences.
    assert {line["pid"] for line in lines} == {process.pid for process in processes}
    done = firings(workspace, "hourly")
    assert len(done) == 24
    assert {f.status for f in done} == {"succeeded"}


def test_a_scheduler_killed_mid_run_is_marked_failed_and_a_restart_goes_on(
    workspace: loopml.Workspace, tmp_path: Path
) -> None:
    log, marker = tmp_path / "runs.jsonl", tmp_path / "started"
    add_schedule(workspace, "hourly", "0 * * * *", f"py:{HERE}:hang_once",
                 params={"log": str(log), "marker": str(marker)}, start_at=T0)  # fmt: skip
    process = _spawn(workspace, T0 + dt.timedelta(hours=1, seconds=1), lease=1.0, ticks=1)
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the scheduler process never started its run"
    (running,) = firings(workspace, "hourly")
    assert running.status == "running"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)

    clock = Clock(T0 + dt.timedelta(hours=1, minutes=1))
    restarted = Scheduler(workspace, clock=clock, lease_seconds=1.0)
    time.sleep(1.2)  # the dead runner's lease (1 s, no more heartbeats) runs out
    tick = restarted.tick()
    assert [(f.event, f.status) for f in tick.reaped] == [(_at(1)[0], "failed")]
    assert "stopped" in (tick.reaped[0].error or "")
    assert tick.firings == []  # the claimed occurrence is not run a second time
    clock.now = T0 + dt.timedelta(hours=2, seconds=1)
    assert [f.event for f in restarted.tick().firings] == _at(2)  # nor is any skipped
    assert [(f.event, f.status) for f in firings(workspace, "hourly")] == [
        (_at(2)[0], "succeeded"),
        (_at(1)[0], "failed"),
    ]
    assert [line["event"] for line in _logged(log)] == _at(2)


# -- the command line ------------------------------------------------------------------------
def _cli() -> Any:
    import typer

    from loopml.cli.scheduler import schedule_app, scheduler, trigger_app

    app = typer.Typer()
    app.command("scheduler")(scheduler)
    app.add_typer(schedule_app, name="schedule")
    app.add_typer(trigger_app, name="trigger")
    return app


def _invoke(home: Path, *args: str) -> Any:
    from typer.testing import CliRunner

    from tests.cli import CLI_ENV

    return CliRunner().invoke(_cli(), [*args, "--home", str(home)], env=CLI_ENV)


def test_the_commands_add_list_run_and_show_history(tmp_path: Path) -> None:
    from tests.cli import assert_clean_failure

    home = tmp_path / "home"
    loopml.Workspace.open(home).close()
    log = tmp_path / "runs.jsonl"
    bad = _invoke(home, "schedule", "add", "nightly", "0 25 * * *", f"py:{HERE}:record")
    assert_clean_failure(bad, "`cron`", "'0 3 * * *'")
    added = _invoke(home, "schedule", "add", "every-second", "* * * * * *",
                    f"py:{HERE}:record", "--param", f"log={log}")  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "every-second" in _invoke(home, "schedule", "list").output
    time.sleep(1.1)  # one occurrence of the every-second schedule comes due
    ran = _invoke(home, "scheduler", "--max-ticks", "1", "--poll", "0.1")
    assert ran.exit_code == 0, ran.output
    assert "succeeded" in ran.output
    assert len(_logged(log)) >= 1
    history = _invoke(home, "schedule", "history", "every-second")
    assert "schedule 'every-second', occurrence" in history.output
    added = _invoke(home, "trigger", "add", "by-hand", f"py:{HERE}:record", "--param",
                    f"log={log}", "--max-runs", "1", "--per", "1d")  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "1 per 1 day" in _invoke(home, "trigger", "list").output
    fired = _invoke(home, "trigger", "fire", "by-hand", "--note", "checking")
    assert fired.exit_code == 0, fired.output
    assert "by-hand" in fired.output and "succeeded" in fired.output
    assert "suppressed" in _invoke(home, "trigger", "fire", "by-hand").output
    assert _invoke(home, "schedule", "remove", "every-second").exit_code == 0
    assert_clean_failure(_invoke(home, "schedule", "remove", "by-hand"), "not a schedule")
