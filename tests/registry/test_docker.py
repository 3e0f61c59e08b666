"""The Docker build context is complete: its requirements install into a fresh virtual
environment, and its entrypoint serves the bundle (no Docker engine runs here)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import loopml
from tests.evaluation._samples import binary_frame
from tests.registry._samples import registered


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_the_context_installs_into_a_fresh_venv_and_its_entrypoint_serves(
    sqlite_workspace: loopml.Workspace, tmp_path: Path
) -> None:
    (version,) = registered(sqlite_workspace, 1)
    context = sqlite_workspace.registry.export(version, "docker", out=tmp_path / "ctx").path
    dockerfile = (context / "Dockerfile").read_text()
    assert dockerfile.startswith("# Built by") and "-slim" in dockerfile
    assert list((context / "wheels").glob("loopml-*.whl"))

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    installed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
         "--find-links", str(context / "wheels"), "-r", str(context / "requirements.txt")],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-2000:]

    port = _free_port()
    env = {
        "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "LOOPML_HOME": str(tmp_path / "serving-home"),
        "LOOPML_SERVE_HOST": "127.0.0.1",
        "LOOPML_SERVE_PORT": str(port),
        "DO_NOT_TRACK": "1",
    }
    server = subprocess.Popen(
        ["sh", "./entrypoint.sh"], cwd=context, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready") as ready:
                    assert ready.status == 200
                    break
            except OSError:
                assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
                assert time.monotonic() < deadline, "the entrypoint's server never got ready"
                time.sleep(0.3)
        records = binary_frame(3)[["tenure", "spend", "region"]].to_dict(orient="records")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/models/churn/predict",
            data=json.dumps({"records": records}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request) as answer:
            assert len(json.loads(answer.read())["predictions"]) == 3
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
