"""Step outputs as typed artifacts: small JSON values inline, DataFrames as Parquet,
fitted models as bundles, anything else pickled; each with a content hash.

The descriptor stored on the step run is ``{"kind", "sha256", ...}``; ``sha256`` is the
content hash that downstream cache keys use.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.errors import NotFoundError

if TYPE_CHECKING:
    from loopml.workspace import Workspace

__all__ = ["load_output", "output_exists", "store_output"]

_INLINE_LIMIT = 64 * 1024  # bytes of JSON kept in the metadata store itself


def store_output(ws: Workspace, value: Any) -> dict[str, Any]:
    """Stores ``value`` and returns its descriptor."""
    inline = _inline_json(value)
    if inline is not None:
        return {
            "kind": "json",
            "type": type(value).__name__,
            "sha256": hashlib.sha256(inline.encode()).hexdigest(),
            "value": value,
        }
    if _is_frame(value):
        buffer = io.BytesIO()
        value.to_parquet(buffer, index=True)
        blob = ws.artifacts.put_bytes(buffer.getvalue())
        descriptor = {"kind": "parquet", "type": "DataFrame", "rows": len(value)}
        descriptor["columns"] = int(value.shape[1])
    elif _is_model(value):
        from loopml.models import pack_bundle, write_bundle

        with tempfile.TemporaryDirectory(prefix="loopml-step-") as folder:
            write_bundle(value, Path(folder) / "bundle")
            archive = pack_bundle(Path(folder) / "bundle", Path(folder) / "bundle.tar.gz")
            blob = ws.artifacts.put_file(archive)
        descriptor = {"kind": "bundle", "type": type(value).__name__}
    else:
        from loopml.pipelines._worker import dumps

        blob = ws.artifacts.put_bytes(dumps(value))
        descriptor = {"kind": "pickle", "type": type(value).__name__}
    ws._blobs.touch([(blob.sha256, blob.size)])
    return {**descriptor, "sha256": blob.sha256, "size": blob.size}


def output_exists(ws: Workspace, descriptor: dict[str, Any] | None) -> bool:
    """Whether the output can still be loaded (``gc`` frees unreferenced artifacts)."""
    if descriptor is None:
        return False
    if descriptor["kind"] == "json":
        return True
    return ws.artifacts.exists(descriptor["sha256"])


def load_output(ws: Workspace, descriptor: dict[str, Any]) -> Any:
    """The value a descriptor stands for."""
    kind = descriptor["kind"]
    if kind == "json":
        return descriptor["value"]
    sha256 = descriptor["sha256"]
    if not ws.artifacts.exists(sha256):
        raise NotFoundError(
            f"The step output {sha256[:12]} is no longer in the artifact store (freed by "
            "`loopml gc`?); run the pipeline again with --no-cache to recompute it."
        )
    if kind == "parquet":
        import pandas as pd

        return pd.read_parquet(io.BytesIO(ws.artifacts.read_bytes(sha256)))
    if kind == "bundle":
        from loopml.models import load_bundle

        with tempfile.TemporaryDirectory(prefix="loopml-step-") as folder:
            path = ws.artifacts.download(sha256, Path(folder) / "bundle.tar.gz")
            return load_bundle(path).model
    return pickle.loads(ws.artifacts.read_bytes(sha256))


def _inline_json(value: Any) -> str | None:
    if not _plain(value):
        return None
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        return None
    return text if len(text) <= _INLINE_LIMIT else None


def _plain(value: Any, depth: int = 0) -> bool:
    # Exactly JSON's types, so a value comes back as it went in (no tuple -> list).
    if depth > 20:
        return False
    if value is None or type(value) in (bool, int, float, str):
        return True
    if type(value) is list:
        return all(_plain(v, depth + 1) for v in value)
    if type(value) is dict:
        return all(type(k) is str and _plain(v, depth + 1) for k, v in value.items())
    return False


def _is_frame(value: Any) -> bool:
    module = type(value).__module__
    return module.startswith("pandas") and type(value).__name__ == "DataFrame"


def _is_model(value: Any) -> bool:
    # A fitted estimator (scikit-learn style: fitted attributes end in "_") with predict.
    if isinstance(value, type) or not callable(getattr(value, "predict", None)):
        return False
    if not callable(getattr(value, "fit", None)):
        return False
    return any(k.endswith("_") and not k.startswith("_") for k in vars(value))
