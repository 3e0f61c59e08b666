"""Writing, verifying and packing model bundles."""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import platform
import tarfile
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import loopml
from loopml.data.contract import load_contract
from loopml.errors import ConflictError, CorruptArtifactError, ValidationError
from loopml.models import (
    MANIFEST_NAME,
    ColumnSpec,
    Signature,
    pack_bundle,
    verify_bundle,
    write_bundle,
)
from tests.models.conftest import edit_manifest


def _names(pins: list[str]) -> set[str]:
    return {pin.partition("==")[0] for pin in pins}


def test_manifest_records_flavor_versions_and_the_hash_of_every_file(
    tmp_path: Path, classifier: Pipeline, features: pd.DataFrame
) -> None:
    manifest = write_bundle(classifier, tmp_path / "bundle", input_example=features.head(10))

    folder = tmp_path / "bundle"
    stored = yaml.safe_load((folder / MANIFEST_NAME).read_text())
    assert stored == manifest.to_dict()
    assert stored["format_version"] == 1
    assert stored["flavor"] == "sklearn"
    assert stored["model_file"] == "model.joblib"
    assert stored["model_class"] == "sklearn.pipeline.Pipeline"
    assert stored["python"] == platform.python_version()
    assert stored["loopml"] == importlib.metadata.version("loopml")
    assert datetime.fromisoformat(stored["created"]).tzinfo is not None
    assert stored["input_example"] == "input_example.json"
    files = {p.name for p in folder.iterdir()} - {MANIFEST_NAME}
    assert (
        set(stored["files"]) == files == {"model.joblib", "requirements.txt", "input_example.json"}
    )
    for name, sha256 in stored["files"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == sha256
    assert (folder / "requirements.txt").read_text().split() == stored["requirements"]
    assert len(pd.read_json(folder / "input_example.json", orient="records")) == 5


def test_a_pipeline_with_an_xgboost_step_pins_what_it_needs_at_installed_versions(
    tmp_path: Path, frame: pd.DataFrame, features: pd.DataFrame
) -> None:
    xgboost = pytest.importorskip("xgboost")
    model = Pipeline(
        [("scale", StandardScaler()), ("model", xgboost.XGBClassifier(n_estimators=5))]
    ).fit(features, frame["churned"])

    manifest = write_bundle(model, tmp_path / "bundle")

    assert {"scikit-learn", "numpy", "scipy", "xgboost"} <= _names(manifest.requirements)
    for pin in manifest.requirements:
        name, _, version = pin.partition("==")
        assert version == importlib.metadata.version(name), pin


def test_a_lightgbm_model_pins_lightgbm(
    tmp_path: Path, frame: pd.DataFrame, features: pd.DataFrame
) -> None:
    lightgbm = pytest.importorskip("lightgbm")
    model = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(features, frame["churned"])

    manifest = write_bundle(model, tmp_path / "bundle")

    assert manifest.flavor == "lightgbm"
    assert {"lightgbm", "numpy", "scipy"} <= _names(manifest.requirements)
    assert "xgboost" not in _names(manifest.requirements)


def test_signature_from_a_contract_keeps_the_columns_the_model_was_fitted_on(
    tmp_path: Path, classifier: Pipeline
) -> None:
    contract = load_contract(
        {
            "columns": {
                "churned": "int",
                "tenure": {"type": "int", "nullable": False},
                "plan": "category",
                "spend": "float",
            }
        }
    )

    manifest = write_bundle(classifier, tmp_path / "bundle", signature=contract)

    assert manifest.signature.inputs == [
        ColumnSpec("spend", "float", nullable=True),
        ColumnSpec("tenure", "int", nullable=False),
    ]
    outputs = manifest.signature.outputs
    assert outputs is not None
    assert (outputs.type, outputs.classes, outputs.predict_proba) == ("int", [0, 1], True)


def test_a_contract_missing_a_fitted_column_is_refused(
    tmp_path: Path, classifier: Pipeline
) -> None:
    contract = load_contract({"columns": {"spend": "float"}})
    with pytest.raises(ValidationError, match="tenure"):
        write_bundle(classifier, tmp_path / "bundle", signature=contract)


def test_signature_is_inferred_from_the_input_example(tmp_path: Path, frame: pd.DataFrame) -> None:
    regressor = LinearRegression().fit(frame[["tenure", "churned"]], frame["spend"])
    example = frame.head(8)  # spend and plan are not model inputs: left out of the signature

    manifest = write_bundle(regressor, tmp_path / "bundle", input_example=example)

    assert manifest.signature.inputs == [ColumnSpec("tenure", "int"), ColumnSpec("churned", "int")]
    outputs = manifest.signature.outputs
    assert outputs is not None
    assert (outputs.type, outputs.classes, outputs.predict_proba) == ("float", None, False)


def test_an_explicit_signature_is_kept_and_the_example_must_fit_it(
    tmp_path: Path, classifier: Pipeline, features: pd.DataFrame
) -> None:
    signature = Signature([ColumnSpec("spend", "float"), ColumnSpec("tenure", "float")])
    manifest = write_bundle(classifier, tmp_path / "a", signature=signature)
    assert manifest.signature.inputs == signature.inputs

    wrong = Signature([ColumnSpec("spend", "float"), ColumnSpec("tenure", "string")])
    with pytest.raises(ValidationError, match="'tenure' must hold string values"):
        write_bundle(classifier, tmp_path / "b", signature=wrong, input_example=features)


def test_without_signature_or_example_inputs_are_unknown(
    tmp_path: Path, classifier: Pipeline
) -> None:
    manifest = write_bundle(classifier, tmp_path / "bundle")
    assert manifest.signature.inputs is None
    assert manifest.input_example is None
    assert set(manifest.files) == {"model.joblib", "requirements.txt"}


def test_a_folder_with_files_is_refused(tmp_path: Path, classifier: Pipeline) -> None:
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "notes.txt").write_text("mine")
    with pytest.raises(ConflictError, match="new folder"):
        write_bundle(classifier, tmp_path / "bundle")


def test_an_object_without_predict_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="no predict method"):
        write_bundle(Path("not a model"), tmp_path / "bundle")


def test_a_fitted_transformer_is_kept_without_outputs(
    tmp_path: Path, features: pd.DataFrame
) -> None:
    scaler = StandardScaler().fit(features)
    manifest = write_bundle(scaler, tmp_path / "bundle", input_example=features)

    assert manifest.flavor == "sklearn"
    assert manifest.signature.outputs is None
    loaded = loopml.models.load(tmp_path / "bundle")
    with pytest.raises(ValidationError, match="StandardScaler has no predict: it is a transformer"):
        loaded.predict(features)


def test_an_unknown_flavor_is_refused_naming_the_known_ones(
    tmp_path: Path, classifier: Pipeline
) -> None:
    with pytest.raises(ValidationError, match="sklearn, lightgbm, xgboost, python"):
        write_bundle(classifier, tmp_path / "bundle", flavor="tensorflow")


@pytest.fixture
def bundle(tmp_path: Path, classifier: Pipeline, features: pd.DataFrame) -> Path:
    folder = tmp_path / "bundle"
    write_bundle(classifier, folder, input_example=features)
    return folder


def test_verify_returns_the_manifest_of_an_intact_bundle(bundle: Path) -> None:
    assert verify_bundle(bundle).flavor == "sklearn"


def test_a_tampered_file_is_refused_naming_it(bundle: Path) -> None:
    (bundle / "model.joblib").write_bytes((bundle / "model.joblib").read_bytes() + b"\0")
    with pytest.raises(CorruptArtifactError, match=r"'model.joblib'.*changed.*Re-export"):
        verify_bundle(bundle)


def test_a_missing_file_is_refused_naming_it(bundle: Path) -> None:
    (bundle / "requirements.txt").unlink()
    with pytest.raises(CorruptArtifactError, match=r"missing 'requirements.txt'.*register"):
        verify_bundle(bundle)


def test_an_unlisted_file_is_refused(bundle: Path) -> None:
    (bundle / "extra").mkdir()
    (bundle / "extra" / "weights.bin").write_bytes(b"\1")
    with pytest.raises(CorruptArtifactError, match=r"'extra/weights\.bin'.*does not list"):
        verify_bundle(bundle)


def test_a_newer_format_asks_for_a_newer_loopml(bundle: Path) -> None:
    edit_manifest(bundle, format_version=2)
    with pytest.raises(loopml.ConfigError, match="Upgrade loopml"):
        verify_bundle(bundle)


def test_a_folder_without_manifest_is_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(loopml.NotFoundError, match="not a model bundle"):
        verify_bundle(tmp_path)


def test_a_packed_bundle_verifies_and_holds_the_same_files(bundle: Path, tmp_path: Path) -> None:
    archive = pack_bundle(bundle, tmp_path / "out" / "model.tar.gz")

    assert verify_bundle(archive) == verify_bundle(bundle)
    with tarfile.open(archive) as packed:
        names = sorted(packed.getnames())
    assert names == sorted(p.name for p in bundle.iterdir())


def test_a_tampered_bundle_is_not_packed(bundle: Path, tmp_path: Path) -> None:
    (bundle / "input_example.json").write_text("[]")
    with pytest.raises(CorruptArtifactError, match=r"input_example\.json"):
        pack_bundle(bundle, tmp_path / "model.tar.gz")
    assert not (tmp_path / "model.tar.gz").exists()


def test_an_archive_reaching_outside_its_folder_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as packed:
        member = tarfile.TarInfo("../escaped.txt")
        member.size = 3
        packed.addfile(member, io.BytesIO(b"bad"))

    with pytest.raises(CorruptArtifactError, match="Cannot extract"):
        verify_bundle(archive)
    assert not list(tmp_path.parent.glob("**/escaped.txt"))
