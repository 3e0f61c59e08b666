"""Many processes tracking into one workspace at once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import loopml

_WORKER = textwrap.dedent(
    """
    import sys, loopml
    home, db_url, worker = sys.argv[1], sys.argv[2] or None, int(sys.argv[3])
    ws = loopml.Workspace.open(home, db_url=db_url)
    for r in range(3):
        with ws.start_run(experiment="crowd", run_name=f"w{worker}-r{r}") as run:
            run.log_params({"worker": worker, "round": r})
            for step in range(400):
                run.log_metric("loss", 1.0 / (step + 1), step=step)
                if step % 100 == 0:
                    run.log_metrics({"a": step, "b": -step}, step=step)
                    run.set_tag("progress", str(step))
            run.log_text(f"worker {worker} round {r}", "note.txt")
    ws.close()
    print("ok")
    """
)


def _crowd(home: Path, db_url: str | None, workers: int) -> None:
    env = {**os.environ, "LOOPML_METRIC_FLUSH_SECONDS": "0.05"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(home), db_url or "", str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(workers)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert "locked" not in err.lower()
        assert out.strip() == "ok"


def _check(ws: loopml.Workspace, workers: int) -> None:
    frame = ws.search_runs("crowd", max_results=10_000)
    assert len(frame) == workers * 3
    assert set(frame["status"]) == {"FINISHED"}
    assert (frame["metrics.loss"] == 1.0 / 400).all()
    for run in ws.search_runs("crowd", output="runs", max_results=10_000):
        history = run.metric_history()
        assert (history["key"] == "loss").sum() == 400
        assert (history["key"] == "a").sum() == 4
        assert run.tags["progress"] == "300"


@pytest.mark.slow
def test_eight_processes_on_one_sqlite_workspace_lose_nothing(tmp_path: Path) -> None:
    _crowd(tmp_path, None, 8)
    ws = loopml.Workspace.open(tmp_path)
    _check(ws, 8)
    ws.close()


@pytest.mark.slow
@pytest.mark.postgres
def test_eight_processes_on_postgres_lose_nothing(tmp_path: Path, postgres_schema_url: str) -> None:
    _crowd(tmp_path, postgres_schema_url, 8)
    ws = loopml.Workspace.open(tmp_path, db_url=postgres_schema_url)
    _check(ws, 8)
    ws.close()
