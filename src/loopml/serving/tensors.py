"""Open Inference Protocol v2 tensors: request inputs to rows, predictions to outputs.

One input tensor per signature column, shape ``[n]`` or ``[n, 1]``, data flat (or
nested row-major); BYTES carries text (and ISO times), numbers and booleans their own
datatypes. Tensor data may also follow the JSON as raw bytes (the binary tensor data
extension that Triton's clients use by default). Outputs are ``predict`` (shape ``[n]``)
and, for classifiers, ``probabilities`` (shape ``[n, classes]``), always as JSON.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticError

from loopml.models import ColumnSpec, Signature
from loopml.serving.inputs import Problem, RequestRefused
from loopml.serving.served import Prediction

__all__ = [
    "InferenceRequest",
    "InferenceResponse",
    "datatype_of",
    "frame_from_tensors",
    "output_tensors",
    "parse_request",
    "read_binary_inputs",
    "requested_outputs",
]

_INTEGERS = ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
_FLOATS = ("FP16", "FP32", "FP64")
# The datatypes each contract type accepts; the first is the one the metadata names.
_ACCEPTED = {
    "int": ("INT64", *_INTEGERS),
    "float": ("FP64", *_FLOATS, *_INTEGERS),
    "bool": ("BOOL",),
}
OUTPUTS = ("predict", "probabilities")


class RequestInput(BaseModel):
    """One named input tensor."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    shape: list[int] = Field(min_length=1, max_length=2)
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None  # None when it follows as binary data


class RequestOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    """The body of ``POST /v2/models/{name}/infer``."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


def datatype_of(column: ColumnSpec) -> str:
    """The tensor datatype a column is sent as."""
    return _ACCEPTED.get(column.type, ("BYTES",))[0]


def parse_request(body: Any) -> InferenceRequest:
    try:
        return InferenceRequest.model_validate(body)
    except PydanticError as error:
        problems = [
            Problem(
                "bad_request_shape",
                f"{'.'.join(map(str, item['loc'])) or 'body'}: {item['msg']}",
            )
            for item in error.errors(include_url=False)[:20]
        ]
        raise RequestRefused.invalid(problems) from None


_BINARY_TYPES: dict[str, str] = {
    "BOOL": "?",
    "INT8": "i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}


def read_binary_inputs(request: InferenceRequest, binary: bytes) -> None:
    """Fills in the data of inputs sent as raw bytes (``binary_data_size``), in order."""
    offset = 0
    problems = []
    for tensor in request.inputs:
        size = (tensor.parameters or {}).get("binary_data_size")
        if size is None:
            continue
        if not isinstance(size, int) or size < 0 or offset + size > len(binary):
            raise RequestRefused.invalid(
                [
                    Problem(
                        "bad_binary_data",
                        f"Input {tensor.name!r}: binary_data_size {size!r} "
                        f"does not fit the {len(binary) - offset} bytes left.",
                        tensor.name,
                    )
                ]
            )
        chunk = binary[offset : offset + size]
        offset += size
        try:
            tensor.data = _decode(chunk, tensor.datatype)
        except (ValueError, UnicodeDecodeError) as error:
            problems.append(
                Problem("bad_binary_data", f"Input {tensor.name!r}: {error}.", tensor.name)
            )
    if offset != len(binary):
        problems.append(
            Problem(
                "bad_binary_data",
                f"{len(binary) - offset} bytes of binary data belong "
                "to no input; set binary_data_size on each binary input.",
            )
        )
    if problems:
        raise RequestRefused.invalid(problems)


def _decode(chunk: bytes, datatype: str) -> list[Any]:
    if datatype == "BYTES":  # each element: a 4-byte little-endian length, then the bytes
        values, at = [], 0
        while at < len(chunk):
            if at + 4 > len(chunk):
                raise ValueError("a BYTES element is cut short")
            length = int.from_bytes(chunk[at : at + 4], "little")
            values.append(chunk[at + 4 : at + 4 + length].decode("utf-8"))
            at += 4 + length
        return values
    dtype = _BINARY_TYPES.get(datatype)
    if dtype is None:
        raise ValueError(f"unknown datatype {datatype!r}")
    numbers: list[Any] = np.frombuffer(chunk, dtype=np.dtype(dtype)).tolist()
    return numbers


def frame_from_tensors(request: InferenceRequest, signature: Signature) -> pd.DataFrame:
    """The rows the input tensors hold, or RequestRefused(422) naming every problem."""
    known = {column.name: column for column in signature.inputs or []}
    problems: list[Problem] = []
    columns: dict[str, list[Any]] = {}
    rows: set[int] = set()
    for tensor in request.inputs:
        column = known.get(tensor.name)
        if signature.inputs is not None and column is None:
            problems.append(
                Problem(
                    "extra_column",
                    f"Input {tensor.name!r} is not an input of this model.",
                    tensor.name,
                )
            )
            continue
        if tensor.name in columns:
            problems.append(
                Problem("duplicate_input", f"Input {tensor.name!r} is given twice.", tensor.name)
            )
            continue
        if tensor.data is None:
            problems.append(Problem("no_data", f"Input {tensor.name!r} has no data.", tensor.name))
            continue
        data = _flat(tensor.data)
        count = tensor.shape[0]
        if tensor.shape not in ([count], [count, 1]) or count != len(data) or count < 0:
            problems.append(
                Problem(
                    "bad_shape",
                    f"Input {tensor.name!r} has shape {tensor.shape} and {len(data)} values; "
                    "send shape [n] or [n, 1] with n values.",
                    tensor.name,
                    "[n] or [n, 1]",
                )
            )
            continue
        if column is not None:
            accepted = _ACCEPTED.get(column.type, ("BYTES",))
            if tensor.datatype not in accepted:
                problems.append(
                    Problem(
                        "wrong_datatype",
                        f"Input {tensor.name!r} ({column.type}) must have datatype "
                        f"{accepted[0]}{_others(accepted)}, not {tensor.datatype!r}.",
                        tensor.name,
                        accepted[0],
                        tensor.datatype,
                    )
                )
                continue
        columns[tensor.name] = data
        rows.add(count)
    if len(rows) > 1:
        problems.append(
            Problem("bad_shape", f"Every input needs as many rows; got {sorted(rows)}.")
        )
    if problems:
        raise RequestRefused.invalid(problems)
    return pd.DataFrame(columns)


def _others(accepted: tuple[str, ...]) -> str:
    rest = sorted(set(accepted[1:]) - {accepted[0]})
    return f" (or {', '.join(rest)})" if rest else ""


def _flat(data: list[Any]) -> list[Any]:
    if data and isinstance(data[0], list):
        return [value for row in data for value in (row if isinstance(row, list) else [row])]
    return data


def requested_outputs(request: InferenceRequest, classifier: bool) -> list[str]:
    """The outputs a client asked for (all by default); 422 for one the model lacks."""
    available = OUTPUTS if classifier else OUTPUTS[:1]
    if not request.outputs:
        return list(available)
    names = [output.name for output in request.outputs]
    unknown = [name for name in names if name not in available]
    if unknown:
        raise RequestRefused.invalid(
            [
                Problem(
                    "unknown_output",
                    f"This model has no output {name!r}; it has {', '.join(available)}.",
                )
                for name in unknown
            ]
        )
    return names


def output_tensors(prediction: Prediction, names: list[str]) -> list[dict[str, Any]]:
    """The named outputs as OIP tensors."""
    predictions = prediction.predictions
    tensors = []
    if "predict" in names:
        datatype = _output_datatype(predictions)
        data = predictions.tolist() if datatype != "BYTES" else [str(v) for v in predictions]
        tensors.append(
            {"name": "predict", "shape": [len(predictions)], "datatype": datatype, "data": data}
        )
    if "probabilities" in names and prediction.probabilities is not None:
        probabilities = np.asarray(prediction.probabilities, dtype=np.float64)
        tensors.append(
            {
                "name": "probabilities",
                "shape": list(probabilities.shape),
                "datatype": "FP64",
                "data": probabilities.ravel().tolist(),
            }
        )
    return tensors


def _output_datatype(values: np.ndarray[Any, Any]) -> str:
    kind = values.dtype.kind
    if kind == "b":
        return "BOOL"
    if kind in "iu":
        return "INT64"
    if kind == "f":
        return "FP64"
    return "BYTES"
