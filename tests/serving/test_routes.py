"""The server's routes in-process: simple JSON, Open Inference Protocol v2, health,
metrics and the OpenAPI document, against real registered models."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

import loopml
from loopml.serving import create_app
from tests.serving._samples import CHURN_ROW, PLAN_ROW
from tests.serving.conftest import client_for

pytestmark = pytest.mark.anyio


def plan_tensors(rows: int = 2) -> list[dict[str, Any]]:
    return [
        {"name": "age", "shape": [rows], "datatype": "INT64", "data": [30, 50][:rows]},
        {"name": "income", "shape": [rows, 1], "datatype": "FP64", "data": [20.0, 80.0][:rows]},
        {"name": "score", "shape": [rows], "datatype": "FP64", "data": [1.0, -1.0][:rows]},
        {"name": "city", "shape": [rows], "datatype": "BYTES", "data": ["paris", "lyon"][:rows]},
        {"name": "active", "shape": [rows], "datatype": "BOOL", "data": [True, False][:rows]},
    ]


async def test_predict_records_returns_string_classes_and_probabilities(
    serving_ws: loopml.Workspace,
) -> None:
    expected = serving_ws.registry.load("models:/plans/1")
    async with client_for(create_app(serving_ws, "models:/plans/1")) as client:
        response = await client.post("/models/plans/predict", json={"records": [PLAN_ROW] * 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["predictions"] == expected.predict([PLAN_ROW] * 3).tolist()
    assert body["classes"] == ["basic", "pro", "team"]
    assert len(body["probabilities"]) == 3 and len(body["probabilities"][0]) == 3
    assert body["model"] == "plans" and body["version"] == 1
    assert body["request_id"] == response.headers["x-request-id"]


async def test_predict_columns_with_int_classes(serving_ws: loopml.Workspace) -> None:
    columns = {"tenure": [1.5, -2.0], "spend": [0.1, 0.2], "region": ["north", "east"]}
    async with client_for(create_app(serving_ws, "models:/churn@production")) as client:
        response = await client.post("/models/churn/predict", json={"columns": columns})
    body = response.json()
    assert response.status_code == 200, body
    assert body["predictions"] == [1, 0]
    assert body["classes"] == [0, 1] and body["version"] == 1


async def test_request_id_is_honoured_or_generated(serving_ws: loopml.Workspace) -> None:
    async with client_for(create_app(serving_ws, "models:/churn/2")) as client:
        given = await client.post(
            "/models/churn/predict",
            json={"records": [CHURN_ROW]},
            headers={"X-Request-ID": "order-42"},
        )
        made = await client.post("/models/churn/predict", json={"records": [CHURN_ROW]})
    assert given.headers["x-request-id"] == "order-42" == given.json()["request_id"]
    assert len(made.headers["x-request-id"]) == 32
    assert made.json()["request_id"] == made.headers["x-request-id"]
    assert made.json()["version"] == 2


async def test_open_inference_protocol_routes(serving_ws: loopml.Workspace) -> None:
    async with client_for(create_app(serving_ws, "models:/plans/1")) as client:
        server = (await client.get("/v2")).json()
        live = await client.get("/v2/health/live")
        ready = await client.get("/v2/health/ready")
        model_ready = await client.get("/v2/models/plans/ready")
        metadata = (await client.get("/v2/models/plans")).json()
        infer = await client.post(
            "/v2/models/plans/infer", json={"id": "r1", "inputs": plan_tensors()}
        )
        versioned = await client.post(
            "/v2/models/plans/versions/1/infer",
            json={"inputs": plan_tensors(1), "outputs": [{"name": "probabilities"}]},
        )
    assert server["name"] == "loopml" and "version" in server
    assert live.status_code == ready.status_code == model_ready.status_code == 200
    assert metadata["versions"] == ["1"]
    assert {"name": "city", "datatype": "BYTES", "shape": [-1]} in metadata["inputs"]
    assert metadata["outputs"][1] == {"name": "probabilities", "datatype": "FP64", "shape": [-1, 3]}
    body = infer.json()
    assert infer.status_code == 200, body
    assert body["id"] == "r1" and body["model_name"] == "plans" and body["model_version"] == "1"
    predict, probabilities = body["outputs"]
    assert predict["name"] == "predict" and predict["datatype"] == "BYTES"
    assert predict["shape"] == [2] and set(predict["data"]) <= {"basic", "pro", "team"}
    assert probabilities["shape"] == [2, 3] and len(probabilities["data"]) == 6
    assert [o["name"] for o in versioned.json()["outputs"]] == ["probabilities"]


async def test_health_and_metrics(serving_ws: loopml.Workspace) -> None:
    async with client_for(create_app(serving_ws, "models:/plans/1")) as client:
        assert (await client.get("/health/live")).json() == {"status": "live"}
        ready = (await client.get("/health/ready")).json()
        for _ in range(3):
            await client.post("/models/plans/predict", json={"records": [PLAN_ROW]})
        await client.post("/models/plans/predict", json={"records": [{"age": "old"}]})
        text = (await client.get("/metrics")).text
    assert ready["status"] == "ready" and ready["versions"][0]["version"] == 1
    expected = [
        'loopml_requests_total{model="plans",route="/models/{name}/predict",status="200",'
        'version="1"} 3.0',
        'status="422",version="1"} 1.0',
        "loopml_request_latency_seconds_bucket",
        'loopml_batch_rows_count{model="plans",version="1"} 3.0',
        "loopml_batch_queue_wait_seconds_bucket",
        'loopml_batch_queue_rows{model="plans",version="1"} 0.0',
        'loopml_predictions_by_class_total{class_="team",model="plans",version="1"} 3.0',
        "loopml_prediction_confidence_bucket",
        'loopml_model_served{model="plans",runtime="pickle",version="1"} 1.0',
        "loopml_batch_max_rows 64.0",
        "loopml_batch_max_wait_seconds 0.002",
    ]
    for line in expected:
        assert line in text, line


async def test_openapi_document_describes_the_signature(serving_ws: loopml.Workspace) -> None:
    async with client_for(create_app(serving_ws, "models:/plans/1")) as client:
        document = (await client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    record = schemas["Record"]
    assert record["properties"]["age"]["type"] == "integer"
    assert set(record["required"]) == {"age", "score", "city", "active"}  # income is nullable
    assert record["additionalProperties"] is False
    body = document["paths"]["/models/{name}/predict"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PredictRequest"
    }
    assert "/v2/models/{name}/versions/{version}/infer" in document["paths"]


async def test_a_bundle_path_is_served_without_a_workspace(
    serving_ws: loopml.Workspace, tmp_path: Path
) -> None:
    bundle = tmp_path / "churn-bundle"
    shutil.copytree(serving_ws.registry.local_bundle("models:/churn/1"), bundle)
    app = create_app(tmp_path / "no-workspace-here", bundle)
    async with client_for(app) as client:
        response = await client.post("/models/churn-bundle/predict", json={"records": [CHURN_ROW]})
        metadata = (await client.get("/v2/models/churn-bundle")).json()
    assert response.status_code == 200, response.text
    assert response.json()["version"] is None and response.json()["model"] == "churn-bundle"
    assert metadata["versions"] == ["bundle"]
    assert not (tmp_path / "no-workspace-here").exists()
