"""Loading bundles: round trips, compatibility checks, input checks, runs and the cache."""

from __future__ import annotations

import importlib.metadata
import shutil
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from packaging.version import Version
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline

import loopml
from loopml.errors import (
    CorruptArtifactError,
    IncompatibleModelError,
    ModelLoadError,
    NotFoundError,
    ValidationError,
)
from loopml.models import (
    FLAVORS,
    MANIFEST_NAME,
    ColumnSpec,
    LoadedModel,
    ModelVersionWarning,
    Signature,
    flavor_named,
    load,
    pack_bundle,
    write_bundle,
)
from tests.models.conftest import edit_manifest, rewrite_file


class ThresholdModel:
    """A plain Python model (the ``python`` flavor): churn when spend is low."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def predict(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        return (frame["spend"] < self.threshold).to_numpy(dtype=int)


def _sklearn(features: pd.DataFrame, target: pd.Series) -> Any:
    return RandomForestClassifier(n_estimators=10, random_state=0).fit(features, target)


def _lightgbm(features: pd.DataFrame, target: pd.Series) -> Any:
    lightgbm = pytest.importorskip("lightgbm")
    return lightgbm.LGBMClassifier(n_estimators=10, verbose=-1).fit(features, target)


def _xgboost(features: pd.DataFrame, target: pd.Series) -> Any:
    xgboost = pytest.importorskip("xgboost")
    return xgboost.XGBClassifier(n_estimators=10, max_depth=3).fit(features, target)


def _python(features: pd.DataFrame, target: pd.Series) -> Any:
    return ThresholdModel(50.0)


@pytest.mark.parametrize(
    ("flavor", "fit"),
    [("sklearn", _sklearn), ("lightgbm", _lightgbm), ("xgboost", _xgboost), ("python", _python)],
)
def test_each_flavor_round_trips_with_equal_predictions(
    tmp_path: Path,
    frame: pd.DataFrame,
    features: pd.DataFrame,
    flavor: str,
    fit: Callable[[pd.DataFrame, pd.Series], Any],
) -> None:
    model = fit(features, frame["churned"])
    write_bundle(model, tmp_path / "bundle", input_example=features)

    loaded = load(tmp_path / "bundle")

    assert loaded.manifest.flavor == flavor
    assert type(loaded.model) is type(model)
    np.testing.assert_array_equal(loaded.predict(features), model.predict(features))
    if hasattr(model, "predict_proba"):
        assert loaded.classes == [0, 1]
        np.testing.assert_allclose(
            loaded.predict_proba(features), model.predict_proba(features), rtol=0, atol=0
        )


def test_an_archive_loads_like_its_folder(
    tmp_path: Path, classifier: Pipeline, features: pd.DataFrame
) -> None:
    write_bundle(classifier, tmp_path / "bundle", input_example=features)
    archive = pack_bundle(tmp_path / "bundle", tmp_path / "model.tar.gz")
    shutil.rmtree(tmp_path / "bundle")

    loaded = load(str(archive))

    np.testing.assert_array_equal(loaded.predict(features), classifier.predict(features))


def test_an_archive_of_the_bundle_folder_itself_loads(
    tmp_path: Path, classifier: Pipeline, features: pd.DataFrame
) -> None:
    write_bundle(classifier, tmp_path / "churn")
    with tarfile.open(tmp_path / "churn.tgz", "w:gz") as packed:
        packed.add(tmp_path / "churn", arcname="churn")  # as `tar czf churn.tgz churn/` does

    loaded = load(tmp_path / "churn.tgz")

    np.testing.assert_array_equal(loaded.predict(features), classifier.predict(features))


@pytest.fixture
def bundle(tmp_path: Path, classifier: Pipeline, features: pd.DataFrame) -> Path:
    folder = tmp_path / "bundle"
    write_bundle(classifier, folder, input_example=features)
    return folder


def _with_pin(bundle: Path, distribution: str, version: str) -> None:
    """Rewrites one requirement pin in the manifest and in requirements.txt."""
    manifest = loopml.models.verify_bundle(bundle)
    pins = [p for p in manifest.requirements if not p.startswith(f"{distribution}==")]
    pins.append(f"{distribution}=={version}")
    rewrite_file(bundle, "requirements.txt", "".join(f"{p}\n" for p in pins).encode())
    edit_manifest(bundle, requirements=pins)


def _installed(distribution: str) -> Version:
    return Version(importlib.metadata.version(distribution))


def test_another_major_version_is_refused_with_the_pip_command(bundle: Path) -> None:
    wanted = f"{_installed('scikit-learn').major + 1}.0.0"
    _with_pin(bundle, "scikit-learn", wanted)

    with pytest.raises(IncompatibleModelError) as raised:
        load(bundle)
    message = str(raised.value)
    assert f"scikit-learn=={wanted} (installed: {importlib.metadata.version('scikit-learn')})" in (
        message
    )
    assert f"pip install 'scikit-learn=={wanted}'" in message


def test_a_missing_distribution_is_refused(bundle: Path) -> None:
    _with_pin(bundle, "loopml-no-such-dist", "1.0.0")
    with pytest.raises(
        IncompatibleModelError, match=r"loopml-no-such-dist==1.0.0 \(installed: none"
    ):
        load(bundle)


def test_another_python_major_version_is_refused(bundle: Path) -> None:
    edit_manifest(bundle, python="4.0.0")
    with pytest.raises(IncompatibleModelError, match=r"Python 4.0.0 \(this is Python 3"):
        load(bundle)


def test_another_minor_version_warns_and_loads(
    bundle: Path, classifier: Pipeline, features: pd.DataFrame
) -> None:
    installed = _installed("numpy")
    other = f"{installed.major}.{installed.minor + 1}.0"
    _with_pin(bundle, "numpy", other)

    with pytest.warns(ModelVersionWarning, match=f"numpy=={other}"):
        loaded = load(bundle)
    np.testing.assert_array_equal(loaded.predict(features), classifier.predict(features))


def test_a_corrupted_pickle_gives_a_load_error_naming_the_file(bundle: Path) -> None:
    rewrite_file(bundle, "model.joblib", b"this is not a pickle")
    with pytest.raises(ModelLoadError, match=r"'model.joblib'.*Likely cause"):
        load(bundle)


def test_a_class_that_is_not_importable_is_explained(bundle: Path) -> None:
    edit_manifest(bundle, model_class="__main__.Gone")
    data = (bundle / "model.joblib").read_bytes().replace(b"sklearn.pipeline", b"sklearn.pipelinx")
    rewrite_file(bundle, "model.joblib", data)
    with pytest.raises(ModelLoadError, match=r"__main__.Gone is not importable"):
        load(bundle)


def test_an_unknown_flavor_is_refused_asking_for_an_upgrade(bundle: Path) -> None:
    edit_manifest(bundle, flavor="tensorflow")
    with pytest.raises(IncompatibleModelError, match=r"flavor 'tensorflow'.*Upgrade loopml"):
        load(bundle)


def test_a_flavor_in_its_own_module_is_imported_when_a_bundle_names_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(FLAVORS, "onnx", raising=False)
    monkeypatch.delitem(sys.modules, "loopml.models.onnx", raising=False)
    flavor = flavor_named("onnx")
    assert flavor is not None and flavor.model_file == "model.onnx"


def test_a_tampered_bundle_is_not_loaded(bundle: Path) -> None:
    (bundle / "model.joblib").write_bytes(b"swapped")
    with pytest.raises(CorruptArtifactError, match=r"model\.joblib"):
        load(bundle)


def test_nothing_at_the_path_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="runs:/"):
        load(tmp_path / "nowhere")


# -- input checks ---------------------------------------------------------------------


@pytest.fixture
def loaded(bundle: Path) -> LoadedModel:
    return load(bundle)


def test_a_missing_column_lists_it_and_the_expected_ones(loaded: LoadedModel) -> None:
    with pytest.raises(ValidationError) as raised:
        loaded.predict([{"spend": 10.0}])
    assert "missing column 'tenure'" in str(raised.value)
    assert "The model takes 'spend', 'tenure'" in str(raised.value)


def test_text_in_a_numeric_column_names_column_type_and_value(loaded: LoadedModel) -> None:
    rows = [{"spend": 10.0, "tenure": 3}, {"spend": "lots", "tenure": 4}]
    with pytest.raises(ValidationError, match=r"'spend' must hold float.*'lots'.*row 1"):
        loaded.predict(rows)


def test_a_fraction_in_an_int_column_is_refused(loaded: LoadedModel) -> None:
    with pytest.raises(ValidationError, match=r"'tenure' must hold int.*2.5"):
        loaded.predict(pd.DataFrame({"spend": [1.0], "tenure": [2.5]}))


def test_inputs_are_reordered_converted_and_extras_dropped(
    loaded: LoadedModel, classifier: Pipeline, features: pd.DataFrame
) -> None:
    records = [
        {"tenure": int(tenure), "note": "x", "spend": int(spend)}  # ints for a float column
        for spend, tenure in zip(features["spend"], features["tenure"], strict=True)
    ]
    expected = pd.DataFrame(records)[["spend", "tenure"]].astype({"spend": float})

    prepared = loaded.prepare(records)

    assert list(prepared.columns) == ["spend", "tenure"]
    assert prepared.dtypes.to_dict() == {"spend": np.float64, "tenure": np.int64}
    np.testing.assert_array_equal(loaded.predict(records), classifier.predict(expected))


def test_numbers_written_as_text_are_converted(loaded: LoadedModel) -> None:
    prepared = loaded.prepare([{"spend": "12.5", "tenure": "3"}, {"spend": None, "tenure": 4.0}])
    assert prepared["spend"].tolist()[0] == 12.5 and np.isnan(prepared["spend"].iloc[1])
    assert prepared["tenure"].tolist() == [3, 4]
    assert prepared["tenure"].dtype == np.int64


def test_a_frame_already_right_is_used_as_it_is(
    loaded: LoadedModel, features: pd.DataFrame
) -> None:
    assert loaded.prepare(features) is features


@pytest.fixture
def typed(tmp_path: Path) -> LoadedModel:
    """A model whose signature has a column of each non-numeric kind."""
    signature = Signature(
        [
            ColumnSpec("spend", "float"),
            ColumnSpec("seen", "datetime"),
            ColumnSpec("active", "bool"),
            ColumnSpec("plan", "category"),
        ]
    )
    write_bundle(ThresholdModel(50.0), tmp_path / "typed", signature=signature)
    return load(tmp_path / "typed")


def test_times_written_as_iso_text_and_bools_and_text_are_taken(typed: LoadedModel) -> None:
    records = [
        {"spend": 1, "seen": "2024-05-01T10:00:00", "active": True, "plan": "pro"},
        {"spend": 90.5, "seen": None, "active": None, "plan": None},
    ]
    prepared = typed.prepare(records)
    assert prepared["seen"].tolist()[0] == pd.Timestamp("2024-05-01 10:00:00")
    assert pd.isna(prepared["seen"].iloc[1])
    assert typed.predict(records).tolist() == [1, 0]


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("seen", "yesterday", r"'seen' must hold datetime values.*'yesterday'"),
        ("seen", 1714557600, r"'seen' must hold datetime values.*1714557600"),
        ("active", "yes", r"'active' must hold bool values.*'yes'"),
        ("plan", 3, r"'plan' must hold category values.*3 \(int\)"),
    ],
)
def test_values_of_the_wrong_type_are_refused(
    typed: LoadedModel, column: str, value: object, message: str
) -> None:
    record = {"spend": 1.0, "seen": "2024-05-01", "active": False, "plan": "pro", column: value}
    with pytest.raises(ValidationError, match=message):
        typed.predict([record])


def test_predict_proba_of_a_regressor_is_a_clear_error(tmp_path: Path, frame: pd.DataFrame) -> None:
    regressor = LinearRegression().fit(frame[["tenure"]], frame["spend"])
    write_bundle(regressor, tmp_path / "bundle", input_example=frame[["tenure"]])

    with pytest.raises(ValidationError, match="LinearRegression has no predict_proba"):
        load(tmp_path / "bundle").predict_proba(frame[["tenure"]])


def test_bad_input_kinds_are_refused(loaded: LoadedModel) -> None:
    with pytest.raises(ValidationError, match="list of records"):
        loaded.predict("spend=1")


# -- runs and the cache -----------------------------------------------------------------


def test_a_run_model_loads_through_the_workspace(
    sqlite_workspace: loopml.Workspace, classifier: Pipeline, features: pd.DataFrame
) -> None:
    with sqlite_workspace.start_run() as run:
        run.log_model(classifier, "churn", input_example=features)

    by_uri = load(f"runs:/{run.id}/churn", workspace=sqlite_workspace)
    np.testing.assert_array_equal(by_uri.predict(features), classifier.predict(features))
    assert by_uri.signature.input_names == ["spend", "tenure"]

    with sqlite_workspace.start_run() as other:
        other.log_model(classifier)
    by_run = load(other)
    np.testing.assert_array_equal(by_run.predict(features), classifier.predict(features))


def test_a_training_result_loads_its_run_model(
    sqlite_workspace: loopml.Workspace, frame: pd.DataFrame
) -> None:
    result = sqlite_workspace.train(LinearRegression(), data=frame, target="spend")
    rows = frame.drop(columns="spend").head(5)
    np.testing.assert_allclose(load(result).predict(rows), result.model.predict(rows))


def test_a_second_load_reads_the_cache_not_the_store(
    sqlite_workspace: loopml.Workspace, classifier: Pipeline, features: pd.DataFrame
) -> None:
    with sqlite_workspace.start_run() as run:
        run.log_model(classifier)
    first = load(f"runs:/{run.id}/model", workspace=sqlite_workspace)
    manifest_sha = run.artifacts(f"model/{MANIFEST_NAME}")[0].sha256
    cached = sqlite_workspace.settings.home / "cache" / "models" / manifest_sha
    assert sorted(p.name for p in cached.iterdir()) == sorted(
        [MANIFEST_NAME, *first.manifest.files]
    )

    for artifact in run.artifacts("model"):  # the store no longer has the files
        sqlite_workspace.artifacts.delete(artifact.sha256)

    second = load(f"runs:/{run.id}/model", workspace=sqlite_workspace)
    np.testing.assert_array_equal(second.predict(features), classifier.predict(features))


def test_a_damaged_cache_copy_is_fetched_again(
    sqlite_workspace: loopml.Workspace, classifier: Pipeline, features: pd.DataFrame
) -> None:
    with sqlite_workspace.start_run() as run:
        run.log_model(classifier)
    load(run)
    [cached] = (sqlite_workspace.settings.home / "cache" / "models").iterdir()
    (cached / "model.joblib").write_bytes(b"damaged")

    again = load(run)

    np.testing.assert_array_equal(again.predict(features), classifier.predict(features))


def test_a_run_without_a_bundle_is_not_found(sqlite_workspace: loopml.Workspace) -> None:
    with sqlite_workspace.start_run() as run:
        run.log_text("hello", "notes.txt")
    with pytest.raises(NotFoundError, match=r"no model bundle at 'model'.*log_model"):
        load(f"runs:/{run.id}/model", workspace=sqlite_workspace)


def test_the_default_workspace_is_opened_for_a_run_uri(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    classifier: Pipeline,
    features: pd.DataFrame,
) -> None:
    monkeypatch.setenv("LOOPML_HOME", str(tmp_path / "home"))
    with loopml.Workspace.open() as ws, ws.start_run() as run:
        run.log_model(classifier)

    loaded = load(f"runs:/{run.id}/model")

    np.testing.assert_array_equal(loaded.predict(features), classifier.predict(features))
