"""Two processes moving the same alias at once: one wins each time, history stays true."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
import time

import loopml
from tests.registry._samples import registered

_WORKER = textwrap.dedent(
    """
    import sys, time, loopml
    home, db_url = sys.argv[1], sys.argv[2] or None
    version, start = int(sys.argv[3]), float(sys.argv[4])
    ws = loopml.Workspace.open(home, db_url=db_url)
    time.sleep(max(0.0, start - time.time()))  # both workers begin together
    moved = 0
    for _ in range(25):
        moved += ws.registry.promote("churn", version, "champion", reason=f"w{version}") is not None
        ws.registry.promote("churn", 3, "champion")  # back to a third holder, so each round races
    ws.close()
    print(moved)
    """
)


def test_two_processes_promoting_to_one_alias_keep_history_consistent(
    workspace: loopml.Workspace,
) -> None:
    registered(workspace, 3)
    workspace.close()
    home, db_url = workspace.settings.home, workspace.settings.db_url
    start = time.time() + 3.0  # past both interpreters' start-up
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(home), db_url, str(version), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        for version in (1, 2)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert int(out) > 0  # each worker won some rounds

    with loopml.Workspace.open(home, db_url=db_url) as ws:
        events = ws.registry.history("churn", "champion")
        holder = ws.registry.get("models:/churn@champion").version
    assert events[0].from_version is None
    # Every move starts where the previous one ended: no move was lost or interleaved.
    for before, after in itertools.pairwise(events):
        assert after.from_version == before.to_version, (before, after)
        assert after.from_version != after.to_version
    assert events[-1].to_version == holder
    assert {e.reason for e in events if e.to_version in (1, 2)} >= {"w1", "w2"}
