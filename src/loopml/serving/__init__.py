"""The model server: REST and Open Inference Protocol v2, micro-batching, hot swap.

Example:
    >>> from loopml.serving import create_app, serve
    >>> serve("models:/churn@production", port=8080)          # blocks, like `loopml serve`
    >>> app = create_app(ws, "models:/churn@production")      # an ASGI app to run yourself
"""

from loopml.serving.app import create_app
from loopml.serving.options import ServeOptions
from loopml.serving.router import Arm, Router
from loopml.serving.served import ModelSource, Prediction, ServedModel
from loopml.serving.server import serve

__all__ = [
    "Arm",
    "ModelSource",
    "Prediction",
    "Router",
    "ServeOptions",
    "ServedModel",
    "create_app",
    "serve",
]
