"""Failures the server survives: a model that raises, a model that cannot load, a
missing ONNX export; plus the prediction log's hooks."""

from __future__ import annotations

import asyncio
import shutil
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import loopml
from loopml.cli import app as cli
from loopml.serving import create_app
from tests.serving._samples import CHURN_ROW, PLAN_ROW
from tests.serving.conftest import client_for

pytestmark = pytest.mark.anyio


async def test_a_model_that_raises_gets_500_with_an_error_id_and_the_server_stays_up(
    serving_ws: loopml.Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(serving_ws, "models:/plans/1", max_latency_ms=20)
    async with client_for(app) as client:
        estimator = app.state.serving.router.arms[0].served.model.model
        original = estimator.predict_proba

        def fragile(frame: Any) -> Any:
            if (frame["age"] == 99).any():
                raise RuntimeError("cannot handle age 99")
            return original(frame)

        estimator.predict_proba = fragile
        bad = {"records": [{**PLAN_ROW, "age": 99}]}
        good = {"records": [PLAN_ROW]}
        # Batched together: only the request with the bad row fails.
        responses = await asyncio.gather(
            client.post("/models/plans/predict", json=bad),
            client.post("/models/plans/predict", json=good),
        )
        after = await client.post("/models/plans/predict", json=good)
    failed, served = responses
    assert failed.status_code == 500
    body = failed.json()
    assert body["error"] == "model_error"
    assert "cannot handle age 99" in body["detail"] and body["error_id"] in body["detail"]
    assert served.status_code == after.status_code == 200
    assert any(
        body["error_id"] in record.getMessage() and record.exc_info for record in caplog.records
    )


async def test_a_corrupted_or_missing_model_file_never_becomes_ready(
    serving_ws: loopml.Workspace, tmp_path: Path
) -> None:
    for damage in ("corrupt", "missing"):
        bundle = tmp_path / damage
        shutil.copytree(serving_ws.registry.local_bundle("models:/churn/1"), bundle)
        if damage == "corrupt":
            (bundle / "model.joblib").write_bytes(b"not a model")
        else:
            (bundle / "model.joblib").unlink()
        async with client_for(create_app(serving_ws, bundle)) as client:
            live = await client.get("/health/live")
            ready = await client.get("/health/ready")
            oip_ready = await client.get("/v2/health/ready")
            predict = await client.post(f"/models/{damage}/predict", json={"records": [CHURN_ROW]})
        assert live.status_code == 200
        assert ready.status_code == oip_ready.status_code == predict.status_code == 503
        reason = ready.json()["detail"]
        assert str(bundle) in reason and "model.joblib" in reason, reason
        assert predict.json()["error"] == "not_ready"


async def test_onnx_runtime_without_an_export_says_how_to_make_one(
    serving_ws: loopml.Workspace,
) -> None:
    async with client_for(create_app(serving_ws, "models:/plans/1", runtime="onnx")) as client:
        ready = await client.get("/health/ready")
    assert ready.status_code == 503
    assert "loopml models export plans 1 --format onnx" in ready.json()["detail"]


def test_cli_refuses_onnx_runtime_without_an_export(serving_home: Path) -> None:
    result = CliRunner().invoke(
        cli, ["serve", "models:/plans/1", "--runtime", "onnx", "--home", str(serving_home)]
    )
    assert result.exit_code == 1
    assert "loopml models export plans 1 --format onnx" in " ".join(result.output.split())


def test_cli_refuses_an_unknown_model(serving_home: Path) -> None:
    result = CliRunner().invoke(
        cli, ["serve", "models:/nope@production", "--home", str(serving_home)]
    )
    assert result.exit_code == 1
    assert "nope" in result.output


async def test_onnx_runtime_serves_the_export(serving_ws: loopml.Workspace) -> None:
    pytest.importorskip("onnxruntime")
    serving_ws.registry.export("models:/churn/2", "onnx")
    rows = {"records": [CHURN_ROW, {**CHURN_ROW, "tenure": -3.0}]}
    answers = {}
    for runtime in ("pickle", "onnx"):
        async with client_for(create_app(serving_ws, "models:/churn/2", runtime=runtime)) as c:
            answers[runtime] = (await c.post("/models/churn/predict", json=rows)).json()
            metadata = (await c.get("/v2/models/churn")).json()
        assert metadata["platform"] == f"loopml-{runtime}"
    assert answers["onnx"]["predictions"] == answers["pickle"]["predictions"]
    onnx, pickle = (np.asarray(answers[r]["probabilities"]) for r in ("onnx", "pickle"))
    np.testing.assert_allclose(onnx, pickle, atol=1e-5)


class FakePredictionLog:
    """Stands in for loopml.serving.predlog.PredictionLog (built by another engineer)."""

    instances: list[FakePredictionLog] = []

    def __init__(self, workspace: Any, **options: Any) -> None:
        self.workspace = workspace
        self.calls: list[dict[str, Any]] = []
        self.closed = False
        self.dropped = 3
        self.queued_rows = 0
        FakePredictionLog.instances.append(self)

    def log(self, **fields: Any) -> None:
        self.calls.append(fields)

    def close(self, timeout: float = 30.0) -> None:
        self.closed = True


async def test_predictions_are_logged_and_the_log_is_closed_on_shutdown(
    serving_ws: loopml.Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = types.ModuleType("loopml.serving.predlog")
    module.PredictionLog = FakePredictionLog  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "loopml.serving.predlog", module)
    FakePredictionLog.instances.clear()
    async with client_for(create_app(serving_ws, "models:/plans/1")) as client:
        response = await client.post(
            "/models/plans/predict",
            json={"records": [PLAN_ROW, PLAN_ROW]},
            headers={"X-Request-ID": "logged-1"},
        )
        unlogged = await client.post("/models/plans/predict", json={"records": [{"age": 1}]})
        metrics = (await client.get("/metrics")).text
    (log,) = FakePredictionLog.instances
    assert response.status_code == 200 and unlogged.status_code == 422
    assert log.closed and log.workspace is serving_ws
    (call,) = log.calls
    assert call["model"] == "plans" and call["version"] == 1
    assert call["request_id"] == "logged-1" and call["source"] == "online"
    assert list(call["inputs"].columns) == ["age", "income", "score", "city", "active"]
    assert call["predictions"].tolist() == response.json()["predictions"]
    assert call["probabilities"].shape == (2, 3) and call["latency_ms"] > 0
    assert "loopml_prediction_log_dropped_rows 3.0" in metrics


async def test_no_log_option_skips_the_prediction_log(
    serving_ws: loopml.Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = types.ModuleType("loopml.serving.predlog")
    module.PredictionLog = FakePredictionLog  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "loopml.serving.predlog", module)
    FakePredictionLog.instances.clear()
    async with client_for(create_app(serving_ws, "models:/plans/1", log_predictions=False)) as c:
        assert (await c.post("/models/plans/predict", json={"records": [PLAN_ROW]})).is_success
    assert FakePredictionLog.instances == []
