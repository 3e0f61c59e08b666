"""The single-row fast path: requests that skip pandas must be answered, refused and
logged exactly as the frame path answers, refuses and logs them."""

from __future__ import annotations

import asyncio
import gc
import itertools
import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi import FastAPI

import loopml
from loopml.models import LoadedModel
from loopml.serving import Prediction, create_app
from loopml.serving.inputs import (
    RequestRefused,
    RowBlock,
    RowPlan,
    block_from_body,
    check_frame,
    frame_from_body,
    parse_json,
)
from loopml.serving.microbatch import MicroBatcher
from loopml.serving.predlog import PredictionLog
from tests.serving.conftest import client_for

pytestmark = pytest.mark.anyio

FLOATS = ["a", "b", "c", "d"]
INTS = ["n", "m"]


def float_rows(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(rows, len(FLOATS))).round(6), columns=FLOATS)


@pytest.fixture(scope="module")
def numbers_ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[loopml.Workspace]:
    """``numbers`` v1: a forest on four float columns (with an ONNX export); ``counts``
    v1: a forest on two int columns."""
    from sklearn.ensemble import RandomForestClassifier

    home = tmp_path_factory.mktemp("fast-path") / "home"
    ws = loopml.Workspace.open(home)
    features = float_rows(400)
    label = (features["a"] + features["b"] > 0).astype(int)
    with ws.start_run("numbers") as run:
        run.log_model(
            RandomForestClassifier(n_estimators=5, random_state=0).fit(features, label),
            input_example=features.head(5),
        )
    ws.registry.register(run, name="numbers")
    ws.registry.export("models:/numbers/1", "onnx", data=features)
    counts = pd.DataFrame({"n": np.arange(400) % 7, "m": np.arange(400) % 5})
    with ws.start_run("counts") as run:
        run.log_model(
            RandomForestClassifier(n_estimators=3, random_state=0).fit(counts, counts["n"] > 3),
            input_example=counts.head(5),
        )
    ws.registry.register(run, name="counts")
    yield ws
    ws.close()


@pytest.fixture(scope="module")
def numbers(numbers_ws: loopml.Workspace) -> LoadedModel:
    return numbers_ws.registry.load("models:/numbers/1")


@pytest.fixture(scope="module")
def counts(numbers_ws: loopml.Workspace) -> LoadedModel:
    return numbers_ws.registry.load("models:/counts/1")


def record(**values: Any) -> dict[str, Any]:
    return {"a": 0.5, "b": -1.25, "c": 2.0, "d": 0.0, **values}


def frame_path(body: Any, model: LoadedModel, special: bool = False) -> pd.DataFrame:
    return check_frame(frame_from_body(body), model, special)


VALID = [
    {"records": [record()]},
    {"records": [record(a=3, b=-7)]},  # ints in float columns
    {"records": [{"d": 1.0, "c": 2.0, "b": 3.0, "a": 4.0}]},  # any key order
    {"records": [record(a=float(i)) for i in range(100)]},
    {"records": [record(a=2**52)]},
    {"records": [record(b=3.0e38)]},  # within float32's range
    {"columns": {"a": [1.0, 2], "b": [3.0, 4.0], "c": [0.0, 0.0], "d": [-1.0, 1.0]}},
    {"columns": {"d": [1.0], "c": [2.0], "b": [3.0], "a": [4.0]}},
]

# Valid, but converted by rules only the frame path has: a null in a nullable column,
# a number written as text, an int too large for a float64 to hold exactly.
FRAME_ONLY = [
    {"records": [record(a=None)]},
    {"columns": {**{k: [1.0] for k in FLOATS}, "a": [None]}},
    {"records": [record(a="1.5")]},
    {"records": [record(a=2**70)]},
]

INVALID = [
    {"records": []},
    {"records": [record(e=1.0)]},  # extra column
    {"records": [{"a": 1.0, "b": 2.0, "c": 3.0}]},  # missing column
    {"records": [record(a=True)]},  # bool is not a number here
    {"records": [record(a=[1.0])]},
    {"records": [record(a=4.0e38)]},  # beyond float32
    {"records": [record(), "row"]},
    {"records": record()},
    {"columns": {"a": [1.0], "b": [2.0], "c": [3.0]}},
    {"columns": {"a": [1.0, 2.0], "b": [2.0], "c": [3.0], "d": [4.0]}},
    {"columns": {"a": 1.0, "b": [2.0], "c": [3.0], "d": [4.0]}},
    {"columns": {"a": [], "b": [], "c": [], "d": []}},
    {"rows": [record()]},
    {"records": [record()], "columns": {}},
]


@pytest.mark.parametrize("body", VALID, ids=range(len(VALID)))
def test_a_valid_request_gives_the_frame_paths_rows(body: Any, numbers: LoadedModel) -> None:
    plan = RowPlan.of(numbers.signature)
    block = block_from_body(body, plan, special_floats=False)
    assert block is not None
    expected = frame_path(body, numbers)
    pd.testing.assert_frame_equal(block.frame(), expected)
    assert block.values.dtype == np.float64 and block.values.flags.c_contiguous


@pytest.mark.parametrize("body", INVALID, ids=range(len(INVALID)))
def test_an_invalid_request_is_left_to_the_frame_path(body: Any, numbers: LoadedModel) -> None:
    plan = RowPlan.of(numbers.signature)
    assert block_from_body(body, plan, special_floats=False) is None
    with pytest.raises(RequestRefused) as refused:
        frame_path(body, numbers)
    assert refused.value.status == 422


@pytest.mark.parametrize("body", FRAME_ONLY, ids=range(len(FRAME_ONLY)))
def test_nulls_are_left_to_the_frame_path(body: Any, numbers: LoadedModel) -> None:
    assert block_from_body(body, RowPlan.of(numbers.signature), special_floats=False) is None
    accepted = frame_path(body, numbers)
    assert list(accepted.dtypes) == [np.float64] * 4 and len(accepted) == 1


def test_nan_literals_always_take_the_frame_path(numbers: LoadedModel) -> None:
    body, special = parse_json(b'{"records": [{"a": NaN, "b": 1, "c": 2, "d": 3}]}')
    assert special
    assert block_from_body(body, RowPlan.of(numbers.signature), special) is None
    refused_or_rows = frame_path(body, numbers, special)  # nullable floats take NaN
    assert math.isnan(refused_or_rows["a"].iloc[0])


def test_int_signatures_take_ints_only(counts: LoadedModel) -> None:
    plan = RowPlan.of(counts.signature)
    assert plan is not None and plan.dtype == np.int64
    body = {"records": [{"n": 3, "m": 1}, {"m": 4, "n": -2}]}
    block = block_from_body(body, plan, False)
    assert block is not None
    pd.testing.assert_frame_equal(block.frame(), frame_path(body, counts))
    for left in ({"n": 3.0, "m": 1}, {"n": 2**63, "m": 1}, {"n": 1, "m": False}):
        assert block_from_body({"records": [left]}, plan, False) is None
    # Whole floats are converted by the frame path, which also takes them.
    assert frame_path({"records": [{"n": 3.0, "m": 1}]}, counts)["n"].tolist() == [3]


def test_signatures_that_are_not_all_one_number_type_have_no_plan(
    serving_ws: loopml.Workspace,
) -> None:
    plans = serving_ws.registry.load("models:/plans/1")  # int, float, text and bool inputs
    assert RowPlan.of(plans.signature) is None


def _without_ids(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != "request_id"}


async def _answers(app: FastAPI, bodies: list[Any], fast: bool) -> list[tuple[int, Any]]:
    async with client_for(app) as client:
        for arm in app.state.serving.router.arms:
            if not fast:
                arm.served.plan = None  # every request takes the frame path
        answers = []
        for body in bodies:
            response = await client.post("/models/numbers/predict", json=body)
            answers.append((response.status_code, _without_ids(response.json())))
    return answers


@pytest.mark.parametrize("runtime", ["pickle", "onnx"])
async def test_the_server_answers_and_refuses_alike_on_both_paths(
    numbers_ws: loopml.Workspace, runtime: str
) -> None:
    bodies = VALID + FRAME_ONLY + INVALID

    def app() -> FastAPI:
        return create_app(
            numbers_ws, "models:/numbers/1", runtime=runtime, log_predictions=False, poll_seconds=0
        )

    fast = await _answers(app(), bodies, fast=True)
    slow = await _answers(app(), bodies, fast=False)
    statuses = [200] * (len(VALID) + len(FRAME_ONLY)) + [422] * len(INVALID)
    assert [status for status, _ in fast] == statuses
    assert fast == slow
    model = numbers_ws.registry.load("models:/numbers/1")
    expected = model.predict_proba(frame_path(VALID[3], model))
    assert np.allclose(fast[3][1]["probabilities"], expected, atol=1e-6)


async def test_concurrent_blocks_are_joined_into_one_model_call() -> None:
    calls: list[Any] = []

    def run(rows: Any) -> Prediction:
        calls.append(rows)
        values = rows.values if isinstance(rows, RowBlock) else rows.to_numpy()
        return Prediction(values[:, 0] * 2)

    columns = pd.Index(["x", "y"])
    blocks = [RowBlock(np.array([[float(i), 0.0]] * (i + 1)), columns) for i in range(5)]
    with ThreadPoolExecutor(1) as executor:
        batcher = MicroBatcher(run, executor, max_batch_size=64, max_latency_ms=50)
        results = await asyncio.gather(*(batcher.submit(block) for block in blocks))
        mixed = await asyncio.gather(
            batcher.submit(blocks[1]), batcher.submit(pd.DataFrame({"x": [7.0], "y": [1.0]}))
        )
        await batcher.close()
    assert isinstance(calls[0], RowBlock) and len(calls[0]) == 15
    for i, result in enumerate(results):
        assert result.predictions.tolist() == [2.0 * i] * (i + 1)
    assert isinstance(calls[1], pd.DataFrame) and calls[1]["x"].tolist() == [1.0, 1.0, 7.0]
    assert [r.predictions.tolist() for r in mixed] == [[2.0, 2.0], [14.0]]


def test_logged_blocks_store_what_logged_frames_store(tmp_path: Path) -> None:
    with loopml.Workspace.open(tmp_path / "home") as ws:
        rows = float_rows(6, seed=3)
        block = RowBlock(rows.to_numpy(), pd.Index(FLOATS))
        log = PredictionLog(ws, flush_seconds=0.05)
        for name, inputs in (("blocks", [block, block]), ("frames", [rows, rows])):
            for i, given in enumerate(inputs):
                log.log(
                    model=name, version=1, request_id=f"r{i}", inputs=given,
                    predictions=np.arange(6), latency_ms=1.0,
                )  # fmt: skip
            log.flush()
        log.close()
        stored = {name: ws.predictions(name).sort_values(["request_id", "row"]) for name in
                  ("blocks", "frames")}  # fmt: skip
    left, right = (stored[name].drop(columns=["model", "time"]) for name in ("blocks", "frames"))
    pd.testing.assert_frame_equal(left.reset_index(drop=True), right.reset_index(drop=True))
    assert stored["blocks"]["request_id"].tolist() == ["r0"] * 6 + ["r1"] * 6
    assert np.allclose(stored["blocks"][FLOATS].to_numpy(), np.vstack([rows, rows]))


async def test_class_counts_are_kept_per_model_call(numbers_ws: loopml.Workspace) -> None:
    app = create_app(numbers_ws, "models:/numbers/1", log_predictions=False, max_latency_ms=50)
    bodies = [{"records": [record(a=float(i))] * (i % 3 + 1)} for i in range(9)]
    async with client_for(app) as client:
        answers = await asyncio.gather(
            *(client.post("/models/numbers/predict", json=body) for body in bodies)
        )
        text = (await client.get("/metrics")).text
    labels = list(itertools.chain.from_iterable(r.json()["predictions"] for r in answers))
    counted = {
        line.split('class_="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("loopml_predictions_by_class_total")
    }
    assert counted == {str(c): float(labels.count(c)) for c in set(labels)}
    assert sum(counted.values()) == 18
    calls = [line for line in text.splitlines() if line.startswith("loopml_batch_rows_count")]
    assert float(calls[0].rsplit(" ", 1)[1]) < 9  # fewer model calls than requests


async def test_paths_the_predict_route_does_not_match_are_not_predictions(
    numbers_ws: loopml.Workspace,
) -> None:
    app = create_app(numbers_ws, "models:/numbers/1", log_predictions=False, poll_seconds=0)
    async with client_for(app) as client:
        nested = await client.post("/models/a/b/predict", json={"records": [record()]})
        unknown = await client.post("/models/other/predict", json={"records": [record()]})
        wrong_method = await client.get("/models/numbers/predict")
        ids = {
            (await client.post("/models/numbers/predict", json={"records": [record()]})).headers[
                "x-request-id"
            ]
            for _ in range(20)
        }
    assert nested.status_code == 404 and nested.json()["error"] == "not_found"
    assert unknown.status_code == 404 and "'other'" in unknown.json()["detail"]
    assert wrong_method.status_code == 405
    assert len(ids) == 20 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


async def test_a_server_started_with_the_collector_off_freezes_its_start_up(
    numbers_ws: loopml.Workspace,
) -> None:
    """serve() starts with the cyclic collector off; the app turns it back on once the
    model is served, with what start-up made frozen (no full collection walks it)."""
    gc.disable()
    try:
        app = create_app(numbers_ws, "models:/numbers/1", log_predictions=False, poll_seconds=0)
        async with client_for(app) as client:
            assert gc.isenabled() and gc.get_freeze_count() > 0
            answer = await client.post("/models/numbers/predict", json={"records": [record()]})
        assert answer.status_code == 200
    finally:
        gc.enable()
        gc.unfreeze()
    before = gc.get_freeze_count()
    app = create_app(numbers_ws, "models:/numbers/1", log_predictions=False, poll_seconds=0)
    async with client_for(app):  # an app run by someone else leaves their collector be
        assert gc.isenabled() and gc.get_freeze_count() == before


def test_onnx_near_ties_go_to_the_first_class_as_in_scikit_learn() -> None:
    from loopml.models.onnx import _ties_to_first_class

    classes = np.array(["no", "yes", "maybe"])
    probabilities = np.array(
        [
            [0.49999994, 0.50000006, 0.0],  # 25 of 50 trees each, summed in float32
            [0.2, 0.8, 0.0],
            [0.0, 0.4, 0.6],
            [0.0, 0.50000006, 0.49999994],
        ],
        dtype=np.float32,
    )
    labels = np.array(["yes", "yes", "maybe", "yes"])
    assert _ties_to_first_class(labels, probabilities, classes).tolist() == [
        "no",
        "yes",
        "maybe",
        "yes",
    ]
    ints = _ties_to_first_class(np.array([1]), np.array([[0.5, 0.5]]), np.array([0, 1]))
    assert ints.tolist() == [0] and ints.dtype == np.int64
