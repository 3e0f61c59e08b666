"""The prediction log taking batch scoring's chunks as Arrow tables: stored as they are."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import loopml
from loopml.serving.feedback import prediction_files
from loopml.serving.predlog import PredictionLog


def stored(ws: loopml.Workspace, model: str) -> pa.Table:
    """The rows logged for ``model``, as its Parquet files hold them."""
    tables = [
        pq.read_table(ws.artifacts.object_path(f.sha256)) for f in prediction_files(ws, model)
    ]
    return pa.concat_tables(tables, promote_options="permissive")


def log_chunk(log: PredictionLog, inputs: pd.DataFrame | pa.Table, offset: int) -> None:
    rows = len(inputs)
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
