"""Running the model server: ``serve(ref, host=..., port=...)``, what ``loopml serve`` calls.

One worker runs the app in-process; several run as uvicorn worker processes, forked from
this one once it has imported what they need, each building the app from the options
this process hands them in an environment variable.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.errors import ConfigError, ValidationError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from loopml.workspace import Workspace

__all__ = ["serve"]

_ENVIRONMENT = "LOOPML_SERVE_APP"


def serve(
    reference: str | os.PathLike[str],
    workspace: Workspace | str | os.PathLike[str] | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    log_level: str = "info",
    **options: Any,
) -> None:
    """Serves ``reference`` over HTTP until interrupted (SIGINT or SIGTERM drain first).

    Args:
        reference: What to serve; see :func:`~loopml.serving.create_app`.
        workspace: A Workspace or its home folder (several workers need a folder).
        workers: Processes; each loads the model and batches its own requests.
        options: :class:`~loopml.serving.ServeOptions` fields.
    """
    if workers < 1:
        raise ValidationError(f"workers must be at least 1, got {workers}.")
    # No cyclic collection until the model is served (the app's start-up turns it back
    # on): imports and the model load only add objects that live as long as the process.
    # Several workers: each worker process does the same (app_from_environment).
    if workers == 1:
        gc.disable()
    try:
        _run(reference, workspace, host, port, workers, log_level, options)
    finally:
        gc.enable()


def _run(
    reference: str | os.PathLike[str],
    workspace: Workspace | str | os.PathLike[str] | None,
    host: str,
    port: int,
    workers: int,
    log_level: str,
    options: dict[str, Any],
) -> None:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from loopml.serving.app import create_app

    _show_logs(log_level)
    common: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "access_log": False,  # per-request lines would cost more than a prediction
        "timeout_graceful_shutdown": 30,
    }
    if workers == 1:
        uvicorn.run(create_app(workspace, reference, **options), **common)
        return
    if workspace is not None and not isinstance(workspace, (str, os.PathLike)):
        workspace = workspace.settings.home
    os.environ[_ENVIRONMENT] = json.dumps(
        {
            "workspace": None if workspace is None else os.fspath(workspace),
            "reference": os.fspath(reference),
            "options": options,
            "log_level": log_level,
        }
    )
    _preload(workspace, reference, options.get("runtime", "pickle"))
    config = uvicorn.Config(
        "loopml.serving.server:app_from_environment", factory=True, workers=workers, **common
    )
    with _forked_workers() as forked:
        if not forked:
            Multiprocess(config, sockets=[config.bind_socket()]).run()
            return
        with _listener_per_worker(host, port) as placeholder:
            Multiprocess(config, sockets=[placeholder]).run()


def _preload(
    workspace: str | os.PathLike[str] | None, reference: str | os.PathLike[str], runtime: str
) -> None:
    """Imports, once in the parent, what every worker needs: the app's modules and the
    model's libraries (by loading the model and dropping it). Forked workers inherit them,
    so two workers start about as fast as one instead of each importing scikit-learn,
    pandas and FastAPI on a shared CPU. Nothing here starts a thread or keeps a
    connection open across the fork (an ONNX Runtime session would start its thread
    pools, so for ONNX only the library is imported); any failure is left to the workers
    to report."""
    gc.disable()
    try:
        from loopml.models import load_bundle
        from loopml.serving.app import create_app  # noqa: F401  (imports the app's modules)
        from loopml.serving.served import ModelSource
        from loopml.workspace import Workspace

        if runtime == "onnx":
            import onnxruntime  # noqa: F401

            return
        source = ModelSource.of(reference)
        if source.model is None:
            if not source.reference.startswith("runs:/"):
                load_bundle(Path(source.reference))
            return
        with Workspace.open(workspace, create=False) as ws:
            load_bundle(ws.registry.local_bundle(ws.registry.get(source.reference).uri))
    except Exception as error:  # the workers load it again and say what is wrong
        logging.getLogger("loopml.serving").debug("Preloading %s failed: %s", reference, error)
    finally:
        # What the workers share stays shared: collections skip it. No collection first:
        # the dropped model goes by reference counting, and one would walk every module
        # just imported (0.16 s of the start).
        gc.freeze()
        gc.enable()


@contextmanager
def _forked_workers() -> Iterator[bool]:
    """uvicorn's supervisor (restarts, health checks, signals) starts its workers with
    multiprocessing's *spawn*: each runs a fresh interpreter that imports everything
    again: two workers took 2.6 s to be ready where one took 1.6 s (forked: 1.85 s).
    *fork* hands them the parent's preloaded modules. Forking is safe only
    from a process without other threads (``loopml serve`` has none; a program calling
    ``serve()`` may), so with threads running, or if a uvicorn release renames
    ``uvicorn._subprocess.spawn`` (its context), workers are spawned as before: slower,
    still correct, as they build the app from the environment."""
    import multiprocessing
    import threading

    import uvicorn._subprocess as subprocess

    saved = getattr(subprocess, "spawn", None)
    if saved is None or threading.active_count() > 1:
        yield False
        return
    subprocess.spawn = multiprocessing.get_context("fork")  # type: ignore[assignment]
    try:
        yield True
    finally:
        subprocess.spawn = saved


_listening: dict[str, Any] = {}  # while _listener_per_worker runs: what each worker binds


@contextmanager
def _listener_per_worker(host: str, port: int) -> Iterator[socket.socket]:
    """A listening socket of its own for each forked worker, all on ``host:port`` with
    ``SO_REUSEPORT``, so that the kernel spreads new connections over the workers. On
    one shared socket, the worker that woke first took a whole burst of connections
    (wrk's 32, or a proxy's pool): two workers then served on one core, 190 requests/s
    against 570. The parent binds the port (so it is taken, and a busy port fails
    here) without listening, which keeps it out of the kernel's choice; each worker,
    right after the fork, binds a socket of its own and puts it in place of the parent's
    (the same descriptor number, which uvicorn's worker then listens on)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    placeholder = _reusable_socket(family)
    try:
        placeholder.bind((host, port))
    except OSError as error:
        placeholder.close()
        raise ConfigError(
            f"Cannot serve on {host}:{port}: {error.strerror}. Stop what uses the port, "
            "or pick another with --port."
        ) from None
    placeholder.set_inheritable(True)
    bound = placeholder.getsockname()  # the port chosen, when asked for port 0
    _listening.update(address=bound, family=family, descriptor=placeholder.fileno())
    os.register_at_fork(after_in_child=_own_listener)
    logging.getLogger("uvicorn.error").info(
        "Uvicorn running on http://%s:%d (Press CTRL+C to quit)", bound[0], bound[1]
    )
    try:
        yield placeholder
    finally:
        _listening.clear()
        placeholder.close()


def _own_listener() -> None:
    """In a freshly forked worker: its own socket on the port, in the parent's place."""
    if not _listening:  # a fork outside a multi-worker serve (the hook stays registered)
        return
    own = _reusable_socket(_listening["family"])
    own.bind(_listening["address"])
    os.dup2(own.fileno(), _listening["descriptor"])
    own.close()
    _listening.clear()  # this worker's own forks (if any) keep what they inherit


def _reusable_socket(family: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


def app_from_environment() -> FastAPI:
    """The app a uvicorn worker process builds (see :func:`serve`)."""
    gc.disable()  # as in serve(): back on once the model is served
    from loopml.serving.app import create_app

    settings = json.loads(os.environ[_ENVIRONMENT])
    _show_logs(settings["log_level"])
    return create_app(settings["workspace"], settings["reference"], **settings["options"])


def _show_logs(level: str) -> None:
    """Prints the server's own messages (loads, swaps, model errors) as uvicorn does its."""
    logger = logging.getLogger("loopml")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)-9s %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level.upper())
