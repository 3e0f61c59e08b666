"""Exports of registered versions: ONNX stored with the version, MLflow and bundle
folders, and MLflow models imported as versions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import loopml
from loopml.errors import ExportError
from tests.evaluation._samples import binary_frame
from tests.registry._samples import registered


@pytest.fixture
def ws(sqlite_workspace: loopml.Workspace) -> loopml.Workspace:
    registered(sqlite_workspace, 1)
    return sqlite_workspace


def test_onnx_export_is_parity_checked_stored_and_loadable(
    ws: loopml.Workspace, tmp_path: Path
) -> None:
    result = ws.registry.export("models:/churn/1", "onnx")
    assert result.parity is not None and "labels agree on" in result.parity
    version = ws.registry.get("models:/churn/1")
    exported = [path for path, _, _ in version.files() if path.startswith("exports/onnx/")]
    assert "exports/onnx/model.onnx" in exported and "exports/onnx/loopml-model.yaml" in exported

    rows = binary_frame(300, seed=7)
    onnx_model = ws.registry.load("models:/churn/1", flavor="onnx")
    pickled = ws.registry.load("models:/churn/1")
    assert onnx_model.manifest.flavor == "onnx"
    assert (onnx_model.predict(rows) == pickled.predict(rows)).all()
    assert np.abs(onnx_model.predict_proba(rows) - pickled.predict_proba(rows)).max() <= 1e-4
    # The pickled bundle is untouched by its export.
    assert ws.registry.local_bundle("models:/churn/1") != ws.registry.local_bundle(
        "models:/churn/1", flavor="onnx"
    )

    again = ws.registry.export("models:/churn/1", "onnx", out=tmp_path / "churn.onnx")
    assert (tmp_path / "churn.onnx").read_bytes() == Path(result.path).read_bytes()
    assert again.parity == result.parity


def test_a_model_onnx_cannot_express_is_refused_and_nothing_is_stored(ws: loopml.Workspace) -> None:
    from tests.registry.test_registry import Doubler

    version = ws.registry.register(Doubler(), name="odd", input_example=binary_frame(5)[["tenure"]])
    with pytest.raises(ExportError, match="Doubler"):
        ws.registry.export(version, "onnx", data=binary_frame(50))
    assert not [p for p, _, _ in ws.registry.get(version.uri).files() if p.startswith("exports/")]
    with pytest.raises(loopml.errors.NotFoundError, match="no onnx export"):
        ws.registry.load(version, flavor="onnx")


def test_mlflow_round_trip(
    ws: loopml.Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow.pyfunc
    import mlflow.sklearn

    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    rows = binary_frame(100, seed=3)
    exported = ws.registry.export("models:/churn/1", "mlflow", out=tmp_path / "mlflow-model")
    theirs = mlflow.pyfunc.load_model(str(exported.path)).predict(
        rows[["tenure", "spend", "region"]]
    )
    ours = ws.registry.load("models:/churn/1").predict(rows)
    assert list(theirs) == list(ours)

    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(
        rows[["tenure", "spend"]], rows["churned"]
    )
    mlflow.sklearn.save_model(forest, str(tmp_path / "theirs"), serialization_format="pickle",
                              input_example=rows[["tenure", "spend"]].head(3))  # fmt: skip
    imported = ws.registry.import_mlflow(tmp_path / "theirs", "forest")
    assert imported.tags["loopml.imported_from"] == "mlflow"
    loaded = ws.registry.load(imported)
    assert list(loaded.predict(rows)) == list(forest.predict(rows[["tenure", "spend"]]))
    assert loaded.signature.input_names == ["tenure", "spend"]


def test_bundle_export_as_folder_and_archive(ws: loopml.Workspace, tmp_path: Path) -> None:
    folder = ws.registry.export("models:/churn/1", "bundle", out=tmp_path / "b").path
    archive = ws.registry.export("models:/churn/1", "bundle", out=tmp_path / "b.tar.gz").path
    rows = binary_frame(50, seed=5)
    expected = list(ws.registry.load("models:/churn/1").predict(rows))
    assert list(loopml.models.load(folder).predict(rows)) == expected
    assert list(loopml.models.load(archive).predict(rows)) == expected
    with pytest.raises(loopml.errors.ConflictError, match="already holds files"):
        ws.registry.export("models:/churn/1", "bundle", out=tmp_path / "b")
