"""The prediction log taking batch scoring's chunks: Arrow tables stored as they are, or
inputs stored already, referred to by row."""

from __future__ import annotations

import time
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import loopml
from loopml.artifacts.store import StoredBlob
from loopml.errors import NotFoundError
from loopml.serving.feedback import prediction_files, scan
from loopml.serving.predlog import PredictionLog, StoredInputs
from tests.conftest import S3Backend


def stored(ws: loopml.Workspace, model: str) -> pa.Table:
    """The rows logged for ``model``, as its Parquet files hold them."""
    tables = [
        pq.read_table(ws.artifacts.object_path(f.sha256)) for f in prediction_files(ws, model)
    ]
    return pa.concat_tables(tables, promote_options="permissive")


def log_chunk(
    log: PredictionLog, inputs: pd.DataFrame | pa.Table | StoredInputs, offset: int, rows: int = 2
) -> None:
    rows = rows if isinstance(inputs, StoredInputs) else len(inputs)
    log.log(
        model="job", version=1, request_id="batch-1", inputs=inputs,
        predictions=np.arange(offset, offset + rows) % 2, probabilities=np.full((rows, 2), 0.5),
        classes=[0, 1], latency_ms=3.0, source="batch", row_offset=offset,
    )  # fmt: skip


def test_arrow_chunks_in_one_write_are_stored_as_they_are(
    sqlite_workspace: loopml.Workspace,
) -> None:
    chunks = [
        pa.table({"x": pa.array([0.5, None, np.nan][:rows] * 2), "row": pa.array(["a"] * rows * 2)})
        for rows in (3, 2)
    ]
    with PredictionLog(sqlite_workspace, flush_seconds=3600) as log:  # one write, on close
        log_chunk(log, chunks[0], 0)
        log_chunk(log, chunks[1], 6)
    table = stored(sqlite_workspace, "job")
    assert table.column("row").to_pylist() == list(range(10))
    assert table.column("input.row").to_pylist() == ["a"] * 10  # a reserved name kept apart
    x = table.column("x").to_pylist()
    assert x[:2] == [0.5, None] and np.isnan(x[2]) and x[6:8] == [0.5, None]
    assert table.column("prediction").to_pylist() == [0, 1] * 5
    assert log.written == 10 and log.files == 1


def test_arrow_and_frame_chunks_of_other_types_are_combined(
    sqlite_workspace: loopml.Workspace,
) -> None:
    with PredictionLog(sqlite_workspace, flush_seconds=3600) as log:
        log_chunk(log, pa.table({"x": pa.array([1, 2], pa.int64())}), 0)
        log_chunk(log, pa.table({"x": pa.array([0.5, 1.5])}), 2)
        log_chunk(log, pd.DataFrame({"x": [7.25]}), 4)
    table = stored(sqlite_workspace, "job")
    assert table.column("x").to_pylist() == [1.0, 2.0, 0.5, 1.5, 7.25]
    assert table.column("row").to_pylist() == [0, 1, 2, 3, 4]
    assert log.written == 5 and log.dropped == 0


# -- inputs by reference --------------------------------------------------------------
def stored_inputs(ws: loopml.Workspace, table: pa.Table, tmp_path: Path) -> StoredInputs:
    """``table`` as a Parquet blob (row groups of 4 rows) the log can refer to."""
    path = tmp_path / "inputs.parquet"
    pq.write_table(table, path, row_group_size=4)
    blob: Future[StoredBlob] = Future()
    blob.set_result(ws.artifacts.put_file(path))
    return StoredInputs(blob, tuple((f.name, str(f.type)) for f in table.schema))


INPUTS = pa.table(
    {
        "x": pa.array([0.5, None, np.nan, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0]),
        "row": pa.array([f"r{i}" for i in range(12)]),  # a reserved name
        "city": pa.array(list("abcdefghijkl")),
    }
)


def test_stored_inputs_are_joined_back_by_row(
    sqlite_workspace: loopml.Workspace, tmp_path: Path
) -> None:
    ws = sqlite_workspace
    inputs = stored_inputs(ws, INPUTS, tmp_path)
    with PredictionLog(ws, flush_seconds=3600) as log:
        log_chunk(log, inputs, 0, rows=3)  # rows 0-2 (of row group 0)
        log.flush()
        middle = time.time()
        time.sleep(0.01)
        log_chunk(log, inputs, 5)  # rows 5-6 (of row groups 1)...
        log_chunk(log, inputs, 7)  # ...and 7-8 (groups 1 and 2)
    first, second = prediction_files(ws, "job")
    assert first.inputs_sha256 == second.inputs_sha256 == inputs.blob.result().sha256
    assert second.inputs_columns == ("x", "row", "city")
    assert not {"x", "city", "input.row"} & set(pq.read_schema(path(ws, second.sha256)).names)
    frame = ws.predictions("job")
    assert frame["row"].tolist() == [0, 1, 2, 5, 6, 7, 8]
    assert frame["input.row"].tolist() == ["r0", "r1", "r2", "r5", "r6", "r7", "r8"]
    assert frame["city"].tolist() == list("abcfghi")
    assert frame["x"].tolist()[3:] == [5.0, 6.0, 7.0, 8.0] and frame["x"][0] == 0.5
    # The columns in the order an inline log has them, the inputs after the log's own.
    assert list(frame.columns) == [
        "request_id", "row", "time", "model", "version", "arm", "source", "latency_ms",
        "x", "input.row", "city", "prediction", "proba_0", "proba_1",
    ]  # fmt: skip
    later = ws.predictions("job", since=middle, columns=["city", "row"])
    assert later.to_dict("list") == {"city": list("fghi"), "row": [5, 6, 7, 8]}
    # NaN read as null, as an inline log stores a DataFrame's NaN.
    (x,) = pa.Table.from_batches(scan(ws, [first], None, None, ["x"])).columns
    assert x.to_pylist() == [0.5, None, None]


def test_a_batch_files_repeated_text_is_stored_once_and_read_back_as_text(
    sqlite_workspace: loopml.Workspace, tmp_path: Path
) -> None:
    """A job's id, model, arm and source repeat on every row: its file holds them as
    dictionaries (spelling them out per row cost more than writing the file), and every
    reader sees plain text, as from a server's files."""
    ws = sqlite_workspace
    inputs = stored_inputs(ws, INPUTS, tmp_path)
    with PredictionLog(ws, flush_seconds=3600) as log:
        log_chunk(log, inputs, 0, rows=4)
        log_chunk(log, inputs, 4, rows=4)
    (file,) = prediction_files(ws, "job")
    physical = pq.read_schema(path(ws, file.sha256))
    for name in ("request_id", "model", "arm", "source"):
        assert pa.types.is_dictionary(physical.field(name).type)
        assert dict(file.schema)[name] == "string"
    frame = ws.predictions("job")
    assert frame["request_id"].tolist() == ["batch-1"] * 8
    assert frame["model"].tolist() == ["job"] * 8 and frame["source"].tolist() == ["batch"] * 8
    assert frame["arm"].isna().all()
    assert not any(isinstance(frame[name].dtype, pd.CategoricalDtype) for name in frame)
    (table,) = [pa.Table.from_batches(scan(ws, [file], None, None, ["request_id", "arm"]))]
    assert table.schema.types == [pa.string(), pa.string()]


def test_outputs_alone_are_read_without_the_inputs_blob(
    sqlite_workspace: loopml.Workspace, tmp_path: Path
) -> None:
    ws = sqlite_workspace
    inputs = stored_inputs(ws, INPUTS, tmp_path)
    with PredictionLog(ws) as log:
        log_chunk(log, inputs, 2)
    Path(path(ws, inputs.blob.result().sha256)).unlink()
    assert ws.predictions("job", columns=["row", "prediction"])["row"].tolist() == [2, 3]
    with pytest.raises(NotFoundError, match="no longer has; read without their input columns"):
        ws.predictions("job", columns=["city"])


def test_stored_and_inline_inputs_read_back_as_one_frame(
    sqlite_workspace: loopml.Workspace, tmp_path: Path
) -> None:
    ws = sqlite_workspace
    with PredictionLog(ws) as log:
        log_chunk(log, stored_inputs(ws, INPUTS, tmp_path), 10)
        log_chunk(log, pd.DataFrame({"x": [1.5], "row": ["online"], "city": ["z"]}), 0)
    frame = ws.predictions("job").sort_values("city", ignore_index=True)
    assert frame[["city", "input.row", "row"]].values.tolist() == [
        ["k", "r10", 10], ["l", "r11", 11], ["z", "online", 0],
    ]  # fmt: skip


def test_inputs_that_fail_to_store_lose_their_rows_not_the_log(
    sqlite_workspace: loopml.Workspace,
) -> None:
    failed: Future[StoredBlob] = Future()
    failed.set_exception(OSError("disk full"))
    with PredictionLog(sqlite_workspace) as log:
        log_chunk(log, StoredInputs(failed, (("x", "double"),)), 0)
        log.flush()
        log_chunk(log, pd.DataFrame({"x": [1.0, 2.0]}), 2)
    assert (log.written, log.dropped) == (2, 2)
    assert isinstance(log.last_error, OSError)
    assert sqlite_workspace.predictions("job")["row"].tolist() == [2, 3]


def test_stored_inputs_are_read_on_s3(tmp_path: Path, s3_backend: S3Backend) -> None:
    ws = loopml.Workspace.open(
        tmp_path / "home", artifacts_url=s3_backend.url(), artifacts_options=s3_backend.options()
    )
    with PredictionLog(ws) as log:
        log_chunk(log, stored_inputs(ws, INPUTS, tmp_path), 6)
    assert ws.predictions("job")["city"].tolist() == ["g", "h"]
    ws.close()


def path(ws: loopml.Workspace, sha256: str | None) -> str:
    assert sha256 is not None
    return ws.artifacts.object_path(sha256)
