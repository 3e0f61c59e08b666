"""Ingestion: a source streamed batch by batch through validation into one Parquet version.

Memory stays flat whatever the input size: batches are validated as they arrive,
regrouped into fixed-size row groups, written to a temporary Parquet file and hashed
on the way. The version appears in the store only once everything has been read and
checked; a failure at any point leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import queue
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loopml.errors import ValidationError

__all__ = ["ROW_GROUP_ROWS", "Written", "write_versions"]

ROW_GROUP_ROWS = 131_072
POLICIES = ("fail", "quarantine", "warn")
REASON_COLUMN = "_loopml_reason"


@dataclass
class Written:
    """A finished temporary Parquet file, its content hash and its shape."""

    path: Path
    content_sha256: str
    rows: int
    schema: pa.Schema


class _Sink:
    """Writes batches as fixed-size row groups and hashes the rows, not the file layout.

    Fixed row groups make the file the same whatever batch sizes the source produced,
    and the content hash covers the Arrow IPC form of each group, so the same rows
    give the same hash from a CSV, a DataFrame or a Parquet file. Two threads take the
    groups in order: one encodes and compresses them into the Parquet file, the other
    hashes their IPC form (pyarrow and hashlib release the GIL), so reading and
    validating the next batch overlap with both; short queues bound the memory.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._schema: pa.Schema | None = None
        self._writer: pq.ParquetWriter | None = None
        self._digest = _Digest()
        self._stages: list[_Stage] = []

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        if batch.num_rows == 0 and self._schema is not None:
            return
        if self._schema is None:
            self._schema = normalized(batch.schema)
        table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
        table = table.replace_schema_metadata(None)
        if table.schema != self._schema:
            table = table.cast(self._schema, safe=False)
        for piece in table.to_batches():
            self._pending.append(piece)
            self._pending_rows += piece.num_rows
        while self._pending_rows >= ROW_GROUP_ROWS:
            self._emit(ROW_GROUP_ROWS)

    def _emit(self, rows: int) -> None:
        assert self._schema is not None
        table = pa.Table.from_batches(self._pending, schema=self._schema)
        group, rest = table.slice(0, rows), table.slice(rows)
        if not self._stages:
            self._stages = [
                _Stage("loopml-ingest-writer", self._encode),
                _Stage("loopml-ingest-hash", self._hash),
            ]
        self._raise_failure()
        group = group.combine_chunks()
        for stage in self._stages:
            stage.put(group)
        self.rows += group.num_rows
        self._pending = rest.to_batches()
        self._pending_rows = rest.num_rows

    def _encode(self, group: pa.Table) -> None:
        """The writer thread: encodes and compresses each row group, in order."""
        if self._writer is None:
            self._writer = pq.ParquetWriter(
                self.path,
                group.schema,
                compression="zstd",
                use_dictionary=_dictionary_columns(group),
            )
        self._writer.write_table(group, row_group_size=max(1, group.num_rows))

    def _hash(self, group: pa.Table) -> None:
        """The hash thread: the IPC stream of each row group, in order, into SHA-256."""
        with pa.ipc.new_stream(pa.PythonFile(self._digest, mode="w"), group.schema) as ipc:
            ipc.write_table(group)

    def _raise_failure(self) -> None:
        for stage in self._stages:
            if stage.failure is not None:
                raise stage.failure

    def _join(self) -> None:
        for stage in self._stages:
            stage.join()

    def close(self) -> Written | None:
        """Flushes the last group; None when nothing (not even a schema) was written."""
        if self._schema is None:
            return None
        if self._pending_rows or not self._stages:
            self._emit(self._pending_rows)
        self._join()
        self._raise_failure()
        assert self._writer is not None
        self._writer.close()
        self._digest.hash.update(self._schema.serialize().to_pybytes())
        return Written(self.path, self._digest.hash.hexdigest(), self.rows, self._schema)

    def abort(self) -> None:
        self._join()
        if self._writer is not None:
            self._writer.close()
        self.path.unlink(missing_ok=True)


class _Stage:
    """A thread that hands each row group from a short queue, in order, to ``work``; a
    failure is kept for the producer to raise, and later groups are skipped."""

    def __init__(self, name: str, work: Callable[[pa.Table], None]) -> None:
        self._work = work
        self._queue: queue.Queue[pa.Table | None] = queue.Queue(maxsize=2)
        self.failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name)
        self._thread.start()

    def put(self, group: pa.Table) -> None:
        self._queue.put(group)

    def _run(self) -> None:
        while (group := self._queue.get()) is not None:
            if self.failure is not None:
                continue  # keep taking groups so the producer never blocks forever
            try:
                self._work(group)
            except BaseException as error:  # re-raised in the producer's thread
                self.failure = error

    def join(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


class _Digest:
    """A write-only file for ``pa.PythonFile``: what is written goes into SHA-256 and is
    not kept (pyarrow hands over its buffers, so nothing is copied)."""

    closed = False

    def __init__(self) -> None:
        self.hash = hashlib.sha256()

    def write(self, data: Any) -> int:
        self.hash.update(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _dictionary_columns(group: pa.Table) -> list[str]:
    """The text columns worth dictionary encoding, judged on the first row group: those
    with at most half their values distinct. On numbers, and on text that is mostly
    distinct (Parquet gives the dictionary up past 1 MiB anyway), it only costs time."""
    return [
        field.name
        for field in group.schema
        if pa.types.is_string(field.type)
        and pc.count_distinct(group.column(field.name)).as_py() * 2 <= group.num_rows
    ]


def normalized(schema: pa.Schema) -> pa.Schema:
    """One Arrow type per kind of value, so the same rows hash the same from any source:
    large strings become strings, dictionaries their values, timestamps microseconds."""

    def simple(kind: pa.DataType) -> pa.DataType:
        if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
            return pa.string()
        if pa.types.is_large_binary(kind):
            return pa.binary()
        if pa.types.is_dictionary(kind):
            return simple(kind.value_type)
        if pa.types.is_timestamp(kind):
            return pa.timestamp("us", tz=kind.tz)
        if pa.types.is_date64(kind):
            return pa.date32()
        return kind

    return pa.schema([pa.field(f.name, simple(f.type), f.nullable) for f in schema])


def write_versions(
    batches: Iterator[pa.RecordBatch],
    folder: Path,
    check: Callable[[pa.RecordBatch], Any] | None,
    on_invalid: str,
    after_batch: Callable[[], None] | None = None,
) -> tuple[Written | None, Written | None, int]:
    """Streams ``batches`` through ``check`` into the main and quarantine Parquet files.

    ``check`` returns the validator's result for a batch (conformed rows, a validity
    mask and a reason per row). Returns (main, quarantine, rows read). Under the
    ``fail`` policy nothing more is written once a row fails, but every batch is still
    checked so the report names every problem.
    """
    main = _Sink(folder / "data.parquet")
    quarantine = _Sink(folder / "quarantine.parquet")
    rows_in = 0
    failed = False
    try:
        for batch in batches:
            rows_in += batch.num_rows
            if check is None:
                main.write(batch)
            else:
                result = check(batch)
                if result.structural or failed:
                    failed = True  # the report refuses the whole ingest at the end
                elif on_invalid == "warn" or bool(result.valid.all()):
                    main.write(result.table)
                elif on_invalid == "fail":
                    failed = True
                else:
                    valid = pa.array(result.valid, type=pa.bool_())
                    invalid = pc.invert(valid)
                    main.write(result.table.filter(valid))
                    rejected = pa.Table.from_batches([batch]).filter(invalid)
                    reasons = pa.array(result.reasons, type=pa.string()).filter(invalid)
                    quarantine.write(rejected.append_column(REASON_COLUMN, reasons))
            if after_batch is not None:
                after_batch()
        return main.close(), quarantine.close(), rows_in
    except BaseException:
        main.abort()
        quarantine.abort()
        raise


def temporary_folder(home: Path) -> Path:
    """A private folder for one ingest's temporary files, inside the workspace."""
    root = home / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="ingest-", dir=root))


def remove_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def check_policy(on_invalid: str) -> None:
    if on_invalid not in POLICIES:
        raise ValidationError(
            f"on_invalid must be one of {', '.join(POLICIES)}, got {on_invalid!r}: 'fail' "
            "stores nothing when a row fails, 'quarantine' sets failing rows aside, 'warn' "
            "stores everything and records the problems."
        )
