"""``loopml.serving.server``: how worker processes start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import loopml
from tests.registry._samples import registered

PRELOAD = """
import gc, os, sys, threading
from loopml.serving.server import _preload

_preload({home!r}, {reference!r}, {runtime!r})
files = []
for fd in os.listdir("/proc/self/fd"):
    try:
        files.append(os.readlink(f"/proc/self/fd/{{fd}}"))
    except OSError:  # the listing's own descriptor, closed by now
        pass
print(
    "sklearn.linear_model" in sys.modules,
    "loopml.serving.app" in sys.modules,
    threading.active_count(),
    any(name.endswith(".db") for name in files),
    gc.get_freeze_count() > 0,
    gc.isenabled(),
)
"""


def _preloaded(home: Path, reference: str, runtime: str = "pickle") -> list[str]:
    script = PRELOAD.format(home=str(home), reference=reference, runtime=runtime)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_the_parent_preloads_the_models_libraries_and_keeps_nothing_open(tmp_path: Path) -> None:
    """Workers are forked from a parent that has imported the app and the model's
    libraries (scikit-learn's linear models here): safe to fork only with no thread started and no
    database connection left open, and with the shared objects frozen."""
    home = tmp_path / "home"
    with loopml.Workspace.open(home) as ws:
        registered(ws, 1)
        ws.registry.promote("churn", 1, "live")
    assert _preloaded(home, "models:/churn@live") == ["True", "True", "1", "False", "True", "True"]


def test_a_model_the_parent_cannot_preload_is_left_to_the_workers(tmp_path: Path) -> None:
    """A missing model is not the parent's error to raise: each worker reports it and
    does not become ready (tests/serving/test_server_process.py)."""
    home = tmp_path / "home"
    loopml.Workspace.open(home).close()
    imported, app, threads, open_db, _, collecting = _preloaded(home, "models:/nothing@live")
    assert (imported, app, threads, open_db, collecting) == ("False", "True", "1", "False", "True")
