"""Exports of a registered version: ONNX (stored with the version), MLflow and bundle
folders or archives and Docker build contexts (written where asked), and MLflow models
imported as versions.

An ONNX export is itself a loopml bundle (flavor ``onnx``, the same signature) kept
beside the version's own files under ``exports/onnx/``; it is made once, after a parity
check on held-out rows, and ``ws.registry.load(ref, flavor="onnx")`` serves it.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.errors import ConflictError, ValidationError

if TYPE_CHECKING:
    import pandas as pd

    from loopml.registry.registry import ModelVersion
    from loopml.workspace import Workspace

__all__ = ["EXPORTS", "ExportResult", "export_version", "import_mlflow"]

EXPORTS = "exports"
PARITY_ROWS = 2_000
_HELD_OUT_ROLES = ("test", "valid", "validation", "eval", "train")


@dataclass(frozen=True)
class ExportResult:
    format: str
    path: Path  # the exported model file or folder
    parity: str | None = None  # the ONNX parity check's summary


def export_version(
    workspace: Workspace,
    version: ModelVersion,
    format: str,
    out: str | Path | None = None,
    data: Any = None,
) -> ExportResult:
    """Exports ``version`` as ``format`` (onnx, mlflow or bundle); see the module doc."""
    if format == "onnx":
        return _onnx(workspace, version, out, data)
    if format == "mlflow":
        return _mlflow(workspace, version, out)
    if format == "bundle":
        return _bundle(workspace, version, out)
    if format == "docker":
        from loopml.registry.docker import write_context

        target = Path(out) if out is not None else Path(f"{version.name}-v{version.version}-docker")
        return ExportResult("docker", write_context(workspace, version, target))
    raise ValidationError(f"Unknown export format {format!r}; use onnx, mlflow, bundle or docker.")


def _onnx(
    workspace: Workspace, version: ModelVersion, out: str | Path | None, data: Any
) -> ExportResult:
    from loopml.models import write_bundle
    from loopml.models.onnx import OnnxModel
    from loopml.registry.onnx_export import export_onnx

    registry = workspace.registry
    prefix = f"{EXPORTS}/onnx/"
    if not any(path.startswith(prefix) for path, _, _ in version.files()) or data is not None:
        loaded = registry.load(version)
        rows = _held_out(workspace, version, data, loaded.signature.input_names)
        onnx_bytes, report = export_onnx(loaded.model, rows)
        with tempfile.TemporaryDirectory() as scratch:
            bundle = Path(scratch) / "onnx"
            write_bundle(
                OnnxModel.from_bytes(onnx_bytes),
                bundle,
                signature=loaded.signature,
                input_example=rows.head(5),
            )
            registry._store_files(version, bundle, prefix)
        registry.set_tags(
            version.name,
            {"onnx.parity": report.summary(), "onnx.parity_rows": report.rows},
            version=version.version,
        )
    folder: Path = registry.local_bundle(version, flavor="onnx")
    parity = registry.get(version.uri).tags.get("onnx.parity")
    if out is not None:
        target = Path(out)
        if target.suffix == ".onnx":
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / "model.onnx", target)
        else:
            _copy_tree(folder, target)
        return ExportResult("onnx", target, parity)
    return ExportResult("onnx", folder / "model.onnx", parity)


def _mlflow(workspace: Workspace, version: ModelVersion, out: str | Path | None) -> ExportResult:
    from loopml.registry.mlflow_format import write_mlflow_model

    loaded = workspace.registry.load(version)
    target = Path(out) if out is not None else Path(f"{version.name}-v{version.version}-mlflow")
    example = None
    if loaded.manifest.input_example:
        import pandas as pd

        folder = workspace.registry.local_bundle(version)
        example = pd.read_json(folder / loaded.manifest.input_example, orient="records")
    write_mlflow_model(loaded.model, target, input_example=example)
    return ExportResult("mlflow", target)


def _bundle(workspace: Workspace, version: ModelVersion, out: str | Path | None) -> ExportResult:
    from loopml.models import pack_bundle

    folder = workspace.registry.local_bundle(version)
    target = Path(out) if out is not None else Path(f"{version.name}-v{version.version}")
    if target.name.endswith((".tar.gz", ".tgz")):
        return ExportResult("bundle", pack_bundle(folder, target))
    _copy_tree(folder, target)
    return ExportResult("bundle", target)


def import_mlflow(
    workspace: Workspace, folder: str | Path, name: str, **options: Any
) -> ModelVersion:
    """Registers an MLflow sklearn model directory as the next version of ``name``."""
    from loopml.registry.mlflow_format import read_mlflow_model

    found = read_mlflow_model(folder)
    version = workspace.registry.register(
        found.model,
        name=name,
        input_example=found.input_example,
        tags={"loopml.imported_from": "mlflow", "mlflow.version": found.mlflow_version or "?"},
        **options,
    )
    return version


def _held_out(
    workspace: Workspace, version: ModelVersion, data: Any, inputs: list[str]
) -> pd.DataFrame:
    """Rows for the parity check: ``data`` when given, else a seeded sample of the data
    the version's run read (its held-out role first)."""
    from loopml.evaluation._resolve import resolve_data

    if data is not None:
        frame = resolve_data(workspace, data).frame
    else:
        inputs_by_role = {role: dataset for dataset, role in version.run.inputs()}
        role = next((r for r in _HELD_OUT_ROLES if r in inputs_by_role), None)
        if role is None:
            raise ValidationError(
                f"{version.uri} has no recorded data to check the ONNX export on; pass "
                "held-out rows with data= (--data churn@4 or a DataFrame)."
            )
        frame = workspace.data.get(inputs_by_role[role])
    missing = [column for column in inputs if column not in frame.columns]
    if inputs and missing:
        raise ValidationError(
            f"The parity rows lack the model's inputs {', '.join(missing)}; pass rows of the "
            "data the model was trained on."
        )
    rows = frame if len(frame) <= PARITY_ROWS else frame.sample(PARITY_ROWS, random_state=0)
    return rows[inputs] if inputs else rows


def _copy_tree(source: Path, target: Path) -> None:
    if target.exists() and any(target.iterdir()):
        raise ConflictError(f"{target} already holds files; export to a new folder.")
    shutil.copytree(source, target, dirs_exist_ok=True)
