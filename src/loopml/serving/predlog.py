"""The prediction log: every prediction appended, off the caller's thread, as indexed Parquet.

``PredictionLog.log`` puts a request's inputs and outputs on a bounded queue (counted in
rows) and returns; a writer thread turns them into Parquet files (zstd) in the artifact
store, in batches of ``flush_rows`` rows or every ``flush_seconds``, and indexes each file
in the metadata store (``prediction_files``: model, version, arm, source, time range,
rows, blob). ``ws.predictions(...)`` reads them back through the index, opening only the
files whose model, version, source and time range match.

Each stored row has the columns ``request_id``, ``row`` (position in the request),
``time`` (UTC, when ``log`` was called), ``model``, ``version``, ``arm``, ``source``
(``online`` or ``batch``), ``latency_ms``, the input columns under their own names,
``prediction``, and ``proba_<class>`` per class when probabilities are given. An input
column whose name is one of those is stored as ``input.<name>``.

A batch job logs its inputs by reference (:class:`StoredInputs`): its input is a
Parquet blob in the artifact store already (a dataset version) or stored once as it is
(an input file), and its log files hold the rest; the index names the blob and its
columns, and readers join the inputs back by row. Copying 20 input columns into the log
cost a batch job a fifth of its throughput.

Durability: ``close()`` writes everything queued. A process killed without it (SIGKILL,
a crash) loses the rows logged in its last ``flush_seconds``, plus a batch being written
at that moment (:data:`LOSS_BOUND`). On SIGTERM a server stops taking requests and calls
``close()`` in its shutdown (uvicorn's lifespan does); call it there, not inside a signal
handler, which may have interrupted a ``log`` call that holds the queue's lock.

Reading (``ws.predictions``) and feedback live in :mod:`loopml.serving.feedback`. This
module keeps the writer and its Arrow conversion together (past 400 lines): the
conversion has no other caller, and its vectorized shape follows from the writer's batches.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import os
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.errors import ValidationError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from loopml.artifacts.store import StoredBlob
    from loopml.workspace import Workspace

__all__ = ["LOSS_BOUND", "ON_FULL", "RESERVED_COLUMNS", "PredictionLog", "StoredInputs"]

LOSS_BOUND = (
    "rows logged in the last flush_seconds before the process died, plus the batch the "
    "writer was writing at that moment"
)
ON_FULL = ("drop", "block")
RESERVED_COLUMNS = (
    "request_id", "row", "time", "model", "version", "arm", "source", "latency_ms", "prediction",
)  # fmt: skip
SOURCES = ("online", "batch")
ROW_GROUP_ROWS = 131_072

_logger = logging.getLogger("loopml.serving")
_OPEN: weakref.WeakSet[PredictionLog] = weakref.WeakSet()


@dataclass(frozen=True, eq=False)
class StoredInputs:
    """Logged inputs that are rows of a Parquet blob in the artifact store: row ``n`` of
    the blob is the logged row ``n`` (``row_offset`` numbers a job's rows through it)."""

    blob: Future[StoredBlob]
    """The blob; a job storing its input file resolves it once the copy is done."""
    schema: tuple[tuple[str, str], ...]
    """The blob's columns that are the model's inputs, with their Arrow types."""


@dataclass(slots=True)  # not frozen: frozen dataclasses are slower to create
class _Entry:
    """One ``log`` call as received: converted to Arrow by the writer, not the caller."""

    model: str
    version: int
    request_id: str
    inputs: Any
    predictions: Any
    probabilities: Any
    classes: Sequence[Any] | None
    latency_ms: float
    arm: str | None
    source: str
    time_us: int
    rows: int
    row_offset: int


class PredictionLog:
    """Appends predictions asynchronously to the workspace's prediction log.

    Args:
        workspace: Where the Parquet files and their index go.
        queue_rows: Rows that may wait for the writer; beyond it ``on_full`` applies. A
            single request larger than this is still taken when the queue is empty.
        flush_rows: The writer starts a batch as soon as this many rows wait.
        flush_seconds: ...and at least this often; the most a SIGKILL can lose.
        on_full: ``"drop"``: a full queue drops the rows at once (counted in
            :attr:`dropped`), so logging never delays a response. ``"block"``: wait up to
            ``block_seconds`` for room, then drop.
        block_seconds: The longest ``log`` waits with ``on_full="block"``.

    Example:
        >>> log = PredictionLog(ws)
        >>> log.log(model="churn", version=3, request_id=rid, inputs=frame,
        ...         predictions=labels, probabilities=proba, classes=[0, 1], latency_ms=4.2)
        >>> log.close()  # on shutdown: writes everything queued
    """

    def __init__(
        self,
        workspace: Workspace,
        *,
        queue_rows: int = 100_000,
        flush_rows: int = 10_000,
        flush_seconds: float = 1.0,
        on_full: str = "drop",
        block_seconds: float = 0.1,
    ) -> None:
        if on_full not in ON_FULL:
            raise ValidationError(
                f"on_full must be 'drop' (count and drop rows when the queue is full) or "
                f"'block' (wait up to block_seconds, then drop), got {on_full!r}."
            )
        for name, value in (("queue_rows", queue_rows), ("flush_rows", flush_rows)):
            if value < 1:
                raise ValidationError(f"{name} must be at least 1, got {value}.")
        if not flush_seconds > 0 or not block_seconds >= 0:
            raise ValidationError(
                f"flush_seconds must be positive and block_seconds not negative, got "
                f"{flush_seconds} and {block_seconds}."
            )
        self.workspace = workspace
        self.queue_rows = queue_rows
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.on_full = on_full
        self.block_seconds = block_seconds
        self.dropped = 0
        """Rows not stored: dropped on a full queue, logged after close, or failed to write."""
        self.written = 0
        """Rows stored and indexed."""
        self.files = 0
        """Parquet files written."""
        self.last_error: BaseException | None = None
        self._pending: list[_Entry] = []
        self._queued = 0
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)  # signalled when the writer frees rows
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None

    @property
    def queued_rows(self) -> int:
        """Rows waiting for the writer or being written."""
        return self._queued

    def log(
        self,
        *,
        model: str,
        version: int,
        request_id: str,
        inputs: pd.DataFrame | pa.Table | Mapping[str, Any] | StoredInputs,
        predictions: Any,
        probabilities: Any = None,
        latency_ms: float,
        arm: str | None = None,
        source: str = "online",
        classes: Sequence[Any] | None = None,
        row_offset: int = 0,
    ) -> None:
        """Queues one request's predictions; returns at once (or within ``block_seconds``).

        Args:
            model: The registered model name.
            version: Its version number.
            request_id: The request's id; feedback refers to it (with the row index).
            inputs: The model's input rows: a DataFrame, a mapping of column arrays, or
                an Arrow table, stored as it is (its columns' types are the log's; a
                DataFrame's are what ``pa.Table.from_pandas`` makes of them). Do not
                modify it afterwards: the writer reads it later. Or
                :class:`StoredInputs`: rows ``row_offset`` on of a stored blob.
            predictions: One prediction per row (array-like).
            probabilities: Optional class probabilities, rows by classes: an array (with
                ``classes`` naming its columns, else ``proba_0``, ``proba_1``, ...) or a
                DataFrame whose columns are the classes.
            latency_ms: Time the request took, stored on each of its rows.
            arm: The deployment arm that answered (stable, canary, shadow, a, b, ...).
            source: ``"online"`` (a server) or ``"batch"`` (batch scoring).
            classes: The class of each probability column.
            row_offset: The ``row`` of the first row (batch scoring logs one job's
                chunks under one request id, rows numbered through the whole input).

        Never raises for a full queue or a closed log: those rows count in :attr:`dropped`.
        """
        if source not in SOURCES:
            raise ValidationError(f"source must be 'online' or 'batch', got {source!r}.")
        rows = len(predictions)
        if rows == 0:
            return
        entry = _Entry(
            model, int(version), str(request_id), inputs, predictions, probabilities,
            classes, float(latency_ms), arm, source, 0, rows, row_offset,
        )  # fmt: skip
        with self._lock:
            if self._closed or not self._make_room(rows):
                self.dropped += rows
                return
            entry.time_us = time.time_ns() // 1000  # under the lock: queue order is time order
            self._pending.append(entry)
            self._queued += rows
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="loopml-prediction-log", daemon=True
                )
                self._thread.start()
                _OPEN.add(self)
        if self._queued >= self.flush_rows:
            self._wake.set()

    def _make_room(self, rows: int) -> bool:
        """Whether ``rows`` fit in the queue now (or, blocking, within block_seconds)."""

        def fits() -> bool:
            return self._queued == 0 or self._queued + rows <= self.queue_rows

        if fits():
            return True
        if self.on_full == "drop":
            return False
        return self._room.wait_for(lambda: fits() or self._closed, self.block_seconds) and (
            not self._closed
        )

    def flush(self, timeout: float = 30.0) -> bool:
        """Waits until everything logged so far is written; False if ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        with self._lock:
            return self._room.wait_for(
                lambda: self._queued == 0, max(0.0, deadline - time.monotonic())
            )

    def close(self, timeout: float = 30.0) -> None:
        """Writes everything queued and stops the writer; later ``log`` calls are dropped.

        Raises:
            TimeoutError: the writer did not finish within ``timeout`` seconds.
        """
        with self._lock:
            self._closed = True
            self._room.notify_all()
            thread = self._thread
        if thread is None:
            return
        self._wake.set()
        thread.join(timeout)
        _OPEN.discard(self)
        if thread.is_alive():
            raise TimeoutError(
                f"The prediction log still had {self._queued} rows to write after {timeout} s; "
                "give close() a longer timeout, or check that the artifact store is reachable."
            )

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the writer thread ----------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            with self._lock:
                batch, self._pending = self._pending, []
                closing = self._closed
            if batch:
                written = self._write(batch)
                with self._lock:
                    self._queued -= sum(entry.rows for entry in batch)
                    self.written += written
                    self.dropped += sum(entry.rows for entry in batch) - written
                    self._room.notify_all()
            if closing:
                with self._lock:
                    if not self._pending:
                        return

    def _write(self, batch: list[_Entry]) -> int:
        """Writes one file per (model, version, arm, source); returns the rows stored."""
        groups: dict[tuple[str, int, str | None, str, StoredInputs | None], list[_Entry]] = {}
        for entry in batch:
            stored = entry.inputs if isinstance(entry.inputs, StoredInputs) else None
            key = (entry.model, entry.version, entry.arm, entry.source, stored)
            groups.setdefault(key, []).append(entry)
        written = 0
        for (model, version, arm, source, stored), entries in groups.items():
            try:
                for table in _tables(entries, by_index=stored is not None):
                    self._store(table, model, version, arm, source, stored)
                    written += table.num_rows
            except Exception as error:  # never let one bad batch stop the log
                self.last_error = error
                _logger.exception(
                    "Could not write %d logged predictions of %s version %s",
                    sum(e.rows for e in entries),
                    model,
                    version,
                )
        return written

    def _store(
        self,
        table: pa.Table,
        model: str,
        version: int,
        arm: str | None,
        source: str,
        stored: StoredInputs | None,
    ) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        from loopml.store.repositories.predictions import PredictionRepository

        ws = self.workspace
        folder = ws.settings.home / "tmp"
        folder.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix="predictions-", suffix=".parquet", dir=folder)
        os.close(handle)
        try:
            pq.write_table(
                table,
                name,
                **parquet_options(table.schema),
                # Row groups of this size are read in parallel, and skipped by their
                # time statistics when a window starts or ends inside a big file.
                row_group_size=ROW_GROUP_ROWS,
            )
            blob = ws.artifacts.put_file(name, move=True)
        finally:
            Path(name).unlink(missing_ok=True)
        times = table.column("time")
        low, high = pc.min(times).value, pc.max(times).value
        # As read back: a batch file's repeated text as text (see _table).
        schema = [
            (field.name, str(field.type.value_type))
            if stored is not None and pa.types.is_dictionary(field.type)
            else (field.name, str(field.type))
            for field in table.schema
        ]
        inputs = None
        if stored is not None:
            names = [name for name, _ in stored.schema]
            # Where the inline inputs would be: after the log's own columns.
            at = len(RESERVED_COLUMNS) - 1
            schema[at:at] = [
                (f"input.{name}" if name in RESERVED_COLUMNS else name, kind)
                for name, kind in stored.schema
            ]
            input_blob = stored.blob.result()  # raises if storing the input failed
            inputs = (input_blob.sha256, input_blob.size, names)
        PredictionRepository(ws.db).add_file(
            model=model,
            version=version,
            arm=arm,
            source=source,
            min_time=math.floor(low / 1000),
            max_time=math.ceil(high / 1000),
            rows=table.num_rows,
            sha256=blob.sha256,
            size=blob.size,
            schema=schema,
            inputs=inputs,
        )
        self.files += 1


def parquet_options(schema: pa.Schema) -> dict[str, Any]:
    """How the log's files (and batch scoring's output) are written: zstd; Parquet's
    dictionary encoding for text and categories only (on floats, whose values rarely
    repeat, it makes writing several times slower); byte-stream-split for floats, which
    groups their bytes by position so zstd finds the repeated exponents: a million logged
    rows of 20 features took 0.17-0.3 CPU-s less to write and 1.5-6 % less disk."""
    import pyarrow as pa

    return {
        "compression": "zstd",
        "use_dictionary": [
            field.name
            for field in schema
            if pa.types.is_string(field.type)
            or pa.types.is_large_string(field.type)
            or pa.types.is_dictionary(field.type)
        ],
        "use_byte_stream_split": [
            field.name for field in schema if pa.types.is_floating(field.type)
        ],
    }


def _tables(entries: list[_Entry], by_index: bool = False) -> list[pa.Table]:
    """The entries of one group as Arrow tables: one table in a few vectorized steps when
    their inputs share columns and types (a server's usual case), else one per entry,
    combined with types promoted where they differ."""
    import pyarrow as pa

    try:
        return [_table(entries, by_index)]
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, ValueError):
        if len(entries) == 1:
            raise
    tables = [_table([entry], by_index) for entry in entries]
    try:
        return [pa.concat_tables(tables, promote_options="permissive")]
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        by_schema: dict[pa.Schema, list[pa.Table]] = {}
        for table in tables:
            by_schema.setdefault(table.schema, []).append(table)
        return [pa.concat_tables(group) for group in by_schema.values()]


def _table(entries: list[_Entry], by_index: bool = False) -> pa.Table:
    """One table of entries that share model, version, arm and source.

    ``by_index``: the text columns that repeat a value per entry (request id, model, arm,
    source) as dictionary arrays, for a batch job's file (read back as plain text by
    :func:`loopml.serving.feedback.scan`): spelling out 5,000,000 copies of the job's id
    and model name took 0.9 CPU-s, more than writing the file.

    Raises ValueError or an Arrow error when their inputs, predictions or probabilities
    do not line up (other columns, other types), for the caller to go entry by entry.
    """
    import numpy as np
    import pyarrow as pa

    first = entries[0]
    counts = np.fromiter((e.rows for e in entries), np.int64, len(entries))
    total = int(counts.sum())
    offsets = np.fromiter((e.row_offset for e in entries), np.int64, len(entries))
    starts = np.repeat(np.cumsum(counts) - counts - offsets, counts)
    times = np.fromiter((e.time_us for e in entries), np.int64, len(entries))
    text = pa.string()
    ids = pa.array([e.request_id for e in entries], text)
    constant: Callable[[Any], pa.Array]
    if by_index:
        each = np.repeat(np.arange(len(entries), dtype=np.int32), counts)
        request_ids = pa.DictionaryArray.from_arrays(each, ids)

        def constant(value: Any) -> pa.Array:
            if value is None:
                return pa.nulls(total, pa.dictionary(pa.int32(), text))
            dictionary = pa.array([value], text)
            return pa.DictionaryArray.from_arrays(np.zeros(total, np.int32), dictionary)
    else:
        # One string per entry, repeated by index in Arrow: a numpy array of a batch
        # job's id repeated per row cost more than the rest of the table.
        request_ids = _repeated(ids, counts)

        def constant(value: Any) -> pa.Array:
            return pa.repeat(pa.scalar(value, text), total)

    columns: dict[str, Any] = {
        "request_id": request_ids,
        "row": pa.array((np.arange(total) - starts).astype(np.int32)),
        "time": pa.array(np.repeat(times, counts)).cast(pa.timestamp("us", tz="UTC")),
        "model": constant(first.model),
        "version": pa.repeat(pa.scalar(first.version, pa.int32()), total),
        "arm": constant(first.arm),
        "source": constant(first.source),
        "latency_ms": pa.array(np.repeat([e.latency_ms for e in entries], counts)),
    }
    for name, array in _inputs(entries).items():
        columns[f"input.{name}" if name in RESERVED_COLUMNS else name] = array
    predictions = np.concatenate([np.asarray(e.predictions) for e in entries])
    columns["prediction"] = (
        pa.array(list(predictions)) if predictions.ndim > 1 else pa.array(predictions)
    )
    if first.probabilities is not None:
        names = _class_names(first.probabilities, first.classes)
        matrix = np.concatenate([_matrix(e.probabilities) for e in entries])
        if matrix.shape[1] != len(names):
            raise ValueError("entries have different numbers of probability columns")
        columns.update({f"proba_{n}": pa.array(matrix[:, i]) for i, n in enumerate(names)})
    elif any(e.probabilities is not None for e in entries):
        raise ValueError("some entries have probabilities and others not")
    return pa.table(columns)


def _repeated(values: pa.Array, counts: Any) -> pa.Array:
    """Each value ``counts`` times (a server's single-row entries: as they are)."""
    import numpy as np
    import pyarrow as pa

    if len(values) == int(counts.sum()):
        return values
    return values.take(pa.array(np.repeat(np.arange(len(values)), counts)))


def _inputs(entries: list[_Entry]) -> dict[str, pa.Array | pa.ChunkedArray]:
    """The input columns of all entries (none for :class:`StoredInputs`, kept by
    reference). Arrow tables (batch scoring's chunks) are
    joined as they are, without a copy. Row blocks (the server's fast path) of one
    signature become one array and a column each, without pandas. Otherwise one entry
    converts column by column with pandas' types; many go through one ``to_numpy`` each
    (a few microseconds), their columns cast back to the first entry's types, refusing
    any lossy cast."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    stored = {id(e.inputs) for e in entries if isinstance(e.inputs, StoredInputs)}
    if stored:
        if len(stored) > 1 or not all(isinstance(e.inputs, StoredInputs) for e in entries):
            raise ValueError("entries refer to different stored inputs, or only some do")
        return {}  # the index names the blob the inputs are in
    arrow = [e.inputs for e in entries if isinstance(e.inputs, pa.Table)]
    if arrow:
        if len(arrow) < len(entries):
            raise ValueError("some entries have Arrow inputs and others not")
        table = arrow[0] if len(arrow) == 1 else pa.concat_tables(arrow)
        return dict(zip(table.column_names, table.columns, strict=True))

    from loopml.serving.inputs import RowBlock  # not before: it imports the server's parts

    blocks = [e.inputs for e in entries if isinstance(e.inputs, RowBlock)]
    if len(blocks) == len(entries):
        first = blocks[0]
        if all(b.values.dtype == first.values.dtype and b.columns.equals(first.columns)
               for b in blocks):  # fmt: skip
            by_column = np.ascontiguousarray(RowBlock.join(blocks).values.T)
            return {str(name): pa.array(by_column[i]) for i, name in enumerate(first.columns)}
    frames = [
        e.inputs.frame() if isinstance(e.inputs, RowBlock)
        else e.inputs if isinstance(e.inputs, pd.DataFrame)
        else pd.DataFrame(dict(e.inputs))
        for e in entries
    ]  # fmt: skip
    schema = pa.Schema.from_pandas(frames[0], preserve_index=False)
    names = [str(name) for name in frames[0].columns]
    if len(frames) == 1:
        table = pa.Table.from_pandas(frames[0], schema=schema, preserve_index=False)
        return dict(zip(names, table.columns, strict=True))
    expected = frames[0].columns
    for frame in frames:
        if frame.columns is not expected and not frame.columns.equals(expected):
            raise ValueError("entries have different input columns")
    matrix = np.concatenate([frame.to_numpy() for frame in frames])
    return {
        name: pa.array(matrix[:, i], from_pandas=True).cast(schema.field(i).type, safe=True)
        for i, name in enumerate(names)
    }


def _matrix(values: Any) -> Any:
    import numpy as np

    matrix = np.asarray(values, dtype=np.float64)
    return matrix[:, None] if matrix.ndim == 1 else matrix


def _class_names(values: Any, classes: Sequence[Any] | None) -> list[str]:
    """Probability column names: a DataFrame's columns, ``classes``, or positions."""
    import pandas as pd

    width = _matrix(values).shape[1]
    if isinstance(values, pd.DataFrame):
        return [str(c) for c in values.columns]
    if classes is not None and len(classes) == width:
        return [str(c) for c in classes]
    return [str(i) for i in range(width)]


@atexit.register
def _close_open_logs_at_exit() -> None:
    """A script that ends without ``close()`` still writes what it logged."""
    for log in list(_OPEN):
        with contextlib.suppress(Exception):
            log.close(timeout=30.0)
