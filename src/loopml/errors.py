"""The exception tree: every loopml error says what went wrong and what to do next.

    LoopmlError
    ├── ConfigError            loopml is misconfigured or misused (bad URL, unwritable home)
    │   ├── SchemaVersionError the database was written by a newer loopml
    │   └── IncompatibleModelError  a model needs packages (or a Python) this one lacks
    ├── ValidationError        your input is wrong (bad filter, conflicting param, bad value)
    │   └── ExportError        a model cannot be exported as asked, or would predict differently
    ├── NotFoundError          no such experiment, run or artifact
    ├── ConflictError          the thing exists already in another state
    ├── ArtifactError
    │   └── CorruptArtifactError  stored bytes no longer match their sha256
    └── ModelLoadError         a model file passed its checks but would not load

Each class also subclasses the matching built-in exception, so ``except LookupError``
works, and carries an HTTP status and a one-line CLI headline.
"""

from __future__ import annotations

__all__ = [
    "ArtifactError",
    "ConfigError",
    "ConflictError",
    "CorruptArtifactError",
    "ExportError",
    "IncompatibleModelError",
    "LoopmlError",
    "ModelLoadError",
    "NotFoundError",
    "SchemaVersionError",
    "ValidationError",
]


class LoopmlError(Exception):
    """Base of every error loopml raises on purpose."""

    http_status = 500
    headline = "loopml error"


class ConfigError(LoopmlError, RuntimeError):
    """loopml is misconfigured or used in a way it does not support."""

    http_status = 500
    headline = "Configuration problem"


class SchemaVersionError(ConfigError):
    """The metadata database was written by a newer loopml than this one."""

    headline = "Workspace is newer than this loopml"


class ValidationError(LoopmlError, ValueError):
    """The caller's input is wrong; the message names the input and the fix."""

    http_status = 422
    headline = "Invalid input"


class NotFoundError(LoopmlError, LookupError):
    """A named or identified entity does not exist (or was permanently deleted)."""

    http_status = 404
    headline = "Not found"


class ConflictError(LoopmlError, ValueError):
    """The request clashes with what is already stored."""

    http_status = 409
    headline = "Conflict"


class ArtifactError(LoopmlError, OSError):
    """The artifact store could not read or write an artifact."""

    http_status = 500
    headline = "Artifact store problem"


class CorruptArtifactError(ArtifactError):
    """The stored bytes of an artifact do not match its content hash."""

    headline = "Corrupted artifact"


class IncompatibleModelError(ConfigError):
    """A model bundle needs a Python or packages that differ in major version, or are missing."""

    headline = "Model needs other packages"


class ModelLoadError(LoopmlError, RuntimeError):
    """A model file's bytes are intact but unpickling (or its flavor's loader) failed."""

    http_status = 500
    headline = "Model could not be loaded"


class ExportError(ValidationError):
    """A model cannot be exported to the requested format, or the export would predict
    differently from the model; the message names the step and the formats that work."""

    headline = "Model cannot be exported"
