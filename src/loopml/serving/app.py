"""The model server's FastAPI app: ``create_app(workspace_or_home, ref, **options)``.

The app loads the model in its lifespan (ready only once loaded and warmed up), follows
an alias reference for hot swaps, and on shutdown (uvicorn's SIGTERM handling) finishes
queued batches and drains the prediction log.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loopml.errors import LoopmlError, NotFoundError
from loopml.serving import oip, routes
from loopml.serving.deployment import Deployment, DeploySpec
from loopml.serving.follower import RequestFollower
from loopml.serving.health import HealthRecorder
from loopml.serving.inputs import RequestRefused
from loopml.serving.metrics import ServingMetrics
from loopml.serving.options import ServeOptions
from loopml.serving.responses import JSONBytesResponse
from loopml.serving.router import NotReadyError
from loopml.serving.schemas import request_schemas
from loopml.serving.served import ModelSource
from loopml.serving.state import ModelFailed, ServingState

if TYPE_CHECKING:
    from loopml.workspace import Workspace

__all__ = ["create_app"]

logger = logging.getLogger("loopml.serving")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_PREDICT_ROUTE = "/models/{name}/predict"


def create_app(
    workspace: Workspace | str | os.PathLike[str] | None,
    reference: str | os.PathLike[str],
    *,
    deployment: DeploySpec | None = None,
    **options: Any,
) -> FastAPI:
    """A FastAPI app serving one model.

    Args:
        workspace: A Workspace, or the home folder of one (None: ``$LOOPML_HOME`` or
            ``./.loopml``); opened when the app starts. A bundle path is served without
            one when none exists (and then without a prediction log).
        reference: ``models:/name@alias`` (followed: hot swap when the alias moves),
            ``models:/name/3``, ``runs:/<run id>/model``, or a bundle folder or archive.
        deployment: A canary, shadow or A/B test of a candidate version beside the
            alias's holder (:class:`~loopml.serving.deployment.DeploySpec`). A server
            following an alias also runs the canaries requested of it
            (:func:`~loopml.serving.deployment.request_deployment`), one at a time.
        options: :class:`~loopml.serving.options.ServeOptions` fields.

    Example:
        >>> app = create_app(ws, "models:/churn@production", max_batch_size=32)
        >>> uvicorn.run(app)
    """
    settings = ServeOptions(**options)
    source = ModelSource.of(reference, settings.name)
    metrics = ServingMetrics()
    metrics.batch_limit_rows.set(settings.max_batch_size if settings.batching else 0)
    metrics.batch_limit_wait.set(settings.max_latency_ms / 1000 if settings.batching else 0)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened, owned = _open_workspace(workspace, source)
        executor = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="loopml-model")
        log = _prediction_log(opened, settings)
        if log is not None:
            metrics.watch_log(lambda: float(log.dropped), lambda: float(log.queued_rows))
        state = ServingState(opened, source, settings, metrics, executor, log)
        state.on_swap.append(lambda: setattr(app, "openapi_schema", None))
        app.state.serving = state
        await state.start()
        if not gc.isenabled():  # serve() turned the collector off for the start-up
            _settle_collector()
        runner = None
        if deployment is not None:
            state.deployment = Deployment(state, deployment)
            await state.deployment.start()
            runner = asyncio.create_task(state.deployment.run(), name="loopml-deployment")
        follower = None
        requests = None
        if source.alias is not None and settings.poll_seconds > 0:
            follower = asyncio.create_task(state.follow_alias(), name="loopml-follow-alias")
            if opened is not None and source.model is not None:
                requests = RequestFollower(state, settings.poll_seconds)
                requests.start()
        health = None
        if opened is not None and settings.health_interval > 0:
            health = HealthRecorder(
                opened,
                source.model or source.name,
                metrics,
                served_name=source.name,
                interval=settings.health_interval,
            )
            health.start()
        try:
            yield
        finally:
            for task in (follower, runner):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if requests is not None:  # a request running here ends as failed
                await requests.stop()
            await state.close()
            if log is not None:
                await asyncio.to_thread(log.close)
            if health is not None:  # after the log's close: its last drops are counted
                await health.stop()
            executor.shutdown(wait=True)
            if owned and opened is not None:
                opened.close()

    app = FastAPI(
        title=f"loopml model server: {source.name}",
        description=f"Serves {source.reference}.",
        lifespan=lifespan,
        default_response_class=JSONBytesResponse,
    )
    app.include_router(routes.router)
    app.include_router(oip.router)
    _add_error_handlers(app)
    app.add_middleware(_RequestContext, metrics=metrics, model=source.name)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _settle_collector() -> None:
    """Freezes what start-up made and turns the cyclic collector back on.

    :func:`~loopml.serving.serve` turns the collector off while it imports and loads
    (collections of the growing heap cost a fifth of the start-up time). What start-up
    made (modules, the model) lives as long as the process: frozen, out of the
    collector's sight, a full collection no longer walks it, which otherwise stalls
    the event loop for tens of milliseconds (the p99 latency) every few seconds.
    """
    gc.freeze()
    gc.enable()


def _open_workspace(
    given: Workspace | str | os.PathLike[str] | None, source: ModelSource
) -> tuple[Workspace | None, bool]:
    """The workspace to serve from, and whether the app opened it (and closes it)."""
    from loopml.workspace import Workspace

    if isinstance(given, Workspace):
        return given, False
    try:
        return Workspace.open(given, create=False), True
    except NotFoundError:
        if source.model is not None or source.reference.startswith("runs:/"):
            raise
        logger.info("No workspace: serving %s without a prediction log.", source.reference)
        return None, False


def _prediction_log(workspace: Workspace | None, options: ServeOptions) -> Any:
    if workspace is None or not options.log_predictions:
        return None
    from loopml.serving.predlog import PredictionLog

    return PredictionLog(workspace)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, with request bodies typed by the served model's signature."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    state: ServingState | None = getattr(app.state, "serving", None)
    arms = state.router.arms if state is not None else ()
    signature = arms[0].served.signature if arms else None
    document.setdefault("components", {}).setdefault("schemas", {}).update(
        request_schemas(signature)
    )
    for path in document["paths"].values():
        for operation in path.values():
            model = operation.pop("x-loopml-request", None)
            if model is not None:
                operation["requestBody"] = {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}}
                    },
                }
    app.openapi_schema = document
    return document


def _error(
    request: Request, status: int, error: str, detail: str, **extra: Any
) -> JSONBytesResponse:
    body = {"error": error, "detail": detail, **{k: v for k, v in extra.items() if v}}
    if request.url.path.startswith("/v2/"):
        # The protocol's error body is {"error": message}: clients show only that field.
        body.update(error=detail, code=error)
    body["request_id"] = request.scope.get("state", {}).get("request_id")
    return JSONBytesResponse(body, status_code=status)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestRefused)
    async def refused(request: Request, error: RequestRefused) -> JSONBytesResponse:
        problems = [problem.to_dict() for problem in error.problems]
        return _error(request, error.status, error.error, error.detail, problems=problems)

    @app.exception_handler(NotReadyError)
    async def not_ready(request: Request, error: NotReadyError) -> JSONBytesResponse:
        return _error(request, 503, "not_ready", f"The model is not ready: {error}")

    @app.exception_handler(ModelFailed)
    async def model_failed(request: Request, error: ModelFailed) -> JSONBytesResponse:
        return _error(request, 500, "model_error", error.detail, error_id=error.error_id)

    @app.exception_handler(LoopmlError)
    async def loopml_error(request: Request, error: LoopmlError) -> JSONBytesResponse:
        kind = "not_found" if isinstance(error, NotFoundError) else type(error).__name__
        return _error(request, error.http_status, kind, str(error))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONBytesResponse:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        detail = str(error.detail)
        if error.status_code == 404:
            detail = f"No route {request.url.path}; see /docs for the routes this server has."
        return _error(request, error.status_code, kind, detail)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONBytesResponse:
        problems = [
            {
                "problem": item["type"],
                "message": f"{'.'.join(map(str, item['loc']))}: {item['msg']}",
            }
            for item in error.errors()
        ]
        return _error(request, 422, "invalid_request", "The request is invalid.", problems=problems)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONBytesResponse:
        error_id = uuid.uuid4().hex[:12]
        logger.error("Unexpected error (error id %s)", error_id, exc_info=error)
        return _error(
            request,
            500,
            "internal_error",
            f"The server failed on this request ({type(error).__name__}); error id "
            f"{error_id}, the server log has the traceback.",
            error_id=error_id,
        )


class _RequestIds:
    """Request ids: 32 hex digits, a random per-process half and a counter (unique
    within the process, unlikely to repeat across processes), at a fraction of
    ``uuid4``'s cost."""

    def __init__(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._count = itertools.count(int.from_bytes(os.urandom(4)))

    def next(self) -> str:
        return f"{self._prefix}{next(self._count) & 0xFFFFFFFFFFFFFFFF:016x}"


class _RequestContext:
    """Gives each request an id (``X-Request-ID``, honoured or made) and counts it.

    Plain ASGI rather than BaseHTTPMiddleware, which costs a task per request. It also
    runs the simple predict route itself (the hot path): the same endpoint function
    and the app's own exception handlers, without FastAPI's routing and dependency
    machinery, which cost as much as the rest of a single-row request.
    """

    def __init__(self, app: ASGIApp, metrics: ServingMetrics, model: str) -> None:
        self.app = app
        self.metrics = metrics
        self.model = model
        self.ids = _RequestIds()
        self.predict_route = next(
            (r for r in routes.router.routes if getattr(r, "path", None) == _PREDICT_ROUTE),
            None,
        )
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._latencies: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"")
        text = given.decode("latin-1")
        identifier = text if text and _REQUEST_ID.fullmatch(text) else self.ids.next()
        scope.setdefault("state", {})["request_id"] = identifier
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", identifier.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        try:
            name = self._predicted_model(scope)
            if name is None:
                await self.app(scope, receive, send_with_id)
            else:
                scope["route"] = self.predict_route
                await _predict(name, scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            version = scope["state"].get("model_version", "")
            seconds = time.perf_counter() - started
            self._count(version, path, status, seconds)
            traffic = self.metrics.traffic
            if traffic is not None:
                traffic.observe(version, path, status, seconds)

    def _predicted_model(self, scope: Scope) -> str | None:
        """The model name of a ``POST /models/{name}/predict``, else None."""
        if self.predict_route is None or scope["method"] != "POST":
            return None
        path: str = scope["path"]
        if not (path.startswith("/models/") and path.endswith("/predict")):
            return None
        name = path[8:-8]
        return name if name and "/" not in name else None

    def _count(self, version: str, path: str, status: int, seconds: float) -> None:
        """Counts a request; the labelled children are looked up once, not per request."""
        counter = self._counters.get((version, path, status))
        if counter is None:
            counter = self.metrics.requests.labels(self.model, version, path, str(status))
            self._counters[version, path, status] = counter
        counter.inc()
        latency = self._latencies.get(path)
        if latency is None:
            latency = self._latencies[path] = self.metrics.latency.labels(self.model, path)
        latency.observe(seconds)


async def _predict(name: str, scope: Scope, receive: Receive, send: Send) -> None:
    """Runs the predict endpoint, and any error through the app's exception handlers,
    as FastAPI would (the same bodies and statuses)."""
    request = Request(scope, receive)
    response: Response
    try:
        response = await routes.predict(name, request)
    except Exception as error:
        handlers = request.app.exception_handlers
        handler = next(
            handlers[kind] for kind in type(error).__mro__ if kind in handlers
        )  # Exception's is always there
        response = handler(request, error)
        if not isinstance(response, Response):
            response = await response
    await response(scope, receive, send)
