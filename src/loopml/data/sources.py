"""Readers that turn any supported source into a stream of Arrow record batches.

Nothing here reads a whole file into memory: CSV and JSON Lines are parsed by pyarrow
in line-aligned blocks of a few MB (its own streaming CSV reader read ahead about 0.7x
the file into memory), Parquet through its batch iterator, SQL through a server-side
cursor fetched in chunks. Files are read on a thread of their own, two batches ahead of
the caller (pyarrow parses and decodes without the GIL), so reading overlaps with what
the caller does with each batch. Each reader reports how far it has got (bytes or rows)
so the CLI can draw a progress bar.
"""

from __future__ import annotations

import glob as globbing
import os
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from loopml.errors import NotFoundError, ValidationError

__all__ = ["FORMATS", "Source", "open_parquet", "open_source"]

FORMATS = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet",
           ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}  # fmt: skip
CHUNK_ROWS = 131_072
_BLOCK_BYTES = 4 << 20


@dataclass
class Source:
    """An opened source: a description, its total size when known, and its batches."""

    description: str
    batches: Callable[[], Iterator[pa.RecordBatch]]
    total: int | None = None  # bytes (files) or rows (frames, tables); None when unknown
    unit: str = "B"
    progress: list[int] = field(default_factory=lambda: [0])  # advanced by the reader


def open_source(
    source: Any,
    *,
    string_columns: frozenset[str] = frozenset(),
    sql_url: str | None = None,
) -> Source:
    """Opens a path, glob, folder of Parquet files, DataFrame, Arrow Table or SQL query.

    Args:
        source: What to read. A string starting with ``SELECT``/``WITH`` is a SQL query
            when ``sql_url`` is given.
        string_columns: CSV columns to read as text so that a malformed value reaches
            validation as one bad row instead of failing the whole read.
        sql_url: SQLAlchemy URL of the database a SQL query runs on.
    """
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        return _from_frame(source)
    if isinstance(source, pa.Table):
        return _from_table(source, "Arrow table")
    if isinstance(source, pa.RecordBatchReader):
        return Source("Arrow stream", lambda: iter(source))
    if sql_url is not None:
        return _from_sql(str(source), sql_url)
    if not isinstance(source, (str, os.PathLike)):
        raise ValidationError(
            f"Cannot ingest a {type(source).__name__}; pass a file path, a glob, a folder of "
            "Parquet files, a pandas DataFrame, a pyarrow Table or a SQL query with sql_url=."
        )
    text = str(source)
    if any(ch in text for ch in "*?["):
        paths = sorted(Path(p) for p in globbing.glob(text, recursive=True) if Path(p).is_file())
        if not paths:
            raise NotFoundError(f"No file matches {text!r}; check the pattern.")
        return _from_files(paths, text, string_columns)
    path = Path(text).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        parquet = [p for p in files if _format(p) == "parquet"]
        if not parquet:
            raise ValidationError(f"{path} holds no Parquet files; a folder is read as Parquet.")
        return _from_files(parquet, str(path), string_columns)
    if not path.exists():
        raise NotFoundError(f"{path} does not exist; check the path.")
    return _from_files([path], str(path), string_columns)


def _format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes if s.lower() not in {".gz", ".bz2", ".zst"}]
    found = FORMATS.get(suffixes[-1]) if suffixes else None
    if found is None:
        raise ValidationError(
            f"Cannot tell the format of {path.name}: loopml reads .csv, .tsv, .parquet, "
            ".jsonl/.ndjson (optionally compressed). Rename the file or convert it."
        )
    return found


def _from_files(paths: list[Path], description: str, string_columns: frozenset[str]) -> Source:
    formats = {_format(p) for p in paths}
    if not formats:
        raise ValidationError(f"{description} names no file to read.")
    if len(formats) > 1:
        raise ValidationError(
            f"{description} mixes formats ({', '.join(sorted(formats))}); ingest one at a time."
        )
    for path in paths:
        if path.stat().st_size == 0:
            raise ValidationError(f"{path} is empty: there is no header and no row to ingest.")
    source = Source(description, lambda: iter(()), total=sum(p.stat().st_size for p in paths))

    def batches() -> Iterator[pa.RecordBatch]:
        schema: pa.Schema | None = None
        done = 0
        fmt = formats.pop() if len(formats) == 1 else "csv"
        for path in paths:

            def advance(position: int, base: int = done) -> None:
                source.progress[0] = base + position

            for batch in _read_file(path, fmt, string_columns, advance):
                if schema is None:
                    schema = batch.schema
                elif batch.schema != schema:
                    batch = _conform(batch, schema, path)
                yield batch
            done += path.stat().st_size
            source.progress[0] = done

    source.batches = lambda: _read_ahead(batches())
    return source


def _read_ahead(batches: Iterator[pa.RecordBatch], depth: int = 2) -> Iterator[pa.RecordBatch]:
    """What ``batches`` yields, produced on a thread of its own up to ``depth`` batches
    ahead; its errors are raised here. Stopping early stops the thread."""
    ready: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand_over(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not hand_over(("batch", batch)):
                    return
            hand_over(("end", None))
        except BaseException as error:  # raised in the caller's thread
            hand_over(("error", error))
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="loopml-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = ready.get()
            if kind == "error":
                raise value
            if kind == "end":
                return
            yield value
    finally:
        stop.set()
        thread.join()


def _lines(path: Path, advance: Callable[[int], None]) -> Iterator[bytes]:
    """The file in blocks of about ``_BLOCK_BYTES`` that end at a line break.

    Parsing each block on its own keeps memory flat: pyarrow's streaming CSV reader was
    measured holding ~0.7x the file in its pool (it reads ahead). Like pyarrow's default
    parser, this assumes no line break inside a quoted value.
    """
    codec = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd"}.get(path.suffix.lower())
    with path.open("rb") as raw:
        stream: Any = pa.CompressedInputStream(raw, codec) if codec else raw
        carry = b""
        while True:
            block = stream.read(_BLOCK_BYTES)
            advance(raw.tell())
            if not block:
                break
            block = carry + block
            cut = block.rfind(b"\n") + 1
            if cut == 0:
                carry = block
                continue
            carry = block[cut:]
            yield block[:cut]
        if carry.strip():
            yield carry


def open_parquet(path: str | os.PathLike[str], filesystem: Any = None) -> Any:
    """A ``pyarrow.parquet.ParquetFile`` opened to be streamed page by page.

    pyarrow pre-buffers by default: ``iter_batches`` then holds whole row groups, several
    at once (a 5M-row dataset of 39 row groups: 810 MB more at peak; streamed, 100-120
    MB; 10M rows in 1M-row groups: 850 MB against 300 MB), and spends time faulting in
    fresh memory. Streamed, each column is read a megabyte at a time as it is decoded.
    ``filesystem`` is an Arrow filesystem ``path`` is on (the local disk when None).
    """
    import pyarrow.parquet as pq

    return pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20, filesystem=filesystem)


def _read_file(
    path: Path, fmt: str, string_columns: frozenset[str], advance: Callable[[int], None]
) -> Iterator[pa.RecordBatch]:
    line = 1
    try:
        if fmt == "parquet":
            # One thread decodes: reading runs beside validation and writing already.
            handle = open_parquet(path)
            total_rows = max(1, handle.metadata.num_rows)
            rows = 0
            for batch in handle.iter_batches(batch_size=CHUNK_ROWS, use_threads=False):
                rows += batch.num_rows
                advance(int(path.stat().st_size * rows / total_rows))
                yield batch
            return
        schema: pa.Schema | None = None
        for block in _lines(path, advance):
            if fmt == "csv":
                table = _parse_csv(block, path, schema, string_columns)
            else:
                table = _parse_jsonl(block, schema)
            if schema is None:
                schema = table.schema
                if fmt == "csv":
                    _check_header(schema, path)
            line += block.count(b"\n")
            yield from table.to_batches(max_chunksize=CHUNK_ROWS)
        if schema is None:
            raise ValidationError(f"{path} holds no data; nothing was stored.")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise ValidationError(_explain(path, fmt, str(error), line)) from None
    except UnicodeDecodeError as error:
        raise ValidationError(
            f"{path} is not valid UTF-8 near byte {error.start}; re-encode it as UTF-8."
        ) from None


def _parse_csv(
    block: bytes, path: Path, schema: pa.Schema | None, string_columns: frozenset[str]
) -> pa.Table:
    from pyarrow import csv

    delimiter = "\t" if ".tsv" in [s.lower() for s in path.suffixes] else ","
    if schema is None:
        types = {name: pa.string() for name in string_columns}
        read = csv.ReadOptions(block_size=len(block) + 1)
    else:
        types = {field.name: field.type for field in schema}
        read = csv.ReadOptions(block_size=len(block) + 1, column_names=schema.names)
    table = csv.read_csv(
        pa.BufferReader(block),
        read_options=read,
        parse_options=csv.ParseOptions(delimiter=delimiter),
        convert_options=csv.ConvertOptions(column_types=types, strings_can_be_null=True),
    )
    undecodable = [f.name for f in table.schema if pa.types.is_binary(f.type)]
    if undecodable:
        # pyarrow reads text that is not UTF-8 as bytes rather than failing.
        raise ValidationError(
            f"{path} is not valid UTF-8 (column {', '.join(undecodable)}); re-encode the file "
            "as UTF-8 (for example: iconv -f latin1 -t utf-8). Nothing was stored."
        )
    return table


def _parse_jsonl(block: bytes, schema: pa.Schema | None) -> pa.Table:
    from pyarrow import json

    parse = json.ParseOptions(explicit_schema=schema) if schema is not None else None
    return json.read_json(
        pa.BufferReader(block),
        read_options=json.ReadOptions(block_size=len(block) + 1),
        parse_options=parse,
    )


def _check_header(schema: pa.Schema, path: Path) -> None:
    names = schema.names
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValidationError(
            f"{path} has duplicate column names: {', '.join(duplicates)}. Rename them so "
            "each column has its own name."
        )


def _explain(path: Path, fmt: str, message: str, line: int) -> str:
    first = message.strip().splitlines()[0]
    if "Expected" in first and "columns" in first:
        hint = "a row has a different number of fields than the header; fix or quote it"
    elif "conversion error" in first.lower() or "In CSV column" in first:
        hint = (
            "a column holds values of mixed types; give a contract that declares its type "
            "so the bad rows can be reported, or fix the data"
        )
    elif "invalid UTF8" in first or "UTF-8" in first or "utf8" in first.lower():
        hint = "the file is not valid UTF-8; re-encode it"
    elif "Empty CSV file" in first or "empty" in first.lower():
        hint = "the file holds no data"
    else:
        hint = f"check that it is a well-formed {fmt.upper()} file"
    where = f"{path} (in the block from line {line:,})"
    return f"Cannot read {where}: {first} ({hint}). Nothing was stored."


def _conform(batch: pa.RecordBatch, schema: pa.Schema, path: Path) -> pa.RecordBatch:
    if batch.schema.names != schema.names:
        raise ValidationError(
            f"{path} has columns {batch.schema.names}, unlike the first file's "
            f"{schema.names}; all files of one ingest must share their columns."
        )
    try:
        return batch.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise ValidationError(
            f"{path} has column types {batch.schema} that do not match the first file's "
            f"{schema}; give a contract that declares the types, or convert the files."
        ) from None


def _from_frame(frame: Any) -> Source:
    names = [str(c) for c in frame.columns]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValidationError(
            f"The DataFrame has duplicate column names: {', '.join(duplicates)}. Rename them."
        )
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise ValidationError(
            f"The DataFrame has a column of mixed types ({str(error).splitlines()[0]}); "
            "convert it to one type (for example with .astype(str))."
        ) from None
    return _from_table(table, f"pandas DataFrame ({len(frame):,} rows)")


def _from_table(table: pa.Table, description: str) -> Source:
    source = Source(description, lambda: iter(()), total=table.num_rows, unit="rows")

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in table.to_batches(max_chunksize=CHUNK_ROWS):
            source.progress[0] += batch.num_rows
            yield batch

    source.batches = batches
    return source


def _from_sql(query: str, url: str) -> Source:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    shown = url.split("@")[-1]
    source = Source(f"SQL on {shown}: {query.strip()[:200]}", lambda: iter(()), unit="rows")

    def batches() -> Iterator[pa.RecordBatch]:
        engine = create_engine(url)
        try:
            with engine.connect() as connection:
                result = connection.execution_options(stream_results=True).execute(text(query))
                names = list(result.keys())
                schema: pa.Schema | None = None
                for rows in result.partitions(CHUNK_ROWS):
                    columns: list[Any] = list(zip(*rows, strict=True))
                    batch = pa.RecordBatch.from_arrays(
                        [pa.array(list(c)) for c in columns], names=names
                    )
                    schema = _widen(schema, batch.schema)
                    source.progress[0] += batch.num_rows
                    yield batch.cast(schema) if batch.schema != schema else batch
        except SQLAlchemyError as error:
            raise ValidationError(
                f"The SQL source failed: {str(getattr(error, 'orig', error)).strip()}. Check "
                "the URL, that the server runs, and the query."
            ) from None
        finally:
            engine.dispose()

    source.batches = batches
    return source


def _widen(known: pa.Schema | None, seen: pa.Schema) -> pa.Schema:
    """The first chunk's types, with columns that were all NULL so far taking later types."""
    if known is None:
        return seen
    fields = [
        seen.field(i) if pa.types.is_null(field.type) else field for i, field in enumerate(known)
    ]
    return pa.schema(fields)
