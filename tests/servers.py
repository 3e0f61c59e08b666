"""Real model servers for tests: ``create_app`` under uvicorn on a free 127.0.0.1 port, in a
thread of the test process, and waiting for any server to be ready."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

import loopml
from tests.serving._process import free_port


def wait_until_ready(url: str, alive: Callable[[], bool], timeout: float = 60.0) -> None:
    """Polls ``url``'s ``/health/ready`` until it answers 200; fails when the server is
    no longer ``alive()`` or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)


@contextmanager
def serve_in_thread(ws: loopml.Workspace, reference: str, **options: Any) -> Iterator[str]:
    """A real uvicorn server following ``reference`` (``create_app(ws, reference,
    **options)``; it polls the alias every 0.1 s and logs no predictions unless
    ``options`` say otherwise), ready; yields its base URL and stops it afterwards."""
    from loopml.serving import create_app

    settings = {"poll_seconds": 0.1, "health_interval": 0, "log_predictions": False, **options}
    app = create_app(ws, reference, **settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, name="test-server", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, thread.is_alive)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def in_background(work: Callable[[threading.Event], None], name: str) -> Iterator[None]:
    """Runs ``work(stop)`` in a thread while the block runs (traffic, say); then sets
    ``stop`` and waits for ``work`` to return."""
    stop = threading.Event()
    thread = threading.Thread(target=work, args=(stop,), name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)
