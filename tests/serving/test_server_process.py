"""A real ``loopml serve`` process over HTTP: routes, an Open Inference Protocol client,
and a hot swap under a running load."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import loopml
from tests.serving._process import child_pids, running_server
from tests.serving._samples import CHURN_ROW, PLAN_ROW

pytestmark = pytest.mark.slow


def test_real_server_answers_simple_json_and_an_oip_client(
    serving_home: Path, serving_ws: loopml.Workspace
) -> None:
    http = pytest.importorskip("tritonclient.http")
    from tritonclient.utils import InferenceServerException

    rows = [PLAN_ROW, {**PLAN_ROW, "income": None, "score": -1.0, "city": "lyon"}]
    expected = serving_ws.registry.load("models:/plans/1")
    with running_server(serving_home, "models:/plans/1", "--max-latency-ms", "1") as (url, _):
        simple = httpx.post(f"{url}/models/plans/predict", json={"records": rows}).json()
        client = http.InferenceServerClient(url.removeprefix("http://"))
        try:
            assert client.is_server_live() and client.is_server_ready()
            assert client.is_model_ready("plans")
            assert client.get_server_metadata()["name"] == "loopml"
            metadata = client.get_model_metadata("plans")

            def tensors(binary: bool) -> list[Any]:
                found = []
                for spec in metadata["inputs"]:
                    values = [row[spec["name"]] for row in rows]
                    if spec["datatype"] == "BYTES":
                        array = np.array(values, dtype=object)
                    elif spec["datatype"] == "BOOL":
                        array = np.array(values, dtype=bool)
                    elif spec["datatype"] == "INT64":
                        array = np.array(values, dtype=np.int64)
                    else:
                        array = np.array([np.nan if v is None else v for v in values])
                    tensor = http.InferInput(spec["name"], [len(rows)], spec["datatype"])
                    tensor.set_data_from_numpy(array, binary_data=binary)
                    found.append(tensor)
                return found

            outputs = [
                http.InferRequestedOutput(name, binary_data=False)
                for name in ("predict", "probabilities")
            ]
            result = client.infer("plans", tensors(False), outputs=outputs, request_id="oip-1")
            versioned = client.infer("plans", tensors(False), model_version="1", outputs=outputs)
            binary = client.infer("plans", tensors(True))  # the client's default encoding
            wrong = http.InferInput("city", [2], "INT64")
            wrong.set_data_from_numpy(np.array([1, 2]), binary_data=False)
            with pytest.raises(InferenceServerException, match="must have datatype BYTES"):
                client.infer("plans", [*tensors(False)[:3], wrong, tensors(False)[4]])
        finally:
            client.close()
    labels = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("predict")]
    assert labels == simple["predictions"] == expected.predict(rows).tolist()
    assert result.as_numpy("probabilities").shape == (2, 3)
    np.testing.assert_allclose(result.as_numpy("probabilities"), simple["probabilities"])
    assert result.get_response()["id"] == "oip-1"
    assert versioned.get_response()["model_version"] == "1"
    binary_labels = [v.decode() if isinstance(v, bytes) else v for v in binary.as_numpy("predict")]
    assert binary_labels == labels
    np.testing.assert_allclose(binary.as_numpy("probabilities"), simple["probabilities"])


def load_until(
    url: str, stop: Callable[[list[tuple[int, Any]]], bool], seconds: float = 30.0
) -> list[tuple[int, Any]]:
    """Sends 3-row requests from 6 threads until ``stop(results)``; returns every
    (status, body) in the order they completed."""
    results: list[tuple[int, Any]] = []
    lock = threading.Lock()
    done = threading.Event()
    rows = [CHURN_ROW, {**CHURN_ROW, "tenure": -1.0}, {**CHURN_ROW, "region": "east"}]

    def client() -> None:
        with httpx.Client(base_url=url, timeout=10) as session:
            while not done.is_set():
                try:
                    response = session.post("/models/churn/predict", json={"records": rows})
                    outcome = (response.status_code, response.json())
                except httpx.HTTPError as error:
                    outcome = (0, repr(error))
                with lock:
                    results.append(outcome)
                    if stop(results):
                        done.set()

    with ThreadPoolExecutor(6) as pool:
        for _ in range(6):
            pool.submit(client)
        done.wait(seconds)
        done.set()
    return results


def test_hot_swap_under_load_fails_no_request_and_never_mixes_versions(
    serving_home: Path, serving_ws: loopml.Workspace
) -> None:
    registry = serving_ws.registry
    registry.promote("churn", 1, "live")
    rows = [CHURN_ROW, {**CHURN_ROW, "tenure": -1.0}, {**CHURN_ROW, "region": "east"}]
    expected = {v: registry.load(f"models:/churn/{v}").predict_proba(rows) for v in (1, 2)}
    assert not np.allclose(expected[1], expected[2])  # the versions answer differently

    def seen(version: int, after: int = 0) -> Callable[[list[tuple[int, Any]]], bool]:
        def enough(results: list[tuple[int, Any]]) -> bool:
            tail = results[after:]
            return sum(1 for _, body in tail if _version(body) == version) >= 30

        return enough

    with running_server(serving_home, "models:/churn@live", "--poll-seconds", "0.2") as (url, _):
        results = load_until(url, lambda r: len(r) >= 40)
        registry.promote("churn", 2, "live", reason="hot swap test")
        started = time.monotonic()
        results += load_until(url, seen(2))
        swap_seconds = time.monotonic() - started
        registry.rollback("churn", "live", reason="hot swap test")
        mark = len(results)
        results += load_until(url, seen(1, after=mark))
        metrics = httpx.get(f"{url}/metrics").text

    failures = [outcome for outcome in results if outcome[0] != 200]
    assert failures == []
    versions = [_version(body) for _, body in results]
    assert versions[:40] == [1] * 40
    assert 2 in versions and versions[mark - 20 : mark] == [2] * 20
    assert versions[-20:] == [1] * 20
    for _, body in results:  # each response wholly from the version it names
        np.testing.assert_allclose(body["probabilities"], expected[body["version"]], rtol=1e-9)
    assert swap_seconds < 15
    assert 'loopml_model_swaps_total{model="churn",outcome="loaded"} 3.0' in metrics


def _version(body: Any) -> int | None:
    return body.get("version") if isinstance(body, dict) else None


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_drains_the_prediction_log_of_a_loaded_server(tmp_path: Path, workers: int) -> None:
    """Every answered request is in the log after a SIGTERM, with one worker or with two
    worker processes (each with its own log writer, each drained)."""
    from tests.registry._samples import registered

    home = tmp_path / "home"
    with loopml.Workspace.open(home) as ws:
        registered(ws, 1)
        ws.registry.promote("churn", 1, "live")
    answered: list[str] = []
    args = ("models:/churn@live", "--poll-seconds", "0", "--workers", str(workers))
    with running_server(home, *args) as (url, pid):
        if workers > 1:
            assert len(_worker_pids(pid)) == workers
        with ThreadPoolExecutor(4) as pool:

            def send(_: int) -> str:
                reply = httpx.post(f"{url}/models/churn/predict", json={"records": [CHURN_ROW]})
                assert reply.status_code == 200
                return str(reply.json()["request_id"])

            answered = list(pool.map(send, range(200)))
    # running_server stopped it with SIGTERM; the log was drained on the way out.
    with loopml.Workspace.open(home) as ws:
        logged = ws.predictions("churn")
    assert sorted(logged["request_id"]) == sorted(answered)


def _worker_pids(pid: int) -> list[int]:
    """The worker processes under ``pid``: forked, so running the parent's command line
    (spawned workers would run multiprocessing's ``spawn_main`` instead)."""
    command = Path(f"/proc/{pid}/cmdline").read_bytes()
    return [
        child for child in child_pids(pid) if Path(f"/proc/{child}/cmdline").read_bytes() == command
    ]


def test_each_worker_listens_on_its_own_socket_and_a_burst_of_connections_is_spread(
    tmp_path: Path,
) -> None:
    """On one shared socket the worker that woke first took a whole burst of connections
    (two workers on one core); each worker now has its own (SO_REUSEPORT), the parent
    none, and the kernel spreads 32 connections opened at once over both."""
    from tests.registry._samples import registered

    home = tmp_path / "home"
    with loopml.Workspace.open(home) as ws:
        registered(ws, 1)
        ws.registry.promote("churn", 1, "live")
    args = ("models:/churn@live", "--poll-seconds", "0", "--workers", "2", "--no-log")
    with running_server(home, *args) as (url, pid):
        workers = set(_worker_pids(pid))
        port = int(url.rsplit(":", 1)[1])
        deadline = time.monotonic() + 60
        while len(_sockets(port, "0A")) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)  # the second worker listens once its model is warmed up
        assert set(_owners(_sockets(port, "0A")).values()) == workers
        clients = [httpx.Client(base_url=url) for _ in range(32)]
        try:
            with ThreadPoolExecutor(32) as pool:
                codes = list(
                    pool.map(
                        lambda c: c.post("/models/churn/predict", json={"records": [CHURN_ROW]}),
                        clients,
                    )
                )
            assert [reply.status_code for reply in codes] == [200] * 32
            held = list(_owners(_sockets(port, "01")).values())
            assert len(held) == 32 and set(held) == workers  # each worker holds some
        finally:
            for client in clients:
                client.close()


def test_two_workers_on_a_busy_port_fail_with_a_clear_error(tmp_path: Path) -> None:
    from tests.registry._samples import registered

    home = tmp_path / "home"
    with loopml.Workspace.open(home) as ws:
        registered(ws, 1)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [str(Path(sys.executable).parent / "loopml"), "serve", "models:/churn/1",
             "--home", str(home), "--port", str(port), "--workers", "2"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode != 0
    assert f"Cannot serve on 127.0.0.1:{port}" in done.stdout + done.stderr
    assert "--port" in done.stdout + done.stderr


def _sockets(port: int, state: str) -> set[int]:
    """Inodes of the TCP sockets on local ``port`` in ``state`` (0A listening, 01
    established), from /proc/net/tcp."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
            found.add(int(fields[9]))
    return found


def _owners(inodes: set[int]) -> dict[int, int]:
    """The process holding each socket inode."""
    owners = {}
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and int(target[8:-1]) in inodes:
            owners[int(target[8:-1])] = int(fd.parent.parent.name)
    return owners
