"""Batch scoring: a model over a large input, chunk by chunk, into a Parquet file.

``score(ws, "models:/churn@production", "data.parquet", "preds.parquet")`` streams the
input (a Parquet file or folder, a CSV file, a dataset reference such as ``churn@3``, or
a DataFrame) in chunks of ``chunk_rows`` through the model and appends each chunk's
predictions to the output as it goes, so memory holds a few chunks whatever the input's
size. Chunks are scored one per CPU in threads while this thread reads the next ones (a
Parquet input only for the columns the model takes) and writes the scored ones. The rows
are also logged to the prediction log with ``source="batch"``, under one request id per
job (:attr:`BatchResult.request_id`) and the input's row numbers, which is how feedback
for them is keyed. A Parquet file or a dataset version is logged by reference
(:class:`~loopml.serving.predlog.StoredInputs`): the log holds the outputs, and the
inputs are the rows of the dataset's blob or of the input file, stored once in the
artifact store beside the scoring; a CSV file, a folder or a DataFrame goes to the log
column by column. ``ray=True`` scores the chunks as Ray tasks.

Reading the input, scoring and writing the output share this module (past 400 lines):
each part has one caller, :func:`score`, and they meet in its loop.
"""

from __future__ import annotations

import functools
import gc
import itertools
import os
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.errors import ConfigError, ConflictError, NotFoundError, ValidationError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from loopml.artifacts.store import StoredBlob
    from loopml.models import LoadedModel, Manifest
    from loopml.serving.predlog import StoredInputs
    from loopml.workspace import Workspace

__all__ = ["RUNTIMES", "BatchResult", "score"]

RUNTIMES = ("pickle", "onnx")
Progress = Callable[[int, int | None], None]
Storer = Callable[[], "StoredBlob"]


@dataclass(frozen=True)
class BatchResult:
    """What a batch scoring job did."""

    rows: int
    seconds: float
    output: Path
    request_id: str
    """The prediction log's request id of this job's rows (their ``row`` is the input row)."""
    model: str
    version: int
    logged_rows: int = 0
    """Rows stored in the prediction log (``rows`` unless logging was off or failed)."""

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


def score(
    workspace: Workspace,
    ref: Any,
    input: str | os.PathLike[str] | pd.DataFrame,
    output: str | os.PathLike[str],
    *,
    chunk_rows: int = 100_000,
    runtime: str = "pickle",
    log: bool = True,
    ray: bool = False,
    on_progress: Progress | None = None,
    keep: Sequence[str] = (),
    overwrite: bool = False,
) -> BatchResult:
    """Scores ``input`` with the model ``ref`` and writes the predictions to ``output``.

    Args:
        workspace: Where the model, a dataset reference and the prediction log are.
        ref: ``models:/name/3``, ``models:/name@alias``, ``runs:/<run id>/model`` or a
            bundle path.
        input: A Parquet file or folder, a ``.csv`` file, a dataset reference (``churn``,
            ``churn@3``) or a DataFrame.
        output: The Parquet file to write: ``prediction``, a ``proba_<class>`` column per
            class for a classifier, and the ``keep`` columns, one row per input row, in
            input order. Written aside and renamed at the end: a failed job leaves none.
        chunk_rows: Rows per chunk (and per model call).
        runtime: ``"pickle"`` (the model itself) or ``"onnx"`` (the version's ONNX export).
        log: Also append the predictions to the prediction log (``source="batch"``).
        ray: Score chunks as Ray tasks (``LOOPML_RAY_ADDRESS`` for a cluster, else a
            local Ray).
        on_progress: Called after each chunk with (rows done, total rows or None).
        keep: Input columns to copy into the output (ids to join predictions back on).
        overwrite: Replace ``output`` if it exists (refused otherwise).

    A job that fails midway leaves no output, but the chunks it scored stay in the
    prediction log: they are predictions that were made.

    Raises:
        ValidationError: the input lacks columns the model needs (named), or bad options.
        ConflictError: ``output`` exists and ``overwrite`` is False.
        NotFoundError: no such model, input file or dataset.
    """
    if runtime not in RUNTIMES:
        raise ValidationError(f"runtime must be 'pickle' or 'onnx', got {runtime!r}.")
    if chunk_rows < 1:
        raise ValidationError(f"chunk_rows must be at least 1, got {chunk_rows}.")
    target = Path(output)
    if target.exists() and not overwrite:
        raise ConflictError(
            f"{target} already exists; pass overwrite=True (--overwrite) to replace it, or "
            "choose another output path."
        )
    # The cyclic garbage collector is off for the job. Unpickling imports the model's
    # library (scikit-learn and SciPy: a second of imports), whose objects all live as
    # long as the process, and each collection of that heap cost time for nothing; the
    # chunks' frames and arrays hold no cycles, reference counting frees them.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _score(
            workspace, ref, input, target, chunk_rows, runtime, log, ray, on_progress, keep
        )
    finally:
        if collecting:
            gc.enable()


def _score(
    workspace: Workspace,
    ref: Any,
    input: str | os.PathLike[str] | pd.DataFrame,
    target: Path,
    chunk_rows: int,
    runtime: str,
    log: bool,
    ray: bool,
    on_progress: Progress | None,
    keep: Sequence[str],
) -> BatchResult:
    started = time.perf_counter()
    model, name, version = _load(workspace, ref, runtime)
    chunks, total, storer = _chunks(workspace, input, chunk_rows, _columns_read(model, keep))
    request_id = f"batch-{uuid.uuid4().hex}"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
    from loopml.serving.predlog import PredictionLog

    copier = ThreadPoolExecutor(1, thread_name_prefix="loopml-batch-input")
    stored = None
    if log and storer is not None:
        chunks, stored = _stored_inputs(chunks, storer, copier)
    prediction_log = (
        PredictionLog(
            workspace,
            # By reference a row waits as its outputs only; room for the seconds the
            # input file takes to store, so that scoring goes on meanwhile.
            queue_rows=(20 if stored is not None else 2) * chunk_rows,
            flush_rows=chunk_rows,
            on_full="block",
            block_seconds=3600.0,  # a batch job waits for its log rather than losing rows
        )
        if log
        else None
    )
    rows = 0
    try:
        with _OutputFile(partial) as out:
            scorer = _RayScorer(model) if ray else _LocalScorer(model)
            inline = prediction_log is not None and stored is None
            try:
                for scored in scorer.run(chunks, keep, log_inputs=inline):
                    out.write(scored.output)
                    if prediction_log is not None:
                        prediction_log.log(
                            model=name, version=version, request_id=request_id,
                            inputs=scored.inputs if stored is None else stored,
                            predictions=scored.predictions,
                            probabilities=scored.probabilities, classes=model.classes,
                            latency_ms=scored.seconds * 1000, source="batch", row_offset=rows,
                        )  # fmt: skip
                    rows += scored.output.num_rows
                    if on_progress is not None:
                        on_progress(rows, total)
            finally:
                scorer.close()
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
        if prediction_log is not None:
            prediction_log.close(timeout=3600.0)
        copier.shutdown(wait=True)
    logged = 0 if prediction_log is None else prediction_log.written
    seconds = time.perf_counter() - started
    return BatchResult(rows, seconds, target, request_id, name, version, logged)


def _load(workspace: Workspace, ref: Any, runtime: str) -> tuple[LoadedModel, str, int]:
    """The model, and the name and version its predictions are logged under (a model
    outside the registry is logged under its reference, version 0)."""
    from loopml.models import load

    flavor = "onnx" if runtime == "onnx" else None
    if isinstance(ref, str) and ref.startswith("models:/"):
        version = workspace.registry.get(ref)
        return workspace.registry.load(ref, flavor=flavor), version.name, version.version
    model = load(ref, workspace=workspace)
    if runtime == "onnx" and model.manifest.flavor != "onnx":
        raise ValidationError(
            f"runtime='onnx' needs an ONNX model, and {ref} is a {model.manifest.flavor} "
            "model: score a registered version (models:/name/3) that has an ONNX export, "
            "or the path of an exported ONNX bundle."
        )
    return model, str(getattr(ref, "id", ref)), 0


# -- input --------------------------------------------------------------------------
def _stored_inputs(
    chunks: Iterator[pa.RecordBatch], storer: Storer, copier: ThreadPoolExecutor
) -> tuple[Iterator[pa.RecordBatch], StoredInputs | None]:
    """The chunks again, and the log's reference to their rows (the columns the first
    chunk has), the input being stored by ``copier`` meanwhile; None for an empty input."""
    from loopml.serving.predlog import StoredInputs

    first = next(chunks, None)
    if first is None:
        return iter(()), None
    schema = tuple((field.name, str(field.type)) for field in first.schema)
    return itertools.chain([first], chunks), StoredInputs(copier.submit(storer), schema)


def _columns_read(model: LoadedModel, keep: Sequence[str]) -> list[str] | None:
    """The input columns a job needs (the signature's, then ``keep``), or None for all
    (a model without a signature takes whatever it is given)."""
    inputs = model.signature.inputs
    if inputs is None:
        return None
    names = [column.name for column in inputs]
    return names + [name for name in keep if name not in names]


def _chunks(
    workspace: Workspace, source: Any, chunk_rows: int, columns: Sequence[str] | None = None
) -> tuple[Iterator[pa.RecordBatch], int | None, Storer | None]:
    """The input as record batches of ``chunk_rows`` rows (the last one shorter), the
    number of rows when known up front, and for a single Parquet file or a dataset
    version, how to have it as a blob in the artifact store (whose row n is chunk row n).
    A Parquet input is read for ``columns`` only (when it has them all); other inputs
    come whole."""
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        import pyarrow as pa

        table = pa.Table.from_pandas(source, preserve_index=False)
        return iter(table.to_batches(max_chunksize=chunk_rows)), table.num_rows, None
    path = Path(source)
    if path.is_dir() or path.suffix.lower() in (".parquet", ".pq"):
        if not path.exists():
            raise NotFoundError(f"No input file or folder {path}.")
        if path.is_dir():
            import pyarrow.dataset as ds  # a folder's files and schema as Arrow sees them

            dataset = ds.dataset(path, format="parquet")
            files, schema, rows = dataset.files, dataset.schema, dataset.count_rows()
        else:
            import pyarrow.parquet as pq

            with pq.ParquetFile(path) as file:
                files, schema, rows = [str(path)], file.schema_arrow, file.metadata.num_rows
        batches = _parquet_batches(files, schema, chunk_rows, columns)
        storer = None if path.is_dir() else functools.partial(_store_file, workspace, path)
        return _rechunk(batches, chunk_rows), rows, storer
    if path.name.lower().endswith((".csv", ".csv.gz")):
        if not path.exists():
            raise NotFoundError(f"No input file {path}.")
        import pyarrow.csv as pv

        reader = pv.open_csv(path, read_options=pv.ReadOptions(block_size=1 << 24))
        return _rechunk(iter(reader), chunk_rows), None, None
    if path.exists():
        raise ValidationError(
            f"Cannot score {path}: give a Parquet file or folder (.parquet) or a CSV file "
            "(.csv, .csv.gz)."
        )
    try:
        version = workspace.data.version(str(source))
    except NotFoundError as error:
        raise NotFoundError(
            f"The input {source!r} is neither a file nor a folder nor a dataset: {error}"
        ) from None
    names = {field["name"] for field in version.schema}
    wanted = columns if columns is not None and names.issuperset(columns) else None
    batches = workspace.data.batches(version, chunk_rows, wanted)
    blob = version.blob_sha256
    storer = functools.partial(_stored_blob, workspace, blob)
    return _rechunk(batches, chunk_rows), version.rows, storer


def _store_file(workspace: Workspace, path: Path) -> StoredBlob:
    """An input file in the artifact store, read once: it is most likely new."""
    return workspace.artifacts.put_file(path, once=True)


def _stored_blob(workspace: Workspace, sha256: str) -> StoredBlob:
    """A blob stored already (a dataset version's)."""
    from loopml.artifacts.store import StoredBlob

    store = workspace.artifacts
    return StoredBlob(sha256, int(store.fs.size(store.object_path(sha256))))


def _parquet_batches(
    files: Sequence[str], schema: pa.Schema, rows: int, columns: Sequence[str] | None
) -> Iterator[pa.RecordBatch]:
    """The files' rows in order, ``rows`` at a time, each batch with ``columns`` of
    ``schema`` (all of them if it lacks one, so that scoring names what is missing).

    Streamed (:func:`~loopml.data.sources.open_parquet`): Arrow's dataset scanner held
    whole row groups, several at once; a 5-million-row file peaked at 2.2 GB. As the
    scanner did, a file's column of another type is cast to the schema's, and a column
    it lacks is null.
    """
    import pyarrow as pa

    from loopml.data.sources import open_parquet

    wanted = columns if columns is not None and set(schema.names).issuperset(columns) else None
    target = schema if wanted is None else pa.schema([schema.field(name) for name in wanted])
    for name in files:
        with open_parquet(name) as file:
            present = set(file.schema_arrow.names)
            read = [field.name for field in target if field.name in present]
            for batch in file.iter_batches(batch_size=rows, columns=read):
                if batch.schema.equals(target):
                    yield batch
                    continue
                yield pa.RecordBatch.from_arrays(
                    [
                        batch.column(field.name).cast(field.type)
                        if field.name in present
                        else pa.nulls(batch.num_rows, field.type)
                        for field in target
                    ],
                    schema=target,
                )


def _rechunk(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Batches of exactly ``rows`` rows (the last one shorter) out of batches of any size;
    a batch of the right size passes as it is (no copy)."""
    import pyarrow as pa

    held: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        if not held and batch.num_rows == rows:
            yield batch
            continue
        held.append(batch)
        count += batch.num_rows
        while count >= rows:
            table = pa.Table.from_batches(held)
            yield from table.slice(0, rows).combine_chunks().to_batches()
            rest = table.slice(rows)
            held, count = rest.to_batches(), rest.num_rows
    if count:
        yield from pa.Table.from_batches(held).combine_chunks().to_batches()


# -- scoring ------------------------------------------------------------------------
def predict_frame(model: LoadedModel, frame: pd.DataFrame) -> tuple[pd.DataFrame, Any, Any]:
    """The prepared input, predictions and probabilities (None unless a classifier)."""
    import numpy as np

    prepared = model.prepare(frame)
    if model.manifest.flavor == "onnx":
        from loopml.models.onnx import onnx_predict

        predictions, probabilities = onnx_predict(model.model, prepared)
        return prepared, predictions, probabilities
    estimator = model.model
    if model.classes is None or not callable(getattr(estimator, "predict_proba", None)):
        return prepared, estimator.predict(prepared), None
    probabilities = estimator.predict_proba(prepared)
    if _predicts_by_argmax(estimator):  # half the work: predict would compute them again
        classes = np.asarray(estimator.classes_)
        return prepared, classes.take(np.argmax(probabilities, axis=1)), probabilities
    return prepared, estimator.predict(prepared), probabilities


def _predicts_by_argmax(estimator: Any) -> bool:
    """Whether ``predict`` is, by its definition, the class of the highest probability:
    scikit-learn's single-output trees and forests (alone or last in a pipeline)."""
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.tree import DecisionTreeClassifier

    final = estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator
    return (
        isinstance(final, (RandomForestClassifier, ExtraTreesClassifier, DecisionTreeClassifier))
        and getattr(final, "n_outputs_", 1) == 1
        and hasattr(estimator, "classes_")
    )


@dataclass(frozen=True, slots=True)
class _Scored:
    """One scored chunk."""

    output: pa.Table
    """The chunk's rows of the output file."""
    inputs: pa.Table | None
    """The model's input (and the ``keep`` columns) as the prediction log stores it;
    None when the job does not log."""
    predictions: Any
    probabilities: Any
    seconds: float
    """The time the model took."""


class _LocalScorer:
    """Scores a chunk per CPU at a time in threads (scikit-learn's trees and ONNX Runtime
    release the GIL while they compute), while the next chunks are read and the scored
    ones written: one chunk more than the threads is in flight, so that both cores score
    while this thread reads and writes."""

    def __init__(self, model: LoadedModel) -> None:
        if model.manifest.flavor == "onnx":
            model = _single_threaded(model.model.onnx_bytes, model.manifest)
        self._model = model
        self._workers = max(2, os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="loopml-batch")

    def run(
        self, chunks: Iterator[pa.RecordBatch], keep: Sequence[str], *, log_inputs: bool
    ) -> Iterator[_Scored]:
        pending: deque[Any] = deque()
        for batch in chunks:
            pending.append(
                self._pool.submit(_score_in_thread, self._model, batch, keep, log_inputs)
            )
            if len(pending) > self._workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class _RayScorer:
    """Scores chunks as Ray tasks, a few per CPU in flight, results taken in order."""

    def __init__(self, model: LoadedModel) -> None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        try:
            import ray
        except ImportError:
            raise ConfigError("ray=True needs Ray; run: pip install 'loopml[ray]'.") from None
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            address = os.environ.get("LOOPML_RAY_ADDRESS") or None
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)
            self._started = True
        cpus = int(ray.cluster_resources().get("CPU", 1))  # type: ignore[no-untyped-call]
        self._in_flight = 2 * max(1, cpus)
        # An ONNX Runtime session does not pickle; workers rebuild it from the bytes.
        onnx = model.manifest.flavor == "onnx"
        self._model = ray.put((model.model.onnx_bytes, model.manifest) if onnx else model)
        self._remote = ray.remote(num_cpus=1, max_retries=1)(_score_remote)

    def run(
        self, chunks: Iterator[pa.RecordBatch], keep: Sequence[str], *, log_inputs: bool
    ) -> Iterator[_Scored]:
        pending: deque[Any] = deque()
        for batch in chunks:
            pending.append(self._remote.remote(self._model, batch, keep, log_inputs))
            if len(pending) >= self._in_flight:
                yield self._ray.get(pending.popleft())
        while pending:
            yield self._ray.get(pending.popleft())

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()


def _score_remote(model: Any, batch: pa.RecordBatch, keep: Sequence[str], log: bool) -> _Scored:
    """A Ray task: :func:`_score_in_thread`, with an ONNX model sent as (bytes, manifest)."""
    if isinstance(model, tuple):
        model = _single_threaded(*model)
    return _score_in_thread(model, batch, keep, log)


def _score_in_thread(
    model: LoadedModel, batch: pa.RecordBatch, keep: Sequence[str], log: bool
) -> _Scored:
    """:func:`_score_batch`, with joblib sequential in this thread for a pickled model: a
    model's own ``n_jobs`` (a forest's trees over threads) would only compete with the
    chunks scored side by side, one per CPU."""
    if model.manifest.flavor == "onnx":  # one thread per session already; no joblib
        return _score_batch(model, batch, keep, log)
    from joblib import parallel_config

    with parallel_config(backend="sequential"):
        return _score_batch(model, batch, keep, log)


def _single_threaded(onnx_bytes: bytes, manifest: Manifest) -> LoadedModel:
    """An ONNX model whose every call runs on one thread, without spin-waiting: chunks run
    side by side, and ONNX Runtime's default thread pool would only compete with them
    (it spends a third of its CPU time spinning here)."""
    from loopml.models import LoadedModel
    from loopml.models.onnx import OnnxModel

    return LoadedModel(OnnxModel(_session(onnx_bytes), onnx_bytes), manifest)


@functools.lru_cache(maxsize=4)
def _session(onnx_bytes: bytes) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


def _score_batch(
    model: LoadedModel, batch: pa.RecordBatch, keep: Sequence[str], log: bool
) -> _Scored:
    """One chunk: its output rows, its rows for the prediction log (when ``log``),
    predictions, probabilities, and the seconds the model took."""
    missing = [name for name in keep if name not in batch.schema.names]
    if missing:
        raise ValidationError(
            f"The input has no column(s) {', '.join(map(repr, missing))} to keep; it has "
            f"{', '.join(map(repr, batch.schema.names[:20]))}."
        )
    # The model gets exactly its columns when the input has them (preparing a frame with
    # other columns as well copies the model's into a new one), each a pandas column over
    # Arrow's own memory: no copy of a numeric column.
    names = [column.name for column in model.signature.inputs or ()]
    given = set(batch.schema.names)
    own = batch.select(names) if names and given.issuperset(names) else batch
    frame = own.to_pandas(split_blocks=True)
    started = time.perf_counter()
    prepared, predictions, probabilities = predict_frame(model, frame)
    seconds = time.perf_counter() - started
    added = [name for name in keep if name not in prepared.columns]
    if added:
        kept = batch.select(added).to_pandas()
        for name in added:
            prepared[name] = kept[name].to_numpy()
    output = _output_table(prepared, predictions, probabilities, model, keep)
    inputs = _logged_inputs(batch, prepared) if log else None
    return _Scored(output, inputs, predictions, probabilities, seconds)


def _logged_inputs(batch: pa.RecordBatch, prepared: pd.DataFrame) -> pa.Table:
    """``prepared`` as the prediction log stores a DataFrame (``pa.Table.from_pandas``),
    taking each numeric column the model received unchanged from the input's own Arrow
    array instead of converting it back: no copy of the input's bulk."""
    import pyarrow as pa

    direct = {}
    for name in prepared.columns:
        array = _unchanged(batch, name, prepared[name])
        if array is not None:
            direct[name] = array
    rest = prepared[[name for name in prepared.columns if name not in direct]]
    converted = pa.Table.from_pandas(rest, preserve_index=False)
    return pa.table(
        {
            str(name): direct[name] if name in direct else converted.column(str(name))
            for name in prepared.columns
        }
    )


def _unchanged(batch: pa.RecordBatch, name: Any, column: pd.Series) -> pa.Array | None:
    """The input's Arrow array for ``column`` when it holds exactly what
    ``pa.Table.from_pandas`` would make of ``column``, else None.

    That is an integer array without nulls or a floating-point one whose pandas column
    kept its dtype (preparing the input converts a column only by changing its dtype);
    pandas' NaN becomes a null in the log, so a float array's NaN values do too.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    index = batch.schema.get_field_index(name) if isinstance(name, str) else -1
    if index < 0:
        return None
    array = batch.column(index)
    kind = array.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        return None
    if column.dtype != kind.to_pandas_dtype():
        return None
    if pa.types.is_integer(kind):
        return array if array.null_count == 0 else None
    nan = pc.is_nan(array)
    if pc.any(nan).as_py():
        return pc.if_else(nan, pa.scalar(None, kind), array)
    return array


# -- output -------------------------------------------------------------------------
def _output_table(
    frame: pd.DataFrame,
    predictions: Any,
    probabilities: Any,
    model: LoadedModel,
    keep: Sequence[str],
) -> pa.Table:
    import numpy as np
    import pyarrow as pa

    columns: dict[str, Any] = {
        name: pa.array(frame[name].to_numpy(), from_pandas=True) for name in keep
    }
    columns["prediction"] = pa.array(np.asarray(predictions))
    if probabilities is not None:
        matrix = np.asarray(probabilities, dtype=np.float64)
        classes = model.classes or list(range(matrix.shape[1]))
        for i, name in enumerate(classes):
            columns[f"proba_{name}"] = pa.array(matrix[:, i])
    return pa.table(columns)


class _OutputFile:
    """A Parquet file written one table at a time (its schema from the first)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: Any = None

    def write(self, table: pa.Table) -> None:
        import pyarrow.parquet as pq

        from loopml.serving.predlog import parquet_options

        if self._writer is None:
            options = parquet_options(table.schema)
            self._writer = pq.ParquetWriter(self.path, table.schema, **options)
        self._writer.write_table(table.cast(self._writer.schema))

    def __enter__(self) -> _OutputFile:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._writer.close()
        elif exc[0] is None:  # an empty input: still an output, with no rows
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.table({"prediction": pa.array([], pa.float64())}), self.path)
