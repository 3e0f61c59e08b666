"""Open Inference Protocol v2 (the KServe and Triton REST protocol) routes.

Server and model metadata, health, and inference with named input tensors; see
:mod:`loopml.serving.tensors` for how tensors map to rows. The binary tensor data
extension is read for inputs; outputs are always JSON.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.background import BackgroundTask

from loopml.serving.inputs import RequestRefused, check_frame, parse_json, read_body
from loopml.serving.responses import JSONBytesResponse
from loopml.serving.routes import ERRORS, check_name, mark, request_id, serving_state
from loopml.serving.state import ROUTING_HEADER
from loopml.serving.tensors import (
    InferenceResponse,
    datatype_of,
    frame_from_tensors,
    output_tensors,
    parse_request,
    read_binary_inputs,
    requested_outputs,
)

__all__ = ["router"]

router = APIRouter(prefix="/v2", tags=["Open Inference Protocol v2"])


@router.get("", summary="Server metadata")
async def server_metadata() -> dict[str, Any]:
    from loopml import __version__

    return {"name": "loopml", "version": __version__, "extensions": []}


@router.get("/health/live", summary="The server is live")
async def live() -> dict[str, bool]:
    return {"live": True}


@router.get("/health/ready", summary="Every served model is ready", responses=ERRORS)
async def ready(request: Request) -> Response:
    state = serving_state(request)
    if state.router.ready:
        return JSONBytesResponse({"ready": True})
    return JSONBytesResponse(
        {"ready": False, "error": "not_ready", "detail": state.router.reason}, status_code=503
    )


@router.get("/models/{name}", summary="Model metadata", responses=ERRORS)
async def model_metadata(name: str, request: Request) -> dict[str, Any]:
    return _metadata(request, name, None)


@router.get("/models/{name}/versions/{version}", summary="Model version metadata", responses=ERRORS)
async def version_metadata(name: str, version: str, request: Request) -> dict[str, Any]:
    return _metadata(request, name, version)


@router.get("/models/{name}/ready", summary="The model is ready", responses=ERRORS)
async def model_ready(name: str, request: Request) -> Response:
    return _ready(request, name, None)


@router.get(
    "/models/{name}/versions/{version}/ready", summary="The version is ready", responses=ERRORS
)
async def version_ready(name: str, version: str, request: Request) -> Response:
    return _ready(request, name, version)


@router.post(
    "/models/{name}/infer",
    response_model=InferenceResponse,
    responses=ERRORS,
    openapi_extra={"x-loopml-request": "InferenceRequest"},
    summary="Inference with named input tensors",
)
async def infer(name: str, request: Request) -> Response:
    return await _infer(request, name, None)


@router.post(
    "/models/{name}/versions/{version}/infer",
    response_model=InferenceResponse,
    responses=ERRORS,
    openapi_extra={"x-loopml-request": "InferenceRequest"},
    summary="Inference on one version",
)
async def infer_version(name: str, version: str, request: Request) -> Response:
    return await _infer(request, name, version)


def _metadata(request: Request, name: str, version: str | None) -> dict[str, Any]:
    state = serving_state(request)
    check_name(state, name)
    served, _ = state.router.pick(version)
    signature = served.signature
    inputs = [
        {"name": column.name, "datatype": datatype_of(column), "shape": [-1]}
        for column in signature.inputs or []
    ]
    outputs = [{"name": "predict", "datatype": _predict_type(served.classes), "shape": [-1]}]
    if served.classes is not None:
        outputs.append(
            {"name": "probabilities", "datatype": "FP64", "shape": [-1, len(served.classes)]}
        )
    return {
        "name": name,
        "versions": [s.label for s in state.router.versions()],
        "platform": f"loopml-{served.runtime}",
        "inputs": inputs,
        "outputs": outputs,
        "parameters": {"classes": served.classes} if served.classes is not None else {},
    }


def _predict_type(classes: list[Any] | None) -> str:
    if classes is None:
        return "FP64"
    if all(isinstance(value, bool) for value in classes):
        return "BOOL"
    if all(isinstance(value, int) for value in classes):
        return "INT64"
    return "BYTES"


def _ready(request: Request, name: str, version: str | None) -> Response:
    state = serving_state(request)
    check_name(state, name)
    if not state.router.ready:
        return JSONBytesResponse(
            {"name": name, "ready": False, "detail": state.router.reason}, status_code=503
        )
    state.router.pick(version)  # NotFoundError for a version not served
    return JSONBytesResponse({"name": name, "ready": True})


async def _infer(request: Request, name: str, version: str | None) -> Response:
    started = time.perf_counter()
    state = serving_state(request)
    check_name(state, name)
    header = request.headers.get("inference-header-content-length")
    raw = await read_body(request, state.options.max_body_bytes, binary=header is not None)
    length = int(header) if header is not None and header.isdigit() else len(raw)
    if length > len(raw):
        raise RequestRefused(
            400, "bad_binary_data", f"Inference-Header-Content-Length {length} exceeds the body."
        )
    body, special = parse_json(raw[:length])
    parsed = parse_request(body)
    read_binary_inputs(parsed, raw[length:])
    served, arm = state.router.pick(version, key=request.headers.get(ROUTING_HEADER))
    mark(request, served)
    outputs = requested_outputs(parsed, classifier=served.classes is not None)
    frame = check_frame(frame_from_tensors(parsed, served.signature), served.model, special)
    identifier = parsed.id or request_id(request)
    prediction = await state.predict(served, frame, identifier, arm)
    content = {
        "model_name": served.name,
        "model_version": None if served.version is None else served.label,
        "id": identifier,
        "outputs": output_tensors(prediction, outputs),
    }
    task = BackgroundTask(state.finish, served, arm, frame, prediction, identifier, started)
    return JSONBytesResponse(content, background=task)
