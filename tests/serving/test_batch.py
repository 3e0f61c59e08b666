"""Batch scoring: chunked, equal to the model's own predictions, logged as batch."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import loopml
from loopml.errors import ConflictError, NotFoundError, ValidationError
from loopml.serving.batch import score
from loopml.serving.feedback import prediction_files, predictions
from loopml.serving.predlog import PredictionLog

FEATURES = [f"f{i}" for i in range(5)]


def features(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=FEATURES)
    frame.insert(0, "customer", [f"c{i}" for i in range(rows)])
    return frame


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with ``rf`` (a random forest classifier, version 1), ``price`` (a
    linear regression) and the dataset ``inputs``."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LinearRegression

    folder = tmp_path_factory.mktemp("batch") / "home"
    train = features(600, seed=1).drop(columns="customer")
    train["label"] = np.where(train["f0"] + train["f1"] > 0, "yes", "no")
    train["price"] = 3 * train["f0"] - train["f2"]
    with loopml.Workspace.open(folder) as ws:
        for name, model, target in [
            ("rf", RandomForestClassifier(n_estimators=10, random_state=0), "label"),
            ("price", LinearRegression(), "price"),
        ]:
            result = ws.train(model, data=train, target=target, features=FEATURES, experiment=name)
            ws.registry.register(result, name=name)
        ws.data.ingest(features(700, seed=3), name="inputs")
    return folder


@pytest.fixture
def ws(home: Path) -> Iterator[loopml.Workspace]:
    workspace = loopml.Workspace.open(home, create=False)
    yield workspace
    workspace.close()


@pytest.fixture
def input_file(tmp_path: Path) -> Path:
    path = tmp_path / "input.parquet"
    features(2500, seed=2).to_parquet(path)
    return path


def test_output_equals_the_models_predictions_chunk_by_chunk(
    ws: loopml.Workspace, input_file: Path, tmp_path: Path
) -> None:
    progress: list[tuple[int, int | None]] = []
    result = score(
        ws, "models:/rf/1", input_file, tmp_path / "out.parquet", chunk_rows=1000,
        on_progress=lambda done, total: progress.append((done, total)), keep=["customer"],
    )  # fmt: skip
    assert progress == [(1000, 2500), (2000, 2500), (2500, 2500)]
    assert (result.rows, result.model, result.version) == (2500, "rf", 1)
    out = pd.read_parquet(result.output)
    frame = pd.read_parquet(input_file)
    model = ws.registry.load("models:/rf/1")
    assert list(out.columns) == ["customer", "prediction", "proba_no", "proba_yes"]
    assert out["customer"].tolist() == frame["customer"].tolist()
    assert out["prediction"].tolist() == list(model.predict(frame))
    np.testing.assert_allclose(out[["proba_no", "proba_yes"]], model.predict_proba(frame))


def test_scored_rows_are_logged_as_batch_under_the_jobs_request_id(
    ws: loopml.Workspace, input_file: Path, tmp_path: Path
) -> None:
    result = score(ws, "models:/price/1", input_file, tmp_path / "out.parquet", chunk_rows=700)
    logged = ws.predictions("price", source="batch")
    mine = logged[logged["request_id"] == result.request_id]
    assert mine["row"].tolist() == list(range(2500))
    assert result.logged_rows == 2500
    assert set(mine["version"]) == {1}
    np.testing.assert_allclose(mine["prediction"], pd.read_parquet(result.output)["prediction"])
    np.testing.assert_allclose(mine["f0"], pd.read_parquet(input_file)["f0"])
    ws.log_feedback(result.request_id, 1.25, row=42)
    joined = ws.predictions_with_feedback("price")
    assert joined.loc[joined["label"].notna(), "row"].tolist() == [42]

    quiet = score(ws, "models:/price/1", input_file, tmp_path / "quiet.parquet", log=False)
    assert quiet.logged_rows == 0
    assert quiet.request_id not in set(ws.predictions("price")["request_id"])


def stored(ws: loopml.Workspace, model: str, request_id: str) -> pa.Table:
    """The prediction log's rows of one request as stored: its Parquet files, as they are."""
    tables = [
        pq.read_table(ws.artifacts.object_path(f.sha256)) for f in prediction_files(ws, model)
    ]
    rows = [table.filter(pc.field("request_id") == request_id) for table in tables]
    return pa.concat_tables(table for table in rows if table.num_rows)


def test_logged_rows_are_what_logging_the_prepared_frame_stores(
    ws: loopml.Workspace, tmp_path: Path
) -> None:
    # NaN values and nulls in the model's floats, an int and a text column kept: the
    # rows a job logs by reference to its input file read back as those the log stores
    # for the DataFrame the model received (with the kept columns), logged inline.
    frame = features(1300, seed=6)
    values = frame["f2"].to_numpy().copy()
    values[::7] = np.nan
    nulls = frame["f3"].mask(frame.index % 11 == 0)
    table = pa.table(
        {
            "visits": pa.array(np.arange(1300) % 9),
            **{name: pa.array(frame[name]) for name in ["customer", "f0", "f1", "f4"]},
            "f2": pa.array(values, from_pandas=False),  # NaN values, not nulls
            "f3": pa.array(nulls, from_pandas=True),  # nulls
        }
    )
    source = tmp_path / "input.parquet"
    pq.write_table(table, source, row_group_size=400)
    began = time.time()
    result = score(ws, "models:/rf/1", source, tmp_path / "out.parquet", chunk_rows=500,
                   keep=["customer", "visits"])  # fmt: skip
    model = ws.registry.load("models:/rf/1")
    given = table.to_pandas()
    prepared = model.prepare(given)
    for name in ["customer", "visits"]:
        prepared[name] = given[name].to_numpy()
    output = pd.read_parquet(result.output)
    with PredictionLog(ws) as log:
        log.log(
            model="rf-by-frame", version=1, request_id="frame", inputs=prepared,
            predictions=output["prediction"].to_numpy(), classes=model.classes,
            probabilities=output[["proba_no", "proba_yes"]].to_numpy(), latency_ms=1.0,
            source="batch",
        )  # fmt: skip
    logged = [*prepared.columns, "row", "prediction", "proba_no", "proba_yes"]
    by_job = predictions(ws, "rf", since=began, columns=["request_id", *logged])
    assert set(by_job["request_id"]) == {result.request_id}
    by_frame = predictions(ws, "rf-by-frame", columns=logged)
    pd.testing.assert_frame_equal(by_job[logged], by_frame)
    assert by_job["f2"].isna().sum() == len(values[::7])
    # By reference: the job's log file holds no inputs; the index names the input's blob.
    files = prediction_files(ws, "rf", since=began)
    assert files and sum(file.rows for file in files) == 1300
    for file in files:
        assert file.inputs_columns == ("f0", "f1", "f2", "f3", "f4", "customer", "visits")
        assert not {*file.inputs_columns, "visits"} & set(
            pq.read_schema(path(ws, file.sha256)).names
        )
        assert file.inputs_sha256 is not None
        assert Path(path(ws, file.inputs_sha256)).read_bytes() == source.read_bytes()


def test_a_dataset_version_is_logged_by_reference_to_its_own_blob(
    ws: loopml.Workspace, tmp_path: Path
) -> None:
    # Nothing of the input is copied: the log's files refer to the version's blob, and
    # the prediction log and monitoring read its rows back.
    began = time.time()
    blobs_before = {sha for sha, _, _ in ws.artifacts.list_objects()}
    result = score(ws, "models:/rf/1", "inputs@1", tmp_path / "out.parquet", chunk_rows=300)
    files = prediction_files(ws, "rf", since=began)
    version = ws.data.version("inputs@1")
    assert {file.inputs_sha256 for file in files} == {version.blob_sha256}
    new_blobs = {sha for sha, _, _ in ws.artifacts.list_objects()} - blobs_before
    assert new_blobs == {file.sha256 for file in files}  # the log files alone
    logged = ws.predictions("rf", since=began)
    dataset = ws.data.get("inputs@1")
    pd.testing.assert_frame_equal(logged[FEATURES], dataset[FEATURES])
    assert logged["prediction"].tolist() == pd.read_parquet(result.output)["prediction"].tolist()
    window = ws.monitor.evaluate("models:/rf/1", *window_around(began), record_points=False)
    assert window.rows == 700
    assert window.drift is not None
    assert set(window.drift.to_frame()["feature"]) == set(FEATURES)


def window_around(began: float) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.fromtimestamp(began, dt.UTC)
    return start, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)


def test_csv_and_folder_inputs_are_logged_inline(
    ws: loopml.Workspace, input_file: Path, tmp_path: Path
) -> None:
    csv = tmp_path / "input.csv"
    pd.read_parquet(input_file).head(300).to_csv(csv, index=False)
    folder = tmp_path / "parts"
    folder.mkdir()
    for i in range(2):
        features(100, seed=30 + i).to_parquet(folder / f"part-{i}.parquet")
    for source, rows in [(csv, 300), (folder, 200)]:
        began = time.time()
        result = score(ws, "models:/price/1", source, tmp_path / f"{rows}.parquet")
        (file,) = prediction_files(ws, "price", since=began)
        assert file.inputs_sha256 is None
        assert set(FEATURES) <= set(pq.read_schema(path(ws, file.sha256)).names)
        assert result.logged_rows == rows == len(ws.predictions("price", since=began))


def test_a_logged_input_file_outlives_its_path_until_the_log_is_deleted(
    tmp_path: Path,
) -> None:
    from sklearn.linear_model import LinearRegression

    with loopml.Workspace.open(tmp_path / "home") as ws:
        train = features(200, seed=40).drop(columns="customer").assign(y=lambda f: 2 * f["f0"])
        result = ws.train(LinearRegression(), data=train, target="y", features=FEATURES)
        ws.registry.register(result, name="lin")
        source = tmp_path / "today.parquet"
        features(500, seed=41).to_parquet(source)
        score(ws, "models:/lin/1", source, tmp_path / "out.parquet", chunk_rows=128)
        (sha,) = {file.inputs_sha256 for file in prediction_files(ws, "lin")}
        assert sha is not None and Path(path(ws, sha)).read_bytes() == source.read_bytes()
        expected = pd.read_parquet(source)[FEATURES]
        source.unlink()
        ws.gc(grace_seconds=0)
        pd.testing.assert_frame_equal(ws.predictions("lin")[FEATURES], expected)
        ws.delete_predictions(before=time.time() + 1)
        ws.gc(grace_seconds=0)
        assert not ws.artifacts.exists(sha)


def path(ws: loopml.Workspace, sha256: str | None) -> str:
    assert sha256 is not None
    return ws.artifacts.object_path(sha256)


def test_a_large_input_is_streamed_a_few_chunks_at_a_time(
    ws: loopml.Workspace, tmp_path: Path
) -> None:
    # 200,000 rows in 4 row groups, with a wide text column the model does not read,
    # scored 5,000 rows at a time: the Arrow memory in use while scoring stays under half
    # the input's (the whole file was read ahead before, over 1.5 times it). The log may
    # hold 20 chunks' outputs while the input file is being stored: a few MB, and where
    # the peak falls (8-14 MB of 34) depends on when the log's writer builds its table.
    frame = features(200_000, seed=8).assign(note=lambda f: f["customer"] + " " * 100)
    source = tmp_path / "input.parquet"
    frame.to_parquet(source, row_group_size=50_000)
    decoded = pa.Table.from_pandas(frame).nbytes
    before = pa.total_allocated_bytes()  # the frame's text columns live in Arrow memory
    in_use: list[int] = []
    result = score(
        ws, "models:/rf/1", source, tmp_path / "out.parquet", chunk_rows=5000,
        on_progress=lambda done, total: in_use.append(pa.total_allocated_bytes() - before),
    )  # fmt: skip
    assert len(in_use) == 40
    assert max(in_use) < decoded / 2
    model = ws.registry.load("models:/rf/1")
    out = pd.read_parquet(result.output)
    assert out["prediction"].tolist() == list(model.predict(frame))
    np.testing.assert_allclose(out[["proba_no", "proba_yes"]], model.predict_proba(frame))


def test_chunks_across_row_groups_and_files_keep_the_input_order(
    ws: loopml.Workspace, tmp_path: Path
) -> None:
    # Files of one folder with their columns in another order, or an int column where
    # the first file has floats: read as the first file's schema, as Arrow's scanner does.
    folder = tmp_path / "parts"
    folder.mkdir()
    parts = [features(rows, seed=20 + i) for i, rows in enumerate([1700, 90, 1234])]
    parts[2]["f4"] = parts[2]["f4"].round().astype(float)
    written = [parts[0], parts[1][parts[1].columns[::-1]], parts[2].astype({"f4": int})]
    for i, part in enumerate(written):
        part.to_parquet(folder / f"part-{i}.parquet", row_group_size=333)
    progress: list[int] = []
    result = score(
        ws, "models:/rf/1", folder, tmp_path / "out.parquet", chunk_rows=1000, keep=["customer"],
        on_progress=lambda done, total: progress.append(done),
    )  # fmt: skip
    assert progress == [1000, 2000, 3000, 3024]
    whole = pd.concat(parts, ignore_index=True)
    out = pd.read_parquet(result.output)
    assert out["customer"].tolist() == whole["customer"].tolist()
    assert out["prediction"].tolist() == list(ws.registry.load("models:/rf/1").predict(whole))
    logged = ws.predictions("rf", source="batch")
    mine = logged[logged["request_id"] == result.request_id]
    assert mine["row"].tolist() == list(range(3024))
    np.testing.assert_array_equal(mine["f4"], whole["f4"])


def test_a_forest_with_its_own_n_jobs_scores_the_same(
    ws: loopml.Workspace, input_file: Path, tmp_path: Path
) -> None:
    from sklearn.ensemble import RandomForestClassifier

    train = features(600, seed=1).drop(columns="customer")
    train["label"] = np.where(train["f0"] - train["f1"] > 0, "up", "down")
    forest = RandomForestClassifier(n_estimators=12, n_jobs=-1, random_state=0)
    trained = ws.train(forest, data=train, target="label", features=FEATURES, experiment="jobs")
    ws.registry.register(trained, name="jobs")
    result = score(ws, "models:/jobs/1", input_file, tmp_path / "out.parquet", chunk_rows=600)
    frame = pd.read_parquet(input_file)
    model = ws.registry.load("models:/jobs/1")
    out = pd.read_parquet(result.output)
    assert out["prediction"].tolist() == list(model.predict(frame))
    np.testing.assert_array_equal(out[["proba_down", "proba_up"]], model.predict_proba(frame))


def test_csv_files_and_dataset_references_are_scored_too(
    ws: loopml.Workspace, input_file: Path, tmp_path: Path
) -> None:
    csv = tmp_path / "input.csv"
    pd.read_parquet(input_file).to_csv(csv, index=False)
    from_csv = score(ws, "models:/price/1", csv, tmp_path / "a.parquet", chunk_rows=999, log=False)
    from_parquet = score(ws, "models:/price/1", input_file, tmp_path / "b.parquet", log=False)
    pd.testing.assert_frame_equal(
        pd.read_parquet(from_csv.output), pd.read_parquet(from_parquet.output)
    )
    from_dataset = score(ws, "models:/price/1", "inputs@1", tmp_path / "c.parquet", log=False)
    assert from_dataset.rows == 700
    folder = tmp_path / "parts"
    folder.mkdir()
    for i in range(3):
        features(100, seed=10 + i).to_parquet(folder / f"part-{i}.parquet")
    assert score(ws, "models:/price/1", folder, tmp_path / "d.parquet", log=False).rows == 300


def test_a_run_reference_is_scored_and_logged_under_it(
    ws: loopml.Workspace, input_file: Path, tmp_path: Path
) -> None:
    version = ws.registry.get("models:/rf/1")
    ref = f"runs:/{version.run_id}/model"
    result = score(ws, ref, input_file, tmp_path / "out.parquet")
    assert (result.model, result.version) == (ref, 0)
    assert len(ws.predictions(ref)) == 2500


def test_onnx_runtime_scores_with_the_versions_onnx_export(
    ws: loopml.Workspace, input_file: Path, tmp_path: Path
) -> None:
    pytest.importorskip("skl2onnx")
    ws.registry.export("models:/price/1", "onnx", data=features(200, seed=5))
    result = score(ws, "models:/price/1", input_file, tmp_path / "out.parquet", runtime="onnx")
    expected = ws.registry.load("models:/price/1").predict(pd.read_parquet(input_file))
    np.testing.assert_allclose(pd.read_parquet(result.output)["prediction"], expected, rtol=1e-5)
    with pytest.raises(ValidationError, match="ONNX"):
        version = ws.registry.get("models:/price/1")
        score(
            ws, f"runs:/{version.run_id}/model", input_file, tmp_path / "x.parquet", runtime="onnx"
        )


def test_missing_input_columns_are_named_and_no_output_is_left(
    ws: loopml.Workspace, input_file: Path, tmp_path: Path
) -> None:
    frame = pd.read_parquet(input_file).drop(columns=["f1", "f3"])
    with pytest.raises(ValidationError, match="'f1', 'f3'"):
        score(ws, "models:/rf/1", frame, tmp_path / "out.parquet")
    assert list(tmp_path.iterdir()) == [input_file]


def test_an_existing_output_is_refused_unless_overwrite(
    ws: loopml.Workspace, input_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.parquet"
    out.write_text("keep me")
    with pytest.raises(ConflictError, match="overwrite"):
        score(ws, "models:/price/1", input_file, out, log=False)
    assert out.read_text() == "keep me"
    score(ws, "models:/price/1", input_file, out, log=False, overwrite=True)
    assert len(pd.read_parquet(out)) == 2500


@pytest.mark.parametrize(
    ("ref", "source", "error", "match"),
    [
        ("models:/nope/1", "input.parquet", NotFoundError, "nope"),
        ("models:/price/1", "missing.parquet", NotFoundError, "missing.parquet"),
        ("models:/price/1", "nodata@3", NotFoundError, "nodata"),
        ("models:/price/1", "input.parquet:chunk_rows=0", ValidationError, "chunk_rows"),
        ("models:/price/1", "input.parquet:runtime=tf", ValidationError, "runtime"),
    ],
)
def test_bad_requests_are_refused_with_a_clear_error(
    ws: loopml.Workspace,
    input_file: Path,
    tmp_path: Path,
    ref: str,
    source: str,
    error: type[Exception],
    match: str,
) -> None:
    name, _, option = source.partition(":")
    options: dict[str, object] = {}
    if option:
        key, _, value = option.partition("=")
        options[key] = int(value) if value.isdigit() else value
    with pytest.raises(error, match=match):
        score(ws, ref, tmp_path / name if name.endswith(".parquet") else name,
              tmp_path / "out.parquet", **options)  # type: ignore[arg-type]  # fmt: skip
    assert not (tmp_path / "out.parquet").exists()


def test_an_empty_input_gives_an_empty_output(ws: loopml.Workspace, tmp_path: Path) -> None:
    empty = features(0, seed=0)
    result = score(ws, "models:/price/1", empty, tmp_path / "out.parquet")
    assert result.rows == 0
    assert pd.read_parquet(result.output).empty


@pytest.mark.slow
def test_ray_scores_partitions_in_order(
    ws: loopml.Workspace, input_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ray")
    monkeypatch.delenv("LOOPML_RAY_ADDRESS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    result = score(
        ws, "models:/rf/1", input_file, tmp_path / "out.parquet", chunk_rows=400, ray=True
    )
    local = score(ws, "models:/rf/1", input_file, tmp_path / "local.parquet", chunk_rows=400)
    pd.testing.assert_frame_equal(pd.read_parquet(result.output), pd.read_parquet(local.output))
    logged = ws.predictions("rf", source="batch")
    assert logged.loc[logged["request_id"] == result.request_id, "row"].tolist() == list(
        range(2500)
    )
