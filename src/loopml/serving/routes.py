"""The model server's own routes: simple JSON predictions, health and metrics.

The Open Inference Protocol routes are in :mod:`loopml.serving.oip`.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.background import BackgroundTask

from loopml.errors import ConfigError, NotFoundError, ValidationError
from loopml.serving.inputs import block_from_body, check_frame, frame_from_body, read_json
from loopml.serving.metrics import CONTENT_TYPE_LATEST
from loopml.serving.responses import JSONBytesResponse
from loopml.serving.schemas import ErrorBody, FeedbackRequest, FeedbackResponse, PredictResponse
from loopml.serving.served import ServedModel
from loopml.serving.state import ROUTING_HEADER, ServingState

__all__ = ["router", "serving_state"]

router = APIRouter()

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (400, "Malformed JSON or an empty body."),
        (404, "No such model or version here."),
        (413, "The body is larger than --max-body-mb."),
        (415, "The body is not JSON."),
        (422, "The data does not fit the model's signature; each problem is listed."),
        (500, "The model raised; error_id points at the logged traceback."),
        (503, "The model is not loaded (yet)."),
    )
}


def serving_state(request: Request) -> ServingState:
    state: ServingState = request.app.state.serving
    return state


def request_id(request: Request) -> str:
    return str(request.scope["state"]["request_id"])


def check_name(state: ServingState, name: str) -> None:
    if name != state.router.name:
        raise NotFoundError(
            f"No model {name!r} is served here; this server serves {state.router.name!r}."
        )


def mark(request: Request, served: ServedModel) -> None:
    """Names the version in the request's metrics labels."""
    request.scope["state"]["model_version"] = served.label


@router.post(
    "/models/{name}/predict",
    response_model=PredictResponse,
    responses=ERRORS,
    openapi_extra={"x-loopml-request": "PredictRequest"},
    summary="Predict rows given as records or columns",
)
async def predict(name: str, request: Request) -> Response:
    """Predicts ``{"records": [{column: value}, ...]}`` or ``{"columns": {column: [...]}}``;
    classifiers also return probabilities, one column per class."""
    started = time.perf_counter()
    state = serving_state(request)
    check_name(state, name)
    body, special = await read_json(request, state.options.max_body_bytes)
    served, arm = state.router.pick(key=request.headers.get(ROUTING_HEADER))
    mark(request, served)
    # The fast path takes the requests it can prove valid; the rest, and every refusal,
    # go through the frame path, whose checks name each problem.
    rows = block_from_body(body, served.plan, special)
    frame = check_frame(frame_from_body(body), served.model, special) if rows is None else rows
    identifier = request_id(request)
    prediction = await state.predict(served, frame, identifier, arm)
    content: dict[str, Any] = {"predictions": prediction.predictions.tolist()}
    if prediction.probabilities is not None:
        content["probabilities"] = prediction.probabilities.tolist()
        content["classes"] = served.classes
    content.update(model=served.name, version=served.version, request_id=identifier)
    task = BackgroundTask(state.finish, served, arm, frame, prediction, identifier, started)
    return JSONBytesResponse(content, background=task)


@router.post(
    "/feedback",
    response_model=FeedbackResponse,
    responses=ERRORS,
    summary="Record true labels of logged predictions",
)
async def feedback(body: FeedbackRequest, request: Request) -> Response:
    """Joins later with the prediction log for monitoring and A/B tests. Idempotent per
    request id and row: the same again replaces the label."""
    import asyncio

    import pandas as pd

    state = serving_state(request)
    if state.workspace is None:
        raise ConfigError("This server has no workspace to store feedback in.")
    items = body.items or []
    if body.request_id is not None:
        items = [*items, body.model_copy(update={"items": None})]  # type: ignore[list-item]
    if not items or any(item.label is None for item in items):
        raise ValidationError(
            'Send {"request_id": ..., "label": ...} or {"items": [...]}, each with a label.'
        )
    frame = pd.DataFrame(
        {
            "request_id": [item.request_id for item in items],
            "row": [item.row for item in items],
            "label": [item.label for item in items],
            "model": state.router.name,
        }
    )
    stored = await asyncio.to_thread(state.workspace.log_feedback_frame, frame)
    return JSONBytesResponse({"stored": stored})


@router.get("/health/live", summary="The process is up")
async def live() -> dict[str, str]:
    return {"status": "live"}


@router.get("/health/ready", summary="The model is loaded and warmed up", responses=ERRORS)
async def ready(request: Request) -> Response:
    state = serving_state(request)
    if not state.router.ready:
        return JSONBytesResponse(
            {"status": "not_ready", "error": "not_ready", "detail": state.router.reason},
            status_code=503,
        )
    versions = [
        {"version": served.version, "runtime": served.runtime} for served in state.router.versions()
    ]
    return JSONBytesResponse({"status": "ready", "model": state.router.name, "versions": versions})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    return Response(serving_state(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)
