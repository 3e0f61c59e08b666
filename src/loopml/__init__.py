"""loopml: the machine-learning lifecycle as one closed loop.

Everything starts from a :class:`Workspace`::

    import loopml
    ws = loopml.Workspace.open()
    with ws.start_run(experiment="churn") as run:
        run.log_metric("auc", 0.91)
"""

from loopml import models
from loopml.errors import (
    ArtifactError,
    ConfigError,
    ConflictError,
    CorruptArtifactError,
    IncompatibleModelError,
    LoopmlError,
    ModelLoadError,
    NotFoundError,
    SchemaVersionError,
    ValidationError,
)
from loopml.tracking import Run, active_run
from loopml.tracking.autolog import autolog
from loopml.workspace import GcReport, Workspace

__version__ = "0.1.0"

__all__ = [
    "ArtifactError",
    "ConfigError",
    "ConflictError",
    "CorruptArtifactError",
    "GcReport",
    "IncompatibleModelError",
    "LoopmlError",
    "ModelLoadError",
    "NotFoundError",
    "Run",
    "SchemaVersionError",
    "ValidationError",
    "Workspace",
    "__version__",
    "active_run",
    "autolog",
    "models",
]
