"""The prediction log: asynchronous, bounded, durable on close; read back by ws.predictions."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import loopml
from loopml.errors import ValidationError
from loopml.serving.feedback import prediction_files
from loopml.serving.predlog import PredictionLog
from tests.conftest import S3Backend

FRAME = pd.DataFrame({"x": [1.0, 2.0, 3.0], "city": ["a", "b", "c"]})


def log_request(log: PredictionLog, request_id: str, **options: Any) -> None:
    log.log(
        model=options.pop("model", "churn"),
        version=options.pop("version", 1),
        request_id=request_id,
        inputs=options.pop("inputs", FRAME),
        predictions=options.pop("predictions", np.array([0, 1, 1])),
        latency_ms=2.5,
        **options,
    )


def wait_for(condition: Any, seconds: float = 10.0) -> float:
    """Polls ``condition`` until true; returns the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not true after {seconds} s")
        time.sleep(0.01)
    return time.monotonic() - started


@pytest.fixture
def blocked_writer(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Holds the writer inside its first file write until the returned event is set."""
    release = threading.Event()
    store = PredictionLog._store

    def slow_store(self: PredictionLog, *args: Any) -> None:
        release.wait(30)
        store(self, *args)

    monkeypatch.setattr(PredictionLog, "_store", slow_store)
    return release


def test_rows_logged_from_many_threads_are_all_stored(sqlite_workspace: loopml.Workspace) -> None:
    log = PredictionLog(sqlite_workspace, flush_rows=500, flush_seconds=0.05)

    def client(thread: int) -> None:
        for i in range(200):
            log_request(
                log, f"t{thread}-{i}", probabilities=np.full((3, 2), 0.5), classes=["n", "y"]
            )

    threads = [threading.Thread(target=client, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    frame = sqlite_workspace.predictions("churn")
    assert (log.written, log.dropped) == (4800, 0)
    assert len(frame) == 4800
    assert not frame.duplicated(["request_id", "row"]).any()
    assert set(frame["row"]) == {0, 1, 2}
    assert list(frame.columns[:8]) == [
        "request_id", "row", "time", "model", "version", "arm", "source", "latency_ms",
    ]  # fmt: skip
    assert {"x", "city", "prediction", "proba_n", "proba_y"} <= set(frame.columns)
    assert frame["time"].dt.tz is not None
    assert frame["time"].is_monotonic_increasing


def test_a_full_batch_of_rows_is_written_without_waiting_for_the_timer(
    sqlite_workspace: loopml.Workspace,
) -> None:
    log = PredictionLog(sqlite_workspace, flush_rows=9, flush_seconds=60)
    for i in range(3):
        log_request(log, f"r{i}")
    assert wait_for(lambda: log.written == 9) < 5
    log.close()


def test_a_few_rows_are_written_after_flush_seconds(sqlite_workspace: loopml.Workspace) -> None:
    log = PredictionLog(sqlite_workspace, flush_rows=10_000, flush_seconds=0.3)
    log_request(log, "r0")
    time.sleep(0.1)
    assert log.written == 0
    wait_for(lambda: log.written == 3, seconds=5)
    log.close()


def test_a_full_queue_drops_at_once_and_counts(
    sqlite_workspace: loopml.Workspace, blocked_writer: threading.Event
) -> None:
    log = PredictionLog(sqlite_workspace, queue_rows=6, flush_rows=3, flush_seconds=0.01)
    log_request(log, "r0")
    log_request(log, "r1")
    started = time.perf_counter()
    log_request(log, "r2")
    assert time.perf_counter() - started < 0.05
    assert (log.dropped, log.queued_rows) == (3, 6)
    blocked_writer.set()
    log.close()
    assert log.written == 6
    assert set(sqlite_workspace.predictions("churn")["request_id"]) == {"r0", "r1"}


def test_block_waits_at_most_block_seconds_then_drops(
    sqlite_workspace: loopml.Workspace, blocked_writer: threading.Event
) -> None:
    log = PredictionLog(sqlite_workspace, queue_rows=3, on_full="block", block_seconds=0.3)
    log_request(log, "r0")
    started = time.perf_counter()
    log_request(log, "r1")
    waited = time.perf_counter() - started
    assert 0.25 < waited < 2
    assert log.dropped == 3
    blocked_writer.set()
    log.close()


def test_block_goes_on_as_soon_as_the_writer_frees_room(
    sqlite_workspace: loopml.Workspace, blocked_writer: threading.Event
) -> None:
    log = PredictionLog(
        sqlite_workspace, queue_rows=3, flush_seconds=0.01, on_full="block", block_seconds=20
    )
    log_request(log, "r0")
    threading.Timer(0.2, blocked_writer.set).start()
    log_request(log, "r1")
    log.close()
    assert (log.written, log.dropped) == (6, 0)


def test_close_writes_everything_queued(sqlite_workspace: loopml.Workspace) -> None:
    log = PredictionLog(sqlite_workspace, flush_rows=10**9, flush_seconds=3600)
    for i in range(1000):
        log_request(log, f"r{i}")
    log.close()
    assert len(sqlite_workspace.predictions("churn")) == 3000
    log_request(log, "late")
    assert log.dropped == 3


def test_rows_of_other_models_versions_and_arms_go_to_separate_files(
    sqlite_workspace: loopml.Workspace,
) -> None:
    with PredictionLog(sqlite_workspace) as log:
        log_request(log, "a", version=1, arm="stable")
        log_request(log, "b", version=2, arm="canary")
        log_request(log, "c", model="plans")
    files = prediction_files(sqlite_workspace, "churn")
    assert sorted((f.version, f.arm, f.rows) for f in files) == [(1, "stable", 3), (2, "canary", 3)]
    assert len(sqlite_workspace.predictions("plans")) == 3


def test_inputs_of_differing_types_are_combined_and_reserved_names_kept_apart(
    sqlite_workspace: loopml.Workspace,
) -> None:
    with PredictionLog(sqlite_workspace, flush_seconds=3600) as log:
        log_request(log, "ints", inputs=pd.DataFrame({"x": [1, 2, 3], "time": [7, 8, 9]}))
        log_request(log, "floats", inputs=pd.DataFrame({"x": [0.5, 1.5, 2.5], "time": [1, 2, 3]}))
        log_request(log, "texts", inputs={"x": ["p", "q", "r"], "time": [4, 5, 6]})
    frame = sqlite_workspace.predictions("churn")
    assert len(frame) == 9
    assert list(frame["input.time"]) == [7, 8, 9, 1, 2, 3, 4, 5, 6]
    assert frame["time"].dt.year.min() >= 2024  # the log's own time, not the input


def test_probabilities_as_a_frame_name_their_columns(sqlite_workspace: loopml.Workspace) -> None:
    with PredictionLog(sqlite_workspace) as log:
        proba = pd.DataFrame({"basic": [0.1, 0.2, 0.3], "pro": [0.9, 0.8, 0.7]})
        log_request(log, "r0", probabilities=proba, predictions=["pro", "pro", "pro"])
    frame = sqlite_workspace.predictions("churn")
    assert list(frame["proba_basic"]) == [0.1, 0.2, 0.3]
    assert list(frame["prediction"]) == ["pro"] * 3


def test_float_columns_are_stored_byte_stream_split_and_read_back_exactly(
    sqlite_workspace: loopml.Workspace,
) -> None:
    """Floats are written byte-stream-split (less zstd work, smaller files), text with a
    dictionary; both come back as logged."""
    import pyarrow.parquet as pq

    values = np.random.default_rng(0).normal(size=3)
    with PredictionLog(sqlite_workspace) as log:
        inputs = pd.DataFrame({"x": values, "city": ["a", "b", "c"]})
        log_request(log, "r0", inputs=inputs, probabilities=np.array([[0.2, 0.8]] * 3))
    (file,) = prediction_files(sqlite_workspace, "churn")
    meta = pq.ParquetFile(sqlite_workspace.artifacts.object_path(file.sha256)).metadata
    group = meta.row_group(0)
    encodings = {
        group.column(i).path_in_schema: group.column(i).encodings for i in range(meta.num_columns)
    }
    assert "BYTE_STREAM_SPLIT" in encodings["x"]
    assert "BYTE_STREAM_SPLIT" in encodings["proba_1"]
    assert "BYTE_STREAM_SPLIT" not in encodings["city"]
    frame = sqlite_workspace.predictions("churn")
    assert frame["x"].tolist() == values.tolist()
    assert frame["city"].tolist() == ["a", "b", "c"]


def test_bad_options_are_refused(sqlite_workspace: loopml.Workspace) -> None:
    with pytest.raises(ValidationError, match="on_full"):
        PredictionLog(sqlite_workspace, on_full="wait")
    with pytest.raises(ValidationError, match="queue_rows"):
        PredictionLog(sqlite_workspace, queue_rows=0)
    with pytest.raises(ValidationError, match="source"):
        log_request(PredictionLog(sqlite_workspace), "r0", source="nightly")


# -- reading ------------------------------------------------------------------------
def three_batches(ws: loopml.Workspace) -> list[float]:
    """Logs three flushed batches (versions 1, 1, 2; the last one batch scoring) with a
    pause between them; returns the times between the batches."""
    log = PredictionLog(ws, flush_seconds=3600)
    bounds = []
    for i, (version, source) in enumerate([(1, "online"), (1, "online"), (2, "batch")]):
        if i:
            time.sleep(0.05)
            bounds.append(time.time())
            time.sleep(0.05)
        log_request(log, f"b{i}", version=version, source=source)
        assert log.flush()
    log.close()
    return bounds


def test_predictions_filter_by_time_version_and_source(sqlite_workspace: loopml.Workspace) -> None:
    ws = sqlite_workspace
    first, second = three_batches(ws)

    def ids(**options: Any) -> list[str]:
        return sorted(set(ws.predictions("churn", **options)["request_id"]))

    assert ids() == ["b0", "b1", "b2"]
    assert ids(since=first) == ["b1", "b2"]
    assert ids(until=second) == ["b0", "b1"]
    assert ids(since=first, until=second) == ["b1"]
    assert ids(since=dt.datetime.fromtimestamp(second, dt.UTC)) == ["b2"]
    assert ids(since=dt.datetime.fromtimestamp(second, dt.UTC).isoformat()) == ["b2"]
    assert ids(since=dt.timedelta(hours=1)) == ["b0", "b1", "b2"]
    assert ids(version=1) == ["b0", "b1"]
    assert ids(source="batch") == ["b2"]
    assert ws.predictions("nobody").empty
    with pytest.raises(ValidationError, match="ISO 8601"):
        ws.predictions("churn", since="yesterday")


def test_predictions_open_only_the_files_they_need(sqlite_workspace: loopml.Workspace) -> None:
    ws = sqlite_workspace
    first, _ = three_batches(ws)
    files = prediction_files(ws, "churn")
    assert len(files) == 3
    ws.artifacts.delete(files[0].sha256)  # reading it now would fail
    assert len(prediction_files(ws, "churn", since=first)) == 2
    assert len(ws.predictions("churn", since=first)) == 6
    assert len(ws.predictions("churn", version=2)) == 3


@pytest.mark.s3
def test_the_log_is_written_and_read_on_s3(tmp_path: Path, s3_backend: S3Backend) -> None:
    ws = loopml.Workspace.open(
        tmp_path / "home", artifacts_url=s3_backend.url(), artifacts_options=s3_backend.options()
    )
    first, _ = three_batches(ws)
    assert len(s3_backend.keys("objects/")) == 3
    assert sorted(set(ws.predictions("churn", since=first)["request_id"])) == ["b1", "b2"]
    ws.close()


# -- garbage collection -------------------------------------------------------------
def test_gc_keeps_logged_files_and_frees_them_once_deleted(
    sqlite_workspace: loopml.Workspace,
) -> None:
    ws = sqlite_workspace
    three_batches(ws)
    shas = [f.sha256 for f in prediction_files(ws, "churn")]
    ws.gc(grace_seconds=0)
    assert all(ws.artifacts.exists(sha) for sha in shas)
    assert len(ws.predictions("churn")) == 9
    assert ws.delete_predictions(before=time.time() - 3600) == 0
    assert ws.delete_predictions(before=time.time() + 1, model="churn") == 9
    report = ws.gc(grace_seconds=0)
    assert report.blobs >= 3
    assert not any(ws.artifacts.exists(sha) for sha in shas)
    assert ws.predictions("churn").empty


# -- real processes -----------------------------------------------------------------
CHILD = textwrap.dedent(
    """
    import json, signal, sys, time
    import numpy as np, pandas as pd
    import loopml
    from loopml.serving.predlog import PredictionLog

    home, flush_seconds, status = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    ws = loopml.Workspace.open(home)
    log = PredictionLog(ws, flush_seconds=flush_seconds, flush_rows=10**9, queue_rows=10**9)
    stopping = []
    # What a server does on SIGTERM: stop taking requests, then close the log.
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    sent = 0
    with open(status, "a", buffering=1) as progress:
        while not stopping:
            log.log(model="m", version=1, request_id=f"r{sent}", inputs=frame,
                    predictions=np.array([0, 1]), latency_ms=1.0)
            sent += 1
            if sent % 50 == 0:
                progress.write(f"{sent} {time.time()}\\n")
            time.sleep(0.0005)
    log.close()
    ws.close()
    print(json.dumps({"requests": sent, "dropped": log.dropped}), flush=True)
    """
)


def start_child(tmp_path: Path, flush_seconds: float) -> tuple[subprocess.Popen[str], Path]:
    status = tmp_path / "status.txt"
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path / "home"), str(flush_seconds), str(status)],
        stdout=subprocess.PIPE,
        text=True,
        env=environment,
    )
    wait_for(lambda: status.exists() and len(status.read_text().splitlines()) >= 10, 60)
    return child, status


def stored_requests(tmp_path: Path) -> list[int]:
    with loopml.Workspace.open(tmp_path / "home") as ws:
        frame = ws.predictions("m")
    assert not frame.duplicated(["request_id", "row"]).any()
    return sorted({int(rid[1:]) for rid in frame["request_id"]})


def test_a_sigterm_loses_no_prediction(tmp_path: Path) -> None:
    child, _ = start_child(tmp_path, flush_seconds=60)
    child.send_signal(signal.SIGTERM)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0
    report = json.loads(out.strip().splitlines()[-1])
    assert report["dropped"] == 0
    assert stored_requests(tmp_path) == list(range(report["requests"]))


def test_a_script_that_never_calls_close_still_writes_its_rows(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        import loopml
        from loopml.serving.predlog import PredictionLog

        log = PredictionLog(loopml.Workspace.open(sys.argv[1]), flush_seconds=3600)
        log.log(model="m", version=1, request_id="r0", inputs={"x": [1.0, 2.0]},
                predictions=[0, 1], latency_ms=1.0)
        """
    )
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "home")], env=environment, check=True
    )
    assert stored_requests(tmp_path) == [0]


def test_a_sigkill_loses_at_most_the_last_flush_seconds(tmp_path: Path) -> None:
    flush_seconds, slack = 0.3, 1.0  # slack: the write in progress, on a busy machine
    child, status = start_child(tmp_path, flush_seconds)
    time.sleep(1.0)
    killed_at = time.time()
    child.kill()
    child.wait(timeout=30)
    stored = stored_requests(tmp_path)
    assert stored == list(range(len(stored)))  # written in order: the lost ones are the last
    for line in status.read_text().splitlines():
        sent, at = line.split()
        if float(at) < killed_at - flush_seconds - slack:
            assert len(stored) >= int(sent), (line, len(stored))


# -- feedback -----------------------------------------------------------------------
def test_feedback_is_idempotent_and_the_latest_label_wins(
    sqlite_workspace: loopml.Workspace,
) -> None:
    ws = sqlite_workspace
    ws.log_feedback("r1", 1, model="churn")
    ws.log_feedback("r1", 1, model="churn")
    first = ws.feedback()
    assert len(first) == 1
    time.sleep(0.01)
    ws.log_feedback("r1", 0, model="churn")
    labels = ws.feedback("churn")
    assert list(labels["label"]) == [0]
    assert labels["created_at"][0] == first["created_at"][0]
    assert labels["updated_at"][0] > first["updated_at"][0]
    ws.log_feedback("r1", "yes", row=1, entity="customer-7", time="2026-01-02T03:04:05Z")
    both = ws.feedback().sort_values("row", ignore_index=True)
    assert list(both["label"]) == [0, "yes"]
    assert both["entity"][1] == "customer-7"
    assert str(both["time"][1]) == "2026-01-02 03:04:05+00:00"
    assert ws.feedback("churn")["row"].tolist() == [0]  # the second label named no model


def test_feedback_frame_stores_many_labels_at_once(sqlite_workspace: loopml.Workspace) -> None:
    ws = sqlite_workspace
    frame = pd.DataFrame(
        {"request_id": ["a", "a", "b", "b"], "row": [0, 1, 0, 0], "label": [1.5, 2.5, 3.5, 4.5]}
    )
    assert ws.log_feedback_frame(frame) == 4
    stored = ws.feedback().sort_values(["request_id", "row"], ignore_index=True)
    assert stored[["request_id", "row", "label"]].values.tolist() == [
        ["a", 0, 1.5], ["a", 1, 2.5], ["b", 0, 4.5],
    ]  # fmt: skip
    with pytest.raises(ValidationError, match="label"):
        ws.log_feedback_frame(frame.drop(columns="label"))


@pytest.mark.parametrize(
    ("request_id", "label", "row", "problem"),
    [("", 1, 0, "request_id"), (None, 1, 0, "request_id"), ("r", None, 0, "label"),
     ("r", float("nan"), 0, "label"), ("r", [1], 0, "label"), ("r", 1, -1, "row")],
)  # fmt: skip
def test_bad_feedback_is_refused_with_the_reason(
    sqlite_workspace: loopml.Workspace, request_id: Any, label: Any, row: int, problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        sqlite_workspace.log_feedback(request_id, label, row=row)
    assert sqlite_workspace.feedback().empty


def test_predictions_join_their_labels_by_request_and_row(workspace: loopml.Workspace) -> None:
    ws = workspace
    with PredictionLog(ws) as log:
        log_request(log, "r0")
        log_request(log, "r1")
    ws.log_feedback("r0", 1)
    ws.log_feedback("r0", 0, row=2)
    ws.log_feedback("r1", 1, row=1)
    ws.log_feedback("unknown", 1)  # a label for no logged prediction is kept, not joined
    joined = ws.predictions_with_feedback("churn")
    assert len(joined) == 6
    labelled = joined.dropna(subset=["label"])
    assert sorted(zip(labelled["request_id"], labelled["row"], labelled["label"], strict=True)) == [
        ("r0", 0, 1), ("r0", 2, 0), ("r1", 1, 1),
    ]  # fmt: skip
    assert {"label_time", "labelled_at", "prediction", "x"} <= set(joined.columns)
    assert "unknown" in set(ws.feedback()["request_id"])
    assert ws.predictions_with_feedback("nobody").empty
