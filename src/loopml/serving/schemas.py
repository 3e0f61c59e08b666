"""Pydantic models of the server's requests and responses, the per-model ones built from
the served model's signature, so the OpenAPI document describes its real inputs.

The data itself is checked by the vectorized path in :mod:`loopml.serving.inputs`; these
models are the contract clients (and fuzzers) read.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model

from loopml.models import Signature
from loopml.serving.tensors import InferenceRequest

__all__ = ["ErrorBody", "PredictResponse", "request_schemas"]

_TYPES: dict[str, Any] = {
    "int": int,
    "float": float,
    "bool": bool,
    "string": str,
    "category": str,
    "datetime": datetime,
    "date": date,
}


class PredictResponse(BaseModel):
    predictions: list[Any]
    probabilities: list[list[float]] | None = Field(
        default=None, description="Classifiers: one row per prediction, columns as classes."
    )
    classes: list[Any] | None = None
    model: str
    version: int | None = Field(description="The registered version (null for a bundle).")
    request_id: str


class Problem(BaseModel):
    problem: str
    message: str
    column: str | None = None
    expected: str | None = None
    example: Any = None
    row: Any = None


class ErrorBody(BaseModel):
    error: str = Field(
        description="What kind of error (invalid_input, not_found, ...); on /v2 routes, as "
        "the Open Inference Protocol has it, the message itself (and the kind in code)."
    )
    detail: str = Field(description="What went wrong and what to do.")
    code: str | None = Field(default=None, description="/v2 routes: the kind of error.")
    problems: list[Problem] | None = None
    error_id: str | None = Field(default=None, description="500s: the id in the server log.")
    request_id: str | None = None


def _predict_request(signature: Signature | None) -> Any:
    """``{"records": [...]}`` or ``{"columns": {...}}`` typed from ``signature``."""
    if signature is None or signature.inputs is None:
        record: Any = dict[str, Any]
        columns: Any = dict[str, list[Any]]
    else:
        record_fields: dict[str, Any] = {}
        column_fields: dict[str, Any] = {}
        for index, column in enumerate(signature.inputs):
            kind = _TYPES.get(column.type, str)
            value = kind | None if column.nullable else kind
            default = None if column.nullable else ...
            record_fields[f"c{index}"] = (value, Field(default, alias=column.name))
            column_fields[f"c{index}"] = (list[value], Field(..., alias=column.name))  # type: ignore[valid-type]
        strict = ConfigDict(extra="forbid")
        record = create_model("Record", __config__=strict, **record_fields)
        columns = create_model("Columns", __config__=strict, **column_fields)
    records_request = create_model(
        "RecordsRequest",
        __config__=ConfigDict(extra="forbid"),
        records=(list[record], Field(..., min_length=1)),
    )
    columns_request = create_model(
        "ColumnsRequest", __config__=ConfigDict(extra="forbid"), columns=(columns, ...)
    )
    return records_request | columns_request


def request_schemas(signature: Signature | None) -> dict[str, dict[str, Any]]:
    """JSON schemas for ``components.schemas``: ``PredictRequest`` and
    ``InferenceRequest`` with every model they refer to."""
    found: dict[str, dict[str, Any]] = {}
    template = "#/components/schemas/{model}"
    for name, shape in (
        ("PredictRequest", _predict_request(signature)),
        ("InferenceRequest", InferenceRequest),
    ):
        schema = TypeAdapter(shape).json_schema(ref_template=template)
        found.update(schema.pop("$defs", {}))
        found[name] = schema
    return found


class FeedbackItem(BaseModel):
    request_id: str = Field(min_length=1, max_length=128, description="The prediction's id.")
    label: Any = Field(description="The true label (or value) of that row.")
    row: int = Field(default=0, ge=0, description="The row within the request.")


class FeedbackRequest(BaseModel):
    """One label, or many under ``items``; the same request id and row again replaces it."""

    request_id: str | None = Field(default=None, min_length=1, max_length=128)
    label: Any = None
    row: int = Field(default=0, ge=0)
    items: list[FeedbackItem] | None = None


class FeedbackResponse(BaseModel):
    stored: int
