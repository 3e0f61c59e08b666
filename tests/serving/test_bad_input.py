"""Every kind of bad request gets a clear 4xx naming the problem, and the server keeps
serving: checked with one app and a good request after each bad one."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

import loopml
from loopml.serving import create_app
from tests.serving._samples import PLAN_ROW
from tests.serving.conftest import client_for

pytestmark = pytest.mark.anyio

PREDICT = "/models/plans/predict"


async def send_then_check_alive(
    ws: loopml.Workspace, method: str, path: str, **request: Any
) -> httpx.Response:
    """Sends one request, then a good one that must still succeed."""
    async with client_for(create_app(ws, "models:/plans/1", max_body_mb=0.01)) as client:
        response = await client.request(method, path, **request)
        good = await client.post(PREDICT, json={"records": [PLAN_ROW]})
    assert good.status_code == 200, good.text
    if response.status_code >= 400:
        body = response.json()
        assert body["error"] and body["detail"], body
    return response


def problems(response: httpx.Response) -> dict[str, dict[str, Any]]:
    """The 422's problems by column."""
    assert response.status_code == 422, response.text
    return {p.get("column", p["problem"]): p for p in response.json()["problems"]}


@pytest.mark.parametrize(
    ("record", "column", "kind", "expected", "example"),
    [
        ({"age": "forty"}, "age", "wrong_type", "int", "forty"),
        ({"age": 40.5}, "age", "wrong_type", "int", 40.5),
        ({"city": 7}, "city", "wrong_type", "category", 7),
        ({"active": "yes"}, "active", "wrong_type", "bool", "yes"),
        ({"income": "lots"}, "income", "wrong_type", "float or null", "lots"),
        ({"score": None}, "score", "missing_value", "float", None),
        ({"extra": 1}, "extra", "extra_column", None, None),
        ({"age": [1, 2]}, "age", "wrong_type", "int", "[1, 2]"),
        ({"age": 10**30}, "age", "out_of_range", "int", 1e30),
        ({"score": 1e39}, "score", "out_of_range", "float", 1e39),
    ],
)
async def test_each_bad_value_is_named(
    serving_ws: loopml.Workspace,
    record: dict[str, Any],
    column: str,
    kind: str,
    expected: str | None,
    example: Any,
) -> None:
    rows = [PLAN_ROW, {**PLAN_ROW, **record}]
    response = await send_then_check_alive(serving_ws, "POST", PREDICT, json={"records": rows})
    found = problems(response)[column]
    assert found["problem"] == kind
    assert found.get("expected") == expected
    assert found.get("example") == example
    if kind != "extra_column":
        assert found["row"] == 1
    assert column in response.json()["detail"]


async def test_several_problems_are_listed_together(serving_ws: loopml.Workspace) -> None:
    record = {"age": "x", "income": None, "score": 1.0, "active": 2, "colour": "red"}
    response = await send_then_check_alive(serving_ws, "POST", PREDICT, json={"records": [record]})
    found = problems(response)
    assert {k: v["problem"] for k, v in found.items()} == {
        "colour": "extra_column",
        "city": "missing_column",
        "age": "wrong_type",
        "active": "wrong_type",
    }


@pytest.mark.parametrize(
    "body",
    [
        {"records": []},
        {"columns": {name: [] for name in PLAN_ROW}},
    ],
)
async def test_empty_batch_is_refused(serving_ws: loopml.Workspace, body: Any) -> None:
    response = await send_then_check_alive(serving_ws, "POST", PREDICT, json=body)
    assert problems(response)["empty_batch"]["message"].startswith("The request has no rows")


@pytest.mark.parametrize(
    "body",
    [
        [PLAN_ROW],
        {"rows": [PLAN_ROW]},
        {"records": [PLAN_ROW], "columns": {}},
        {"records": PLAN_ROW},
        {"records": [1, 2]},
        {"columns": {"age": 1}},
        {"columns": {"age": [1, 2], "score": [1.0]}},
    ],
)
async def test_wrong_request_shapes_get_422(serving_ws: loopml.Workspace, body: Any) -> None:
    response = await send_then_check_alive(serving_ws, "POST", PREDICT, json=body)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_input"


async def test_malformed_json_gets_400(serving_ws: loopml.Workspace) -> None:
    response = await send_then_check_alive(
        serving_ws, "POST", PREDICT, content=b'{"records": [', headers=JSON
    )
    assert response.status_code == 400
    assert response.json()["error"] == "malformed_json"
    assert "not valid JSON" in response.json()["detail"]


async def test_wrong_content_type_gets_415(serving_ws: loopml.Workspace) -> None:
    response = await send_then_check_alive(
        serving_ws, "POST", PREDICT, content=b"age=3", headers={"content-type": "text/plain"}
    )
    assert response.status_code == 415
    assert "application/json" in response.json()["detail"]


async def test_oversized_payload_gets_413_by_header_and_by_stream(
    serving_ws: loopml.Workspace,
) -> None:
    big = {"records": [PLAN_ROW] * 500}  # about 40 kB, over the 10 kB limit
    declared = await send_then_check_alive(serving_ws, "POST", PREDICT, json=big)
    assert declared.status_code == 413
    assert "--max-body-mb" in declared.json()["detail"]

    async def chunks() -> Any:  # no Content-Length: counted as it streams
        for _ in range(40):
            yield b" " * 1024

    streamed = await send_then_check_alive(
        serving_ws, "POST", PREDICT, content=chunks(), headers=JSON
    )
    assert streamed.status_code == 413


JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("literal", "column", "status"),
    [
        ("NaN", "income", 200),  # numeric and nullable: a missing value
        ("Infinity", "income", 422),  # no model takes it
        ("NaN", "score", 422),  # numeric, never missing
        ("-Infinity", "score", 422),
        ("NaN", "age", 422),
        ("NaN", "city", 422),
    ],
)
async def test_nan_only_in_nullable_numeric_columns_and_infinity_nowhere(
    serving_ws: loopml.Workspace, literal: str, column: str, status: int
) -> None:
    row = ", ".join(f'"{k}": {v!r}'.replace("'", '"') for k, v in PLAN_ROW.items() if k != column)
    row = row.replace("True", "true")
    text = f'{{"records": [{{{row}, "{column}": {literal}}}]}}'
    response = await send_then_check_alive(serving_ws, "POST", PREDICT, content=text, headers=JSON)
    assert response.status_code == status, response.text
    if status == 422:
        assert problems(response)[column]["problem"] in (
            "not_finite",
            "missing_value",
            "wrong_type",
        )


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/models/nope/predict", "POST"),
        ("/v2/models/nope/infer", "POST"),
        ("/v2/models/nope", "GET"),
        ("/v2/models/plans/versions/9/infer", "POST"),
        ("/v2/models/plans/versions/9/ready", "GET"),
        ("/no/such/route", "GET"),
    ],
)
async def test_unknown_model_version_or_route_gets_404(
    serving_ws: loopml.Workspace, path: str, method: str
) -> None:
    body = {"inputs": [{"name": "age", "shape": [1], "datatype": "INT64", "data": [1]}]}
    response = await send_then_check_alive(
        serving_ws, method, path, **({"json": body} if method == "POST" else {})
    )
    assert response.status_code == 404
    body = response.json()
    assert body.get("code", body["error"]) == "not_found"
    if path.startswith("/v2/"):  # the protocol's error field holds the message
        assert body["error"] == body["detail"]


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        ({"datatype": "FP64"}, "wrong_datatype"),  # city is text: BYTES
        ({"shape": [3]}, "bad_shape"),
        ({"shape": [1, 2]}, "bad_shape"),
        ({"name": "colour"}, "extra_column"),
    ],
)
async def test_bad_tensors_get_422(
    serving_ws: loopml.Workspace, change: dict[str, Any], kind: str
) -> None:
    from tests.serving.test_routes import plan_tensors

    tensors = plan_tensors(1)
    tensors[3] = {**tensors[3], **change}
    response = await send_then_check_alive(
        serving_ws, "POST", "/v2/models/plans/infer", json={"inputs": tensors}
    )
    assert response.status_code == 422
    assert kind in {p["problem"] for p in response.json()["problems"]}


async def test_bad_tensor_envelope_and_outputs_get_422(serving_ws: loopml.Workspace) -> None:
    from tests.serving.test_routes import plan_tensors

    envelope = await send_then_check_alive(
        serving_ws, "POST", "/v2/models/plans/infer", json={"inputs": "age"}
    )
    assert envelope.status_code == 422
    output = await send_then_check_alive(
        serving_ws,
        "POST",
        "/v2/models/plans/infer",
        json={"inputs": plan_tensors(1), "outputs": [{"name": "embedding"}]},
    )
    assert output.status_code == 422
    assert "no output 'embedding'" in output.json()["detail"]


@pytest.mark.parametrize(
    ("sizes", "tail"),
    [
        ([8], b"\x01" * 4),  # fewer bytes than declared
        ([4], b"\x01" * 8),  # bytes that belong to no input
        ([3], b"\x01" * 3),  # not a whole INT64
    ],
)
async def test_bad_binary_tensor_data_gets_422(
    serving_ws: loopml.Workspace, sizes: list[int], tail: bytes
) -> None:
    header = {
        "inputs": [
            {
                "name": "age",
                "shape": [1],
                "datatype": "INT64",
                "parameters": {"binary_data_size": sizes[0]},
            }
        ]
    }
    encoded = orjson.dumps(header)
    response = await send_then_check_alive(
        serving_ws,
        "POST",
        "/v2/models/plans/infer",
        content=encoded + tail,
        headers={"Inference-Header-Content-Length": str(len(encoded))},
    )
    assert response.status_code == 422
    assert response.json()["problems"][0]["problem"] == "bad_binary_data"
