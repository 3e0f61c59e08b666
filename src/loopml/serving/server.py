"""Running the model server: ``serve(ref, host=..., port=...)``, what ``loopml serve`` calls.

One worker runs the app in-process; several run as uvicorn worker processes, each
building the app from the options this process hands them in an environment variable.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from loopml.errors import ValidationError

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
    with _workers_import_only_this_module():
        uvicorn.run(
            "loopml.serving.server:app_from_environment", factory=True, workers=workers, **common
        )


@contextmanager
def _workers_import_only_this_module() -> Iterator[None]:
    """uvicorn starts each worker with multiprocessing's *spawn*, which runs the parent's
    ``__main__`` again in the child before anything else: for ``loopml serve`` that is the
    console script, and through it the whole CLI (Typer, Rich, every command's options),
    imported by every worker before it loads the model. With ``__main__``'s spec naming
    this module, spawn imports this small module instead; the workers need nothing from
    ``__main__`` (they build the app from the environment)."""
    main = sys.modules["__main__"]
    saved = getattr(main, "__spec__", None)
    main.__spec__ = importlib.util.find_spec(__name__)
    try:
        yield
    finally:
        main.__spec__ = saved


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
