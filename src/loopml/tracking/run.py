"""A tracked run: params, metrics, tags and artifacts, and the context that makes it current."""

from __future__ import annotations

import io
import json
import math
import numbers
import os
import tempfile
import time
import traceback
from collections.abc import Mapping
from contextvars import ContextVar, Token
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from loopml.errors import ConflictError, NotFoundError, ValidationError
from loopml.store.entities import ArtifactInfo, RunInfo, RunStatus

if TYPE_CHECKING:
    import pandas as pd

    from loopml.data.contract import Contract
    from loopml.models import Signature
    from loopml.models.reference import Reference
    from loopml.workspace import Workspace

__all__ = ["MAX_PARAM_LENGTH", "Run", "active_run"]

MAX_PARAM_LENGTH = 8000
MAX_KEY_LENGTH = 256
_MAX_ERROR_LENGTH = 20_000

_current: ContextVar[Run | None] = ContextVar("loopml_current_run", default=None)


def active_run() -> Run | None:
    """The run of the innermost ``with ws.start_run(...)`` block in this context, if any."""
    return _current.get()


class Run:
    """One run of an experiment. Use it as a context manager to make it the current run.

    Example:
        >>> with ws.start_run(experiment="churn") as run:
        ...     run.log_params({"model": "rf", "max_depth": 8})
        ...     run.log_metric("auc", 0.91)

    A block that raises ends the run FAILED with the error recorded; Ctrl-C ends it KILLED.
    """

    def __init__(self, workspace: Workspace, info: RunInfo) -> None:
        self._ws = workspace
        self._info = info
        self._steps: dict[str, int] = {}
        self._token: Token[Run | None] | None = None

    # -- identity -------------------------------------------------------------
    @property
    def id(self) -> str:
        return self._info.run_id

    @property
    def info(self) -> RunInfo:
        """The run's stored attributes (status, times, code version, ...), read fresh."""
        self._info = self._ws._runs.get(self.id)
        return self._info

    @property
    def workspace(self) -> Workspace:
        """The workspace the run is stored in."""
        return self._ws

    @property
    def experiment(self) -> str:
        return self._ws._experiments.get(self._info.experiment_id).name

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, name={self._info.name!r})"

    # -- params and tags ------------------------------------------------------
    def log_param(self, key: str, value: Any) -> None:
        """Records a param. Params are fixed: the same value again is fine, another is an error."""
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        converted = {}
        for key, value in params.items():
            _check_key(key, "param")
            text = param_text(value)
            if len(text) > MAX_PARAM_LENGTH:
                raise ValidationError(
                    f"Param {key!r} is {len(text)} characters long; params hold at most "
                    f"{MAX_PARAM_LENGTH}. Store long values with run.log_dict or "
                    "run.log_text instead."
                )
            converted[key] = (text, _param_number(value, text))
        if converted:
            self._ws._runs.log_params(self.id, converted)

    def set_tag(self, key: str, value: Any) -> None:
        """Sets a tag; unlike params, tags may change."""
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        for key in tags:
            _check_key(key, "tag")
        if tags:
            self._ws._runs.set_tags(self.id, {k: param_text(v) for k, v in tags.items()})

    # -- metrics --------------------------------------------------------------
    def log_metric(
        self, key: str, value: float, step: int | None = None, timestamp: int | None = None
    ) -> None:
        """Records a metric value. Steps count up per key when not given.

        The value is written by a background thread within a second; NaN and
        infinities are stored as they are.
        """
        if key.__class__ is not str or not key.strip() or len(key) > MAX_KEY_LENGTH:
            _check_key(key, "metric")
        number = _metric_number(key, value)
        if step is None:
            step = self._steps.get(key, 0)
        self._steps[key] = step + 1
        self._ws._writer.add((self.id, key, number, step, timestamp or int(time.time() * 1000)))

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        now = int(time.time() * 1000)
        points = []
        for key, value in metrics.items():
            _check_key(key, "metric")
            at = self._steps.get(key, 0) if step is None else step
            self._steps[key] = at + 1
            points.append((self.id, key, _metric_number(key, value), at, now))
        self._ws._writer.extend(points)

    def flush(self) -> None:
        """Writes every metric logged so far before returning."""
        self._ws._writer.flush()

    # -- artifacts ------------------------------------------------------------
    def log_artifact(
        self, local_path: str | os.PathLike[str], artifact_path: str | None = None
    ) -> list[ArtifactInfo]:
        """Stores a file or a folder under ``artifact_path``, keeping its own name.

        ``log_artifact("plots/")`` gives ``plots/a.png``; ``log_artifacts`` stores a
        folder's contents without the folder's name.
        """
        source = Path(local_path)
        prefix = "/".join(filter(None, [(artifact_path or "").strip("/"), source.name]))
        return self._store_tree(source, prefix)

    def log_artifacts(
        self, local_dir: str | os.PathLike[str], artifact_path: str | None = None
    ) -> list[ArtifactInfo]:
        """Stores everything in a folder under ``artifact_path`` (the run's root by default)."""
        source = Path(local_dir)
        if source.is_file():
            raise ValidationError(f"{source} is a file; use log_artifact for single files.")
        return self._store_tree(source, (artifact_path or "").strip("/"))

    def _store_tree(self, source: Path, prefix: str) -> list[ArtifactInfo]:
        if not source.exists():
            raise NotFoundError(f"{source} does not exist; pass the path of a file or folder.")
        files = (
            [(source, prefix)]
            if source.is_file()
            else [
                (path, "/".join(filter(None, [prefix, path.relative_to(source).as_posix()])))
                for path in sorted(source.rglob("*"))
                if path.is_file()
            ]
        )
        stored = []
        for path, name in files:
            blob = self._ws.artifacts.put_file(path)
            stored.append(ArtifactInfo(name, blob.sha256, blob.size))
        if stored:
            self._ws._blobs.link_run_artifacts(self.id, stored)
        return stored

    def log_bytes(self, data: bytes, name: str) -> ArtifactInfo:
        """Stores bytes as the artifact ``name``."""
        name = _artifact_name(name)
        blob = self._ws.artifacts.put_bytes(data)
        info = ArtifactInfo(name, blob.sha256, blob.size)
        self._ws._blobs.link_run_artifacts(self.id, [info])
        return info

    def log_text(self, text: str, name: str) -> ArtifactInfo:
        return self.log_bytes(text.encode("utf-8"), name)

    def log_dict(self, data: Mapping[str, Any] | list[Any], name: str) -> ArtifactInfo:
        """Stores a dict or list as JSON (``.json``) or YAML (``.yaml``/``.yml``)."""
        if name.endswith((".yaml", ".yml")):
            import yaml

            text = yaml.safe_dump(data, sort_keys=False)
        else:
            text = json.dumps(data, indent=2, default=str)
        return self.log_text(text, name)

    def log_figure(self, figure: Any, name: str) -> ArtifactInfo:
        """Stores a matplotlib figure (``.png``, ``.svg``, ``.pdf``) or a Plotly figure
        (``.html`` or ``.json``).

        A Plotly page opens offline: it loads ``plotly.min.js`` stored beside it, which
        the content-addressed store keeps once however many figures use it.
        """
        suffix = Path(name).suffix.lower()
        if hasattr(figure, "savefig"):
            buffer = io.BytesIO()
            figure.savefig(buffer, format=suffix.lstrip(".") or "png", bbox_inches="tight")
            return self.log_bytes(buffer.getvalue(), name if suffix else f"{name}.png")
        if hasattr(figure, "to_html"):
            if suffix == ".json":
                return self.log_text(figure.to_json(), name)
            from plotly.offline import get_plotlyjs

            name = name if suffix == ".html" else f"{name}.html"
            folder = Path(_artifact_name(name)).parent.as_posix()
            bundle = "plotly.min.js" if folder == "." else f"{folder}/plotly.min.js"
            if not self.artifacts(bundle):
                self.log_text(get_plotlyjs(), bundle)
            return self.log_text(figure.to_html(include_plotlyjs="directory"), name)
        raise ValidationError(
            f"log_figure takes a matplotlib or Plotly figure, got {type(figure).__name__}."
        )

    def log_model(
        self,
        model: Any,
        path: str = "model",
        *,
        signature: Signature | Contract | None = None,
        input_example: pd.DataFrame | list[dict[str, Any]] | None = None,
        reference: Reference | None = None,
    ) -> list[ArtifactInfo]:
        """Stores a fitted model as a model bundle under ``path``.

        ``signature`` (a Signature, or the training data's contract), ``input_example``
        and ``reference`` (the profile monitoring compares traffic with) are as in
        :func:`loopml.models.write_bundle`. Load it back with
        :meth:`load_model` or ``loopml.models.load(f"runs:/{run.id}/{path}")``.
        """
        from loopml.models import MANIFEST_NAME, write_bundle

        path = _artifact_name(path)
        with tempfile.TemporaryDirectory() as folder:
            bundle = Path(folder) / "bundle"
            manifest = write_bundle(
                model, bundle, signature=signature, input_example=input_example, reference=reference
            )
            # Logging again replaces files by path; one left over would fail verification.
            written = {f"{path}/{name}" for name in [*manifest.files, MANIFEST_NAME]}
            stale = sorted({a.path for a in self.artifacts(path)} - written)
            if stale:
                raise ConflictError(
                    f"Run {self.id} already has {', '.join(stale)} under {path!r}, which this "
                    "model would not replace; log it under another path."
                )
            return self.log_artifacts(bundle, path)

    def load_model(self, path: str = "model") -> Any:
        """The model object stored with :meth:`log_model` under ``path``, every file
        verified against its manifest (``loopml.models.load`` adds input checks)."""
        from loopml.models import load

        return load(f"runs:/{self.id}/{path}", workspace=self._ws).model

    def artifacts(self, prefix: str = "") -> list[ArtifactInfo]:
        """The run's artifacts (optionally those under ``prefix``)."""
        return self._ws._blobs.run_artifacts(self.id, prefix)

    def read_artifact(self, name: str) -> bytes:
        """The verified bytes of one artifact."""
        return self._ws.artifacts.read_bytes(self._artifact(name).sha256)

    def download_artifacts(self, destination: str | os.PathLike[str], prefix: str = "") -> Path:
        """Writes the run's artifacts (under ``prefix``) into a local folder, verified."""
        target = Path(destination)
        found = self.artifacts(prefix)
        if prefix and not found:
            raise NotFoundError(f"Run {self.id} has no artifact {prefix!r}.")
        for item in found:
            self._ws.artifacts.download(item.sha256, target / item.path)
        return target

    def _artifact(self, name: str) -> ArtifactInfo:
        for item in self.artifacts(name):
            if item.path == name:
                return item
        names = ", ".join(a.path for a in self.artifacts()[:10]) or "none"
        raise NotFoundError(f"Run {self.id} has no artifact {name!r} (it has: {names}).")

    # -- lineage --------------------------------------------------------------
    def log_input(self, dataset: Any, role: str = "train") -> Any:
        """Records that this run read a dataset version (``"churn@4"`` or a
        DatasetVersion) as its ``role`` input; returns the DatasetVersion."""
        return self._ws.data.log_input(self.id, dataset, role)

    def inputs(self) -> list[tuple[Any, str]]:
        """The dataset versions this run read, with their roles."""
        return list(self._ws.data.inputs(self.id))

    # -- reading --------------------------------------------------------------
    @property
    def params(self) -> dict[str, str]:
        return self._ws._runs.records([self.id])[0].params

    @property
    def tags(self) -> dict[str, str]:
        return self._ws._runs.records([self.id])[0].tags

    @property
    def metrics(self) -> dict[str, float]:
        """Latest value of each metric (pending values are written first)."""
        self.flush()
        return self._ws._runs.records([self.id])[0].metrics

    def metric_history(self, key: str | None = None) -> pd.DataFrame:
        """Every logged value (of ``key``, or of all metrics) as a DataFrame."""
        import pandas as pd

        self.flush()
        rows = self._ws._runs.metric_history(self.id, key)
        frame = pd.DataFrame(
            [(k, m.step, m.value, m.timestamp) for k, m in rows],
            columns=["key", "step", "value", "timestamp"],
        )
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="ms", utc=True)
        return frame

    @property
    def environment(self) -> dict[str, Any]:
        """The Python version, platform and installed packages the run was started in."""
        stored = self._ws._runs.environment(self._info.environment_id or "")
        if stored is None:
            return {}
        python_version, platform_name, packages = stored
        return {
            "python_version": python_version,
            "platform": platform_name,
            "packages": json.loads(packages),
        }

    def children(self) -> list[Run]:
        return [Run(self._ws, info) for info in self._ws._runs.children(self.id)]

    # -- lifecycle ------------------------------------------------------------
    def end(self, status: str = RunStatus.FINISHED, error: str | None = None) -> None:
        """Writes pending metrics and ends the run with ``status``."""
        if status not in RunStatus.ALL:
            raise ValidationError(f"status must be one of {RunStatus.ALL}, got {status!r}.")
        try:
            # The last metrics and the end are one transaction.
            self._ws._writer.flush((self.id, status, error))
        except BaseException:
            self._ws._runs.finish(self.id, status, error)  # the run ends even so
            raise
        finally:
            self._ws._open_runs.pop(self.id, None)

    def __enter__(self) -> Run:
        self._token = _current.set(self)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
        if error is None:
            self.end(RunStatus.FINISHED)
        elif isinstance(error, KeyboardInterrupt):
            self.end(RunStatus.KILLED, "KeyboardInterrupt")
        else:
            text = "".join(traceback.format_exception(kind, error, trace))
            self.end(RunStatus.FAILED, text[-_MAX_ERROR_LENGTH:])


def param_text(value: Any) -> str:
    """How a param or tag value is stored: text, JSON for containers."""
    if isinstance(value, str):
        return value
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()  # numpy scalars
    if isinstance(value, (Mapping, list, tuple)):
        return json.dumps(value, sort_keys=isinstance(value, Mapping), default=str)
    return str(value)


def _param_number(value: Any, text: str) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Real):
        number = float(value)
    else:
        try:
            number = float(text)
        except ValueError:
            return None
    return number if math.isfinite(number) else None


def _metric_number(key: str, value: Any) -> float:
    if isinstance(value, (str, bytes, bool)):
        raise ValidationError(
            f"Metric {key!r} must be a number, got {value!r}. Log text as a tag or a param."
        )
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValidationError(
            f"Metric {key!r} must be a number, got {type(value).__name__} {value!r}."
        ) from None


def _check_key(key: Any, what: str) -> None:
    if not isinstance(key, str) or not key.strip():
        raise ValidationError(f"A {what} key must be a non-empty string, got {key!r}.")
    if len(key) > MAX_KEY_LENGTH:
        raise ValidationError(
            f"{what.capitalize()} key {key[:40]!r}... is {len(key)} characters; the limit is "
            f"{MAX_KEY_LENGTH}."
        )


def _artifact_name(name: str) -> str:
    cleaned = name.strip().strip("/")
    if not cleaned or ".." in cleaned.split("/"):
        raise ValidationError(f"Artifact name {name!r} must be a relative path without '..'.")
    return cleaned
