"""Serving: the model server (REST and Open Inference Protocol v2, micro-batching, hot
swap), deployments (canary, shadow, A/B), the prediction log and batch scoring.

Example:
    >>> from loopml.serving import create_app, serve
    >>> serve("models:/churn@production", port=8080)          # blocks, like `loopml serve`
    >>> app = create_app(ws, "models:/churn@production")      # an ASGI app to run yourself
    >>> score(ws, "models:/churn@production", "new.parquet", "scored.parquet")
    >>> request = request_deployment(ws, "models:/churn/8")  # a canary, run by that server
    >>> wait_for_deployment(ws, request.request_id, timeout=3600).state
    'promoted'

The names below are imported on first use: batch scoring, the prediction log and its
readers (``ws.predictions``) do not pay for FastAPI and the server's modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopml.serving.app import create_app
    from loopml.serving.batch import BatchResult, score
    from loopml.serving.deployment import (
        DeploymentRequest,
        DeploySpec,
        cancel_deployment,
        get_deployment,
        list_deployments,
        request_deployment,
        wait_for_deployment,
    )
    from loopml.serving.options import ServeOptions
    from loopml.serving.policies import CanaryPlan
    from loopml.serving.predlog import PredictionLog
    from loopml.serving.router import Arm, Router
    from loopml.serving.served import ModelSource, Prediction, ServedModel
    from loopml.serving.server import serve

__all__ = [
    "Arm",
    "BatchResult",
    "CanaryPlan",
    "DeploySpec",
    "DeploymentRequest",
    "ModelSource",
    "Prediction",
    "PredictionLog",
    "Router",
    "ServeOptions",
    "ServedModel",
    "cancel_deployment",
    "create_app",
    "get_deployment",
    "list_deployments",
    "request_deployment",
    "score",
    "serve",
    "wait_for_deployment",
]

_MODULES = {
    "Arm": "router",
    "BatchResult": "batch",
    "CanaryPlan": "policies",
    "DeploySpec": "deployment",
    "DeploymentRequest": "deployment",
    "ModelSource": "served",
    "Prediction": "served",
    "PredictionLog": "predlog",
    "Router": "router",
    "ServeOptions": "options",
    "ServedModel": "served",
    "cancel_deployment": "deployment",
    "create_app": "app",
    "get_deployment": "deployment",
    "list_deployments": "deployment",
    "request_deployment": "deployment",
    "wait_for_deployment": "deployment",
    "score": "batch",
    "serve": "server",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'loopml.serving' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"loopml.serving.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
