"""``loopml.serving.server``: how worker processes start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import multiprocessing
import loopml.cli  # as the `loopml` console script does
from loopml.serving.server import _workers_import_only_this_module

CHECK = "import sys; sys.exit(3 if 'loopml.cli' in sys.modules else 4)"

def start():
    process = multiprocessing.get_context("spawn").Process(target=exec, args=(CHECK,))
    process.start()
    process.join()
    return process.exitcode

if __name__ == "__main__":
    plain = start()
    with _workers_import_only_this_module():
        light = start()
    print(plain, light)
"""


def test_spawned_workers_do_not_import_the_cli(tmp_path: Path) -> None:
    """uvicorn spawns workers, and spawn runs the parent's __main__ (the console script,
    so the whole CLI) in each; while serving, a worker imports only the server module."""
    script = tmp_path / "main.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=True
    )
    # 3: the CLI was imported in the child (as without the change), 4: it was not.
    assert done.stdout.split() == ["3", "4"]
