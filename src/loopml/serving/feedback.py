"""The read side of the prediction log, and feedback labels joined to it.

Public through the Workspace: ``ws.predictions``, ``ws.delete_predictions``,
``ws.log_feedback``, ``ws.log_feedback_frame``, ``ws.feedback`` and
``ws.predictions_with_feedback``. A label belongs to one logged row, keyed by its
request id and row index; logging a label for the same key again replaces it (the
latest label wins, the first arrival time is kept), so a retried call changes nothing.
"""

from __future__ import annotations

import datetime as dt
import math
import time as _time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from loopml.errors import NotFoundError, ValidationError
from loopml.serving.predlog import RESERVED_COLUMNS, SOURCES
from loopml.store.repositories.predictions import (
    FeedbackRecord,
    PredictionFile,
    PredictionRepository,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from loopml.workspace import Workspace

__all__ = [
    "TimeLike",
    "delete_predictions",
    "feedback",
    "log_feedback",
    "log_feedback_frame",
    "prediction_files",
    "predictions",
    "predictions_with_feedback",
    "scan",
]

TimeLike = dt.datetime | dt.timedelta | str | float | int
"""A datetime (naive means UTC), an ISO 8601 string, epoch seconds, or a timedelta back
from now (``since=timedelta(hours=1)``: the last hour)."""

# Labels are looked up from this long before the first prediction, for clock skew
# between the server that logged a prediction and the process that records its label.
_CLOCK_SLACK_MS = 3_600_000
_FEEDBACK_COLUMNS = ["request_id", "row", "label", "model", "entity", "time", "created_at",
                     "updated_at"]  # fmt: skip


def prediction_files(
    ws: Workspace,
    model: str,
    since: TimeLike | None = None,
    until: TimeLike | None = None,
    version: int | None = None,
    source: str | None = None,
) -> list[PredictionFile]:
    """The indexed files holding rows of ``model`` in [since, until): what ``predictions`` reads."""
    if source is not None and source not in SOURCES:
        raise ValidationError(f"source must be one of {', '.join(SOURCES)}, got {source!r}.")
    return PredictionRepository(ws.db).files(
        model, _ms(since, "since"), _ms(until, "until"), version, source
    )


def predictions(
    ws: Workspace,
    model: str,
    since: TimeLike | None = None,
    until: TimeLike | None = None,
    version: int | None = None,
    source: str | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Logged predictions of ``model`` with ``since <= time < until``, oldest first.

    Only the files whose index entry matches are opened, and only ``columns`` of them
    when given. Files written with different input types are combined with the types
    promoted (an int column logged later as float comes back float).
    """
    import pyarrow as pa

    files = prediction_files(ws, model, since, until, version, source)
    if columns is not None and files:
        known = {name for file in files for name, _ in file.schema}
        unknown = [name for name in columns if name not in known]
        if unknown:
            raise ValidationError(
                f"The prediction log of {model!r} has no column(s) "
                f"{', '.join(map(repr, unknown))}; it has {', '.join(sorted(known))}."
            )
    batches = scan(ws, files, _ms(since, "since"), _ms(until, "until"), columns)
    tables: dict[pa.Schema, list[pa.RecordBatch]] = {}
    for batch in batches:
        tables.setdefault(batch.schema, []).append(batch)
    if not tables:
        return _empty(columns)
    combined = _combine([pa.Table.from_batches(group, schema) for schema, group in tables.items()])
    frame: pd.DataFrame = combined.to_pandas(ignore_metadata=True)
    if "time" in frame.columns and not frame["time"].is_monotonic_increasing:
        frame = frame.sort_values("time", kind="stable", ignore_index=True)
    return frame


def _combine(tables: list[pa.Table]) -> pa.Table:
    """One table; a column logged with types that do not promote (numbers in one file,
    text in another) comes back as text."""
    import pyarrow as pa

    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        kinds: dict[str, set[pa.DataType]] = {}
        for table in tables:
            for field in table.schema:
                kinds.setdefault(field.name, set()).add(field.type)
        mixed = {name for name, types in kinds.items() if len(types) > 1}
        text = pa.large_string()
        return pa.concat_tables(
            [
                table.cast(
                    pa.schema([f.with_type(text) if f.name in mixed else f for f in table.schema])
                )
                for table in tables
            ],
            promote_options="permissive",
        )


def scan(
    ws: Workspace,
    files: Sequence[PredictionFile],
    since: int | None,
    until: int | None,
    columns: Sequence[str] | None = None,
    batch_rows: int = 131_072,
) -> Iterator[pa.RecordBatch]:
    """The rows of ``files`` with ``since <= time < until`` (epoch ms; None: unbounded)
    as record batches of the stored ``columns`` each file has (all when None), in that
    order. Files of one schema are read in one parallel dataset scan; a batch job's file
    gets its inputs joined back, by row, from the blob they are stored in."""
    import pyarrow.dataset as ds

    filesystem = _arrow_filesystem(ws)
    condition = _time_filter(since, until)
    by_schema: dict[tuple[tuple[str, str], ...], list[PredictionFile]] = {}
    for file in files:
        if file.inputs_sha256 is None:
            by_schema.setdefault(tuple(file.schema), []).append(file)
    for schema, group in by_schema.items():
        dataset = ds.dataset(
            [ws.artifacts.object_path(file.sha256) for file in group],
            format="parquet",
            filesystem=filesystem,
        )
        yield from dataset.to_batches(
            columns=_present(schema, columns), filter=condition, batch_size=batch_rows
        )
    for file in files:
        if file.inputs_sha256 is not None:
            yield from _joined(ws, file, condition, columns, filesystem).to_batches(batch_rows)


def _present(schema: Sequence[tuple[str, str]], columns: Sequence[str] | None) -> list[str]:
    names = [name for name, _ in schema]
    return names if columns is None else [name for name in columns if name in set(names)]


def _time_filter(since: int | None, until: int | None) -> Any:
    import pyarrow as pa
    import pyarrow.dataset as ds

    condition = None
    kind = pa.timestamp("us", tz="UTC")
    if since is not None:
        condition = ds.field("time") >= pa.scalar(since * 1000, kind)
    if until is not None:
        upper = ds.field("time") < pa.scalar(until * 1000, kind)
        condition = upper if condition is None else condition & upper
    return condition


def _joined(
    ws: Workspace,
    file: PredictionFile,
    condition: Any,
    columns: Sequence[str] | None,
    filesystem: Any,
) -> pa.Table:
    """A file logged with :class:`~loopml.serving.predlog.StoredInputs`: its rows, the
    input columns taken from the rows of the input blob that its ``row`` column names."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    assert file.inputs_sha256 is not None
    wanted = _present(file.schema, columns)
    blob_names = {
        f"input.{name}" if name in RESERVED_COLUMNS else name: name for name in file.inputs_columns
    }
    from_log = [name for name in wanted if name not in blob_names]
    from_blob = [name for name in wanted if name in blob_names]
    read = from_log + (["row"] if from_blob and "row" not in from_log else [])
    table = ds.dataset(
        ws.artifacts.object_path(file.sha256), format="parquet", filesystem=filesystem
    ).to_table(columns=read, filter=condition)
    for i, field in enumerate(table.schema):  # its repeated text, written as dictionaries
        if pa.types.is_dictionary(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(field.type.value_type))
    if from_blob:
        try:
            inputs = _input_rows(
                ws.artifacts.object_path(file.inputs_sha256),
                [blob_names[name] for name in from_blob],
                table.column("row").to_numpy(),
                filesystem,
            )
        except FileNotFoundError:
            raise NotFoundError(
                f"The inputs of {file.rows} logged {file.model} predictions are in the blob "
                f"{file.inputs_sha256}, which the artifact store no longer has; read without "
                "their input columns (columns=[...]), or drop them with delete_predictions."
            ) from None
        for name, column in zip(from_blob, inputs.columns, strict=True):
            table = table.append_column(name, column)
    return table.select(wanted)


def _input_rows(path: str, names: list[str], rows: Any, filesystem: Any) -> pa.Table:
    """Rows ``rows`` (ascending, as a job logs them) of ``names`` in a Parquet file,
    reading only the row groups that hold them. NaN comes back as null, as inputs
    logged inline store it (``pa.Table.from_pandas`` does that)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from loopml.data.sources import open_parquet

    with open_parquet(path, filesystem) as source:
        if len(rows) == 0:
            return source.schema_arrow.empty_table().select(names)
        sizes = [source.metadata.row_group(i).num_rows for i in range(source.num_row_groups)]
        ends = np.cumsum(sizes)
        first, last = np.searchsorted(ends, [rows.min(), rows.max()], side="right")
        table = source.read_row_groups(list(range(first, last + 1)), columns=names)
    table = table.take(pa.array(rows - (ends[first] - sizes[first])))
    for i, field in enumerate(table.schema):
        column = table.column(i)
        if pa.types.is_floating(field.type) and pc.any(pc.is_nan(column)).as_py():
            table = table.set_column(
                i, field, pc.if_else(pc.is_nan(column), pa.scalar(None, field.type), column)
            )
    return table


def _arrow_filesystem(ws: Workspace) -> Any:
    from pyarrow.fs import FSSpecHandler, LocalFileSystem, PyFileSystem

    fs = ws.artifacts.fs
    if "file" in ((fs.protocol,) if isinstance(fs.protocol, str) else fs.protocol):
        return LocalFileSystem()
    return PyFileSystem(FSSpecHandler(fs))


def _empty(columns: Sequence[str] | None) -> pd.DataFrame:
    import pandas as pd

    names = list(columns) if columns is not None else list(RESERVED_COLUMNS)
    return pd.DataFrame({name: pd.Series(dtype=object) for name in names})


def delete_predictions(ws: Workspace, before: TimeLike, model: str | None = None) -> int:
    """Removes from the log the files whose rows are all older than ``before`` (of one
    model, or every model); returns how many rows went. ``ws.gc`` then frees their bytes."""
    cutoff = _ms(before, "before")
    assert cutoff is not None
    return PredictionRepository(ws.db).delete_files(cutoff, model)[1]


# -- feedback -----------------------------------------------------------------------
def log_feedback(
    ws: Workspace,
    request_id: str,
    label: Any,
    *,
    row: int = 0,
    entity: str | None = None,
    time: TimeLike | None = None,
    model: str | None = None,
) -> None:
    """Records the true label of row ``row`` of request ``request_id``."""
    PredictionRepository(ws.db).upsert_feedback(
        [_record(request_id, label, row, entity, time, model)]
    )


def log_feedback_frame(ws: Workspace, frame: pd.DataFrame) -> int:
    """Records many labels: columns ``request_id`` and ``label``, optionally ``row``,
    ``entity``, ``time`` and ``model``. Returns the number of rows stored."""
    missing = [name for name in ("request_id", "label") if name not in frame.columns]
    if missing:
        raise ValidationError(
            f"The feedback frame lacks the column(s) {', '.join(missing)}; it needs "
            "request_id and label (and may have row, entity, time, model)."
        )
    n = len(frame)
    records = [
        _record(request_id, label, row, entity, when, model)
        for request_id, label, row, entity, when, model in zip(
            frame["request_id"].tolist(),
            frame["label"].tolist(),
            frame["row"].tolist() if "row" in frame else [0] * n,
            frame["entity"].tolist() if "entity" in frame else [None] * n,
            frame["time"].tolist() if "time" in frame else [None] * n,
            frame["model"].tolist() if "model" in frame else [None] * n,
            strict=True,
        )
    ]
    PredictionRepository(ws.db).upsert_feedback(records)
    return len(records)


def _record(
    request_id: Any, label: Any, row: Any, entity: Any, time: Any, model: Any
) -> FeedbackRecord:
    if not isinstance(request_id, str) or not request_id or len(request_id) > 128:
        raise ValidationError(
            f"request_id must be the request's id (text of 1 to 128 characters) that the "
            f"prediction response returned, got {request_id!r}."
        )
    if isinstance(row, float) and row.is_integer():
        row = int(row)
    if isinstance(row, bool) or not isinstance(row, int) or row < 0:
        raise ValidationError(f"row must be a row index (0 or more), got {row!r}.")
    label = getattr(label, "item", lambda: label)()  # numpy scalars to Python
    if not isinstance(label, (str, int, float, bool)) or (
        isinstance(label, float) and not math.isfinite(label)
    ):
        raise ValidationError(
            f"The label of request {request_id!r} must be a number, text or a boolean, "
            f"got {label!r}."
        )
    when = None if _missing(time) else _ms(time, "time")
    return FeedbackRecord(
        request_id,
        int(row),
        label,
        None if _missing(model) else str(model),
        None if _missing(entity) else str(entity),
        when,
    )


def _missing(value: Any) -> bool:
    return value is None or bool(value != value)  # NaN and NaT are unequal to themselves


def feedback(
    ws: Workspace, model: str | None = None, since: TimeLike | None = None
) -> pd.DataFrame:
    """Labels recorded since ``since`` (all when None); with ``model``, those logged with
    that model name (labels logged without one show only with ``model=None`` and in
    :func:`predictions_with_feedback`, which matches by request id)."""
    records = PredictionRepository(ws.db).feedback(model, _ms(since, "since"))
    return _feedback_frame(records)


def _feedback_frame(records: list[FeedbackRecord]) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame(
        [
            (r.request_id, r.row, r.label, r.model, r.entity, r.time, r.created_at, r.updated_at)
            for r in records
        ],
        columns=_FEEDBACK_COLUMNS,
    )
    frame["row"] = frame["row"].astype("int32")
    for name in ("time", "created_at", "updated_at"):
        frame[name] = pd.to_datetime(frame[name].astype("int64"), unit="ms", utc=True)
    return frame


def predictions_with_feedback(
    ws: Workspace,
    model: str,
    since: TimeLike | None = None,
    until: TimeLike | None = None,
    version: int | None = None,
    source: str | None = None,
) -> pd.DataFrame:
    """The logged predictions (as :func:`predictions`) with their labels: a left join on
    request id and row, adding ``label`` (missing where none arrived yet),
    ``label_time`` (when the outcome happened) and ``labelled_at`` (when it was recorded)."""
    frame = predictions(ws, model, since, until, version, source)
    if frame.empty:
        for name in ("label", "label_time", "labelled_at"):
            frame[name] = []
        return frame
    earliest = int(frame["time"].min().value // 1_000_000) - _CLOCK_SLACK_MS
    labels = _feedback_frame(PredictionRepository(ws.db).feedback(None, earliest))
    labels = labels[["request_id", "row", "label", "time", "created_at"]].rename(
        columns={"time": "label_time", "created_at": "labelled_at"}
    )
    return frame.merge(labels, how="left", on=["request_id", "row"], validate="many_to_one")


def _ms(value: TimeLike | None, name: str) -> int | None:
    """``value`` as epoch milliseconds."""
    if value is None:
        return None
    if isinstance(value, dt.timedelta):
        return int((_time.time() - value.total_seconds()) * 1000)
    if isinstance(value, bool):
        raise ValidationError(f"{name} must be a time, got {value!r}.")
    if isinstance(value, (int, float)):
        return int(value * 1000)
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError(
                f"{name}={value!r} is not an ISO 8601 time; write e.g. '2026-01-31T12:00:00Z'."
            ) from None
    if isinstance(value, dt.datetime):  # pandas Timestamps are datetimes too
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return int(value.timestamp() * 1000)
    raise ValidationError(
        f"{name} must be a datetime, an ISO 8601 string, epoch seconds or a timedelta, "
        f"got {type(value).__name__}."
    )
