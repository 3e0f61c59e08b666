"""Reading and checking prediction requests: body limits, JSON, and the signature's rules.

Two paths give the same answers. The fast path (:func:`block_from_body`) takes only
requests it can prove valid without pandas: every row has exactly the signature's
numeric columns, each value an int or float within range; it returns the rows as one
array (:class:`RowBlock`), which the micro-batcher joins with others' before the one
DataFrame the model needs. Anything else (a missing, extra or mistyped value, NaN, text
columns, a mixed int and float signature) takes the frame path: the request becomes a
DataFrame and :meth:`LoadedModel.prepare` checks it a column at a time; a request that
fails lists every problem (column, what was expected, an example bad value and its row)
for the 422 response. So the fast path never refuses anything itself: its verdicts are
the frame path's by construction.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import orjson
import pandas as pd
from starlette.requests import Request

from loopml.errors import ValidationError
from loopml.models import ColumnSpec, LoadedModel, Signature

__all__ = [
    "Problem",
    "RequestRefused",
    "RowBlock",
    "RowPlan",
    "block_from_body",
    "check_frame",
    "frame_from_body",
    "parse_json",
    "read_body",
    "read_json",
]

_NUMERIC = ("int", "float")
_LIMITS = {"int": float(2**63 - 1), "float": float(np.finfo(np.float32).max)}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request's data."""

    problem: str  # missing_column, extra_column, wrong_type, missing_value, not_finite, ...
    message: str
    column: str | None = None
    expected: str | None = None
    example: Any = None
    row: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if value is not None}


class RequestRefused(Exception):
    """A request the server answers with a 4xx before any model sees it."""

    def __init__(
        self, status: int, error: str, detail: str, problems: list[Problem] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.problems = problems or []

    @classmethod
    def invalid(cls, problems: list[Problem]) -> RequestRefused:
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        summary = "; ".join(problem.message.rstrip(".") for problem in problems[:5])
        more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        return cls(
            422, "invalid_input", f"The request's data has {count}: {summary}{more}.", problems
        )


async def read_json(request: Request, limit: int) -> tuple[Any, bool]:
    """The request's JSON body and whether it used NaN or Infinity literals.

    Raises:
        RequestRefused: 415 for a content type other than JSON, 413 for a body over
            ``limit`` bytes (by Content-Length, or counted as it streams), 400 for
            malformed JSON.
    """
    return parse_json(await read_body(request, limit))


async def read_body(request: Request, limit: int, binary: bool = False) -> bytes:
    """The raw body, at most ``limit`` bytes; JSON (or, if ``binary``, octet-stream)."""
    content_type = request.headers.get("content-type", "application/json")
    media = content_type.split(";")[0].strip().lower()
    allowed = media == "application/json" or media.endswith("+json")
    if not allowed and not (binary and media == "application/octet-stream"):
        raise RequestRefused(
            415,
            "unsupported_media_type",
            f"Send the request as JSON (Content-Type: application/json), not {media or 'empty'}.",
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> tuple[Any, bool]:
    """Parsed JSON and whether it used NaN or Infinity literals; 400 when malformed."""
    if not body.strip():
        raise RequestRefused(400, "empty_body", "The request has no body; send a JSON object.")
    try:
        return orjson.loads(body), False
    except orjson.JSONDecodeError as error:
        try:  # JSON has no NaN or Infinity; Python's parser reads them, orjson does not
            return json.loads(body), True
        except (ValueError, RecursionError):
            raise RequestRefused(
                400, "malformed_json", f"The request body is not valid JSON: {error}."
            ) from None


def _too_large(size: int, limit: int) -> RequestRefused:
    return RequestRefused(
        413,
        "payload_too_large",
        f"The request body is {size:,} bytes or more; this server takes at most {limit:,} "
        "(--max-body-mb). Split the rows over several requests.",
    )


def frame_from_body(body: Any) -> pd.DataFrame:
    """The rows of a simple JSON request: ``{"records": [...]}`` or ``{"columns": {...}}``."""
    if not isinstance(body, Mapping) or len(body) != 1 or not {"records", "columns"} & set(body):
        given = sorted(body) if isinstance(body, Mapping) else type(body).__name__
        raise RequestRefused.invalid(
            [
                Problem(
                    "bad_request_shape",
                    'Send {"records": [{column: value, ...}, ...]} or '
                    f'{{"columns": {{column: [values], ...}}}}; got {given}.',
                )
            ]
        )
    if "records" in body:
        records = body["records"]
        if not isinstance(records, list) or not records:
            raise RequestRefused.invalid([_empty() if records == [] else _not("records", "a list")])
        for index, record in enumerate(records):
            if not isinstance(record, Mapping):
                raise RequestRefused.invalid([_not(f"records[{index}]", "an object")])
        return pd.DataFrame.from_records(records)
    columns = body["columns"]
    if not isinstance(columns, Mapping) or not columns:
        raise RequestRefused.invalid([_not("columns", "an object of column: [values]")])
    lengths = {}
    for name, values in columns.items():
        if not isinstance(values, list):
            raise RequestRefused.invalid([_not(f"columns.{name}", "a list of values")])
        lengths[name] = len(values)
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{name}: {count}" for name, count in lengths.items())
        raise RequestRefused.invalid(
            [Problem("bad_shape", f"Every column needs as many values; got {shown}.")]
        )
    return pd.DataFrame(dict(columns))


@dataclass(frozen=True, slots=True)
class RowBlock:
    """Checked rows as one 2-D array, columns in the signature's order.

    What the fast path hands the model call and the prediction log instead of a
    DataFrame: joining many requests' blocks is one ``np.concatenate``.
    """

    values: np.ndarray[Any, Any]
    columns: pd.Index

    def __len__(self) -> int:
        return len(self.values)

    def frame(self) -> pd.DataFrame:
        """The rows as the DataFrame the frame path would have produced."""
        return pd.DataFrame(self.values, columns=self.columns, copy=False)

    @staticmethod
    def join(blocks: list[RowBlock]) -> RowBlock:
        """One block of ``blocks``' rows in turn (they share columns and dtype)."""
        if len(blocks) == 1:
            return blocks[0]
        return RowBlock(np.concatenate([block.values for block in blocks]), blocks[0].columns)


@dataclass(frozen=True)
class RowPlan:
    """What the fast path needs of a signature: its column names, one dtype, a limit.

    Built once per served model (:meth:`of`); None when the signature has a column that
    is not a number, mixes int and float columns, or has no inputs at all.
    """

    names: tuple[str, ...]
    keys: frozenset[str]
    dtype: np.dtype[Any]
    limit: float
    columns: pd.Index

    @classmethod
    def of(cls, signature: Signature) -> RowPlan | None:
        inputs = signature.inputs
        if not inputs:
            return None
        kinds = {column.type for column in inputs}
        if len(kinds) != 1 or not kinds <= set(_NUMERIC):
            return None
        (kind,) = kinds
        names = tuple(column.name for column in inputs)
        if len(set(names)) != len(names):
            return None
        return cls(
            names,
            frozenset(names),
            np.dtype(np.float64 if kind == "float" else np.int64),
            _LIMITS[kind],
            pd.Index(list(names)),
        )


_EXACT_INT = 2**53  # beyond it an int's float64 may round: left to the frame path
_INT64 = 2**63


def block_from_body(body: Any, plan: RowPlan | None, special_floats: bool) -> RowBlock | None:
    """The rows of a valid ``{"records": ...}`` or ``{"columns": ...}`` request as one
    array, or None: then the frame path (:func:`frame_from_body`, :func:`check_frame`)
    decides, and refuses what is wrong with its full list of problems.

    Returns a block only when the frame path would accept the request and produce the
    same values: exactly the signature's columns, each value an int or a float (never a
    bool, null or text), every number within the column type's range.
    """
    if plan is None or special_floats or type(body) is not dict or len(body) != 1:
        return None
    records = body.get("records")
    if records is not None:
        if type(records) is not list or not records:
            return None
        keys = plan.keys
        for record in records:
            if type(record) is not dict or record.keys() != keys:
                return None
        names = plan.names
        rows = [[record[name] for name in names] for record in records]
    else:
        columns = body.get("columns")
        if type(columns) is not dict or columns.keys() != plan.keys:
            return None
        rows = [columns[name] for name in plan.names]
        if any(type(values) is not list for values in rows):
            return None
        count = len(rows[0])
        if not count or any(len(values) != count for values in rows):
            return None
    values = list(chain.from_iterable(rows))
    types = set(map(type, values))
    if not types <= {float, int}:
        return None
    integer = plan.dtype.kind == "i"
    if integer and float in types:
        return None  # whole floats in int columns: the frame path converts them
    if int in types:
        bound = _INT64 if integer else _EXACT_INT
        if any(abs(value) >= bound for value in values if type(value) is int):
            return None
    matrix = np.array(rows, dtype=plan.dtype)
    if records is None:
        matrix = np.ascontiguousarray(matrix.T)
    if not integer and not (np.abs(matrix) <= plan.limit).all():
        return None  # out of float32's range: the frame path names the value
    return RowBlock(matrix, plan.columns)


def _not(where: str, expected: str) -> Problem:
    return Problem("bad_request_shape", f"{where} must be {expected}.")


def _empty() -> Problem:
    return Problem("empty_batch", "The request has no rows; send at least one.")


def check_frame(
    frame: pd.DataFrame, model: LoadedModel, special_floats: bool = False
) -> pd.DataFrame:
    """``frame`` as the model takes it, or RequestRefused(422) listing every problem.

    Args:
        special_floats: The body held NaN or Infinity literals: they are accepted only
            in numeric columns that may be missing.
    """
    if len(frame) == 0:
        raise RequestRefused.invalid([_empty()])
    inputs = model.signature.inputs
    if inputs is None:  # a model without a signature takes what it is given
        return frame
    names = {column.name for column in inputs}
    problems = [
        Problem("extra_column", f"Column {str(name)!r} is not an input of this model.", str(name))
        for name in frame.columns
        if name not in names
    ]
    problems += [
        Problem(
            "missing_column",
            f"Column {column.name!r} ({column.type}) is missing.",
            column.name,
            _expected(column),
        )
        for column in inputs
        if column.name not in frame.columns
    ]
    given = set(frame.columns)
    present = [column for column in inputs if column.name in given]
    passed = _numbers_pass(frame, present, special_floats)
    for column in present:
        if column.name in passed:
            continue
        values = frame[column.name]
        problem = _missing_or_special(values, column, special_floats)
        problem = problem or _out_of_range(values, column, special_floats)
        if problem is not None:
            problems.append(problem)
    refusal = "the request's rows"
    if not problems:
        try:
            return model.prepare(frame)
        except (ValidationError, TypeError, ValueError) as error:
            refusal = str(error)
    flagged = {problem.column for problem in problems}
    for column in present:
        if column.name not in flagged:
            problem = _type_problem(frame[column.name], column)
            if problem is not None:
                problems.append(problem)
    if not problems:  # no column fails alone: the model refused the rows together
        problems.append(Problem("invalid_rows", refusal))
    raise RequestRefused.invalid(problems)


def _numbers_pass(frame: pd.DataFrame, present: list[ColumnSpec], special: bool) -> set[str]:
    """The numeric columns that pass the missing, finite and range checks, judged in one
    pass over their values as one array: per-column pandas calls were most of a small
    request's cost. The others go through the column-by-column checks, which name rows."""
    dtypes = dict(zip(frame.columns, frame.dtypes, strict=True))
    numeric = [
        column
        for column in present
        if column.type in _NUMERIC and dtypes[column.name].kind in "fiu"
    ]
    if not numeric:
        return set()
    block = frame[[column.name for column in numeric]].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(block)
        missing = np.isnan(block)
        over = np.abs(block) > np.array([_LIMITS[column.type] for column in numeric])
    nullable = np.array([column.nullable for column in numeric])
    bad = over.any(axis=0) | (missing.any(axis=0) & ~nullable)
    if special:
        bad |= (~finite & ~missing).any(axis=0)
    return {column.name for column, failed in zip(numeric, bad, strict=True) if not failed}


def _missing_or_special(values: pd.Series, column: ColumnSpec, special: bool) -> Problem | None:
    if not column.nullable:
        missing = values.isna()
        if missing.any():
            return _located(
                "missing_value",
                column,
                values,
                missing,
                f"Column {column.name!r} may not be missing (null or NaN)",
            )
    if not special:
        return None
    if column.type in _NUMERIC:  # NaN is a missing value here; no model takes Infinity
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
        bad = pd.Series(np.isinf(numbers), index=values.index)
        allowed = "a number, or null"
    else:
        bad = values.map(lambda value: isinstance(value, float) and not math.isfinite(value))
        allowed = f"{column.type} values" + (", or null" if column.nullable else "")
    if bad.any():
        return _located(
            "not_finite",
            column,
            values,
            bad.astype(bool),
            f"Column {column.name!r} takes {allowed}, not NaN or Infinity (NaN is a missing "
            "value in nullable numeric columns only)",
        )
    return None


def _out_of_range(values: pd.Series, column: ColumnSpec, special: bool) -> Problem | None:
    """Numbers beyond what an int64 holds, or (floats) beyond float32, which models
    computing in float32 (trees, ONNX) cannot take."""
    if column.type not in _NUMERIC:
        return None
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values):
        numbers = values
    elif special:  # integers beyond 64 bits reach here as Python ints
        numbers = pd.to_numeric(values, errors="coerce")
    else:
        return None  # text and such: the type check names it
    limit = _LIMITS[column.type]
    with np.errstate(invalid="ignore"):
        bad = pd.Series(np.abs(numbers.to_numpy(dtype=np.float64)) > limit, index=values.index)
    if not bad.any():
        return None
    return _located(
        "out_of_range",
        column,
        values,
        bad,
        f"Column {column.name!r} takes {column.type} values within ±{limit:.3g}",
    )


def _type_problem(values: pd.Series, column: ColumnSpec) -> Problem | None:
    if not _fails(values, column):
        return None
    low, high = 0, len(values)
    while high - low > 1:  # bisect for the first bad row: O(log n) vectorized checks
        middle = (low + high) // 2
        if _fails(values.iloc[low:middle], column):
            high = middle
        else:
            low = middle
    value = values.iloc[low]
    example = _shown(value)
    kind = type(example if isinstance(value, np.generic) else value).__name__
    return Problem(
        "wrong_type",
        f"Column {column.name!r} must hold {_expected(column)} values; got "
        f"{example!r} ({kind}) in row {values.index[low]}",
        column.name,
        _expected(column),
        example,
        _plain(values.index[low]),
    )


def _fails(values: pd.Series, column: ColumnSpec) -> bool:
    from loopml.models._inputs import conform  # the checks prepare runs, for one column

    try:
        conform(values.to_frame(column.name), [column])
    except (ValidationError, TypeError, ValueError, OverflowError):
        return True
    return False


def _located(
    kind: str, column: ColumnSpec, values: pd.Series, bad: pd.Series, message: str
) -> Problem:
    first = values[bad]
    row, example = first.index[0], first.iloc[0]
    count = int(bad.sum())
    return Problem(
        kind,
        f"{message}; {count} of {len(values)} rows are (the first: row {row})",
        column.name,
        _expected(column),
        None if kind == "missing_value" else _shown(example),
        _plain(row),
    )


def _expected(column: ColumnSpec) -> str:
    return column.type + (" or null" if column.nullable else "")


def _shown(value: Any) -> Any:
    """A value as JSON can carry it (NaN and Infinity as text)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def _plain(row: Any) -> Any:
    return row.item() if isinstance(row, np.generic) else row
