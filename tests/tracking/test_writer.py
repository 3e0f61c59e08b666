"""The background metric writer: batching, flushing, and what a killed process can lose."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

import loopml
from loopml.tracking.writer import MetricWriter


def test_flush_writes_everything_logged_before_it() -> None:
    batches: list[int] = []
    writer = MetricWriter(lambda batch, _: batches.append(len(batch)), flush_seconds=60)
    for step in range(10_000):
        writer.add(("run", "m", 1.0, step, 0))
    writer.flush()
    assert sum(batches) == 10_000
    assert len(batches) <= 2  # batched, not one write per value


def test_points_are_written_within_the_flush_interval_without_a_flush() -> None:
    seen: list[int] = []
    writer = MetricWriter(lambda batch, _: seen.append(len(batch)), flush_seconds=0.1)
    writer.add(("run", "m", 1.0, 0, 0))
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen == [1]


def test_a_full_buffer_is_written_early() -> None:
    seen: list[int] = []
    writer = MetricWriter(
        lambda batch, _: seen.append(len(batch)), flush_seconds=60, max_pending=100
    )
    writer.extend([("run", "m", 1.0, step, 0) for step in range(150)])
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen and seen[0] >= 100


def test_a_write_error_reaches_the_next_flush() -> None:
    def fail(batch: Sequence[object], extra: object) -> None:
        raise RuntimeError("disk full")

    writer = MetricWriter(fail, flush_seconds=60)
    writer.add(("run", "m", 1.0, 0, 0))
    with pytest.raises(RuntimeError, match="disk full"):
        writer.flush()
    writer.flush()  # reported once


_CHILD = textwrap.dedent(
    """
    import sys, time, loopml
    ws = loopml.Workspace.open(sys.argv[1])
    run = ws.start_run(experiment="kill")
    print(run.id, flush=True)
    for step in range(int(sys.argv[2])):
        run.log_metric("m", step * 0.5, step=step)
    print("logged", flush=True)
    if sys.argv[3] == "wait":
        time.sleep(600)
    """
)


def _spawn(home: Path, count: int, mode: str) -> subprocess.Popen[str]:
    env = {**os.environ, "LOOPML_METRIC_FLUSH_SECONDS": "0.2"}
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(home), str(count), mode],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def test_sigkill_loses_nothing_logged_more_than_a_flush_interval_earlier(tmp_path: Path) -> None:
    child = _spawn(tmp_path, 5000, "wait")
    assert child.stdout is not None
    run_id = child.stdout.readline().strip()
    assert child.stdout.readline().strip() == "logged"
    time.sleep(0.2 * 3 + 0.5)  # the documented bound: flush interval plus one batch write
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    ws = loopml.Workspace.open(tmp_path)
    history = ws.get_run(run_id).metric_history("m")
    assert len(history) == 5000
    assert history["value"].iloc[-1] == 4999 * 0.5
    ws.close()


def test_interpreter_exit_writes_pending_metrics_and_ends_the_run(tmp_path: Path) -> None:
    child = _spawn(tmp_path, 3000, "exit")
    out, _ = child.communicate(timeout=60)
    run_id = out.split()[0]
    assert child.returncode == 0
    ws = loopml.Workspace.open(tmp_path)
    run = ws.get_run(run_id)
    assert len(run.metric_history("m")) == 3000
    assert run.info.status == "FINISHED"
    ws.close()


def test_flush_hands_its_extra_write_to_the_same_call() -> None:
    calls: list[tuple[int, object]] = []
    writer = MetricWriter(lambda batch, extra: calls.append((len(batch), extra)), flush_seconds=60)
    writer.extend([("run", "m", 1.0, step, 0) for step in range(3)])
    writer.flush(extra="end of run")
    writer.flush(extra="again")
    assert calls == [(3, "end of run"), (0, "again")]
