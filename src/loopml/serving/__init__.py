"""Serving: the model server (REST and Open Inference Protocol v2, micro-batching, hot
swap), deployments (canary, shadow, A/B), the prediction log and batch scoring.

Example:
    >>> from loopml.serving import create_app, serve
    >>> serve("models:/churn@production", port=8080)          # blocks, like `loopml serve`
    >>> app = create_app(ws, "models:/churn@production")      # an ASGI app to run yourself
    >>> score(ws, "models:/churn@production", "new.parquet", "scored.parquet")
"""

from loopml.serving.app import create_app
from loopml.serving.batch import BatchResult, score
from loopml.serving.deployment import DeploySpec
from loopml.serving.options import ServeOptions
from loopml.serving.predlog import PredictionLog
from loopml.serving.router import Arm, Router
from loopml.serving.served import ModelSource, Prediction, ServedModel
from loopml.serving.server import serve

__all__ = [
    "Arm",
    "BatchResult",
    "DeploySpec",
    "ModelSource",
    "Prediction",
    "PredictionLog",
    "Router",
    "ServeOptions",
    "ServedModel",
    "create_app",
    "score",
    "serve",
]
