"""Reference profiles: stored with each version at training or registration, for monitoring."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.errors import CorruptArtifactError, ValidationError
from loopml.models.reference import Reference, build_reference
from tests.evaluation._samples import binary_frame
from tests.registry._samples import trained

FEATURES = ["tenure", "spend", "region"]


def test_a_trained_version_carries_its_training_and_prediction_profile(
    sqlite_workspace: loopml.Workspace,
) -> None:
    ws = sqlite_workspace
    result = trained(ws)
    version = ws.registry.register(result, name="churn")
    reference = ws.registry.reference(version.uri)
    assert reference is not None
    assert list(reference.features) == FEATURES
    rows = ws.data.get("churn")
    # fit on the train part (80 % of 400 rows); predictions summarised on the 20 % held out
    assert reference.features.rows == 320
    assert reference.features["region"].kind == "categorical"
    assert reference.predictions is not None and reference.predictions.rows == 80
    assert set(reference.predictions) == {"prediction", "proba_0", "proba_1"}
    assert reference.predictions["prediction"].kind == "categorical"
    # a summary of the same data (the train part of it), not of something else
    spend = rows["spend"]
    assert reference.features["spend"].mean == pytest.approx(spend.mean(), abs=0.2 * spend.std())
    assert reference.features["spend"].std == pytest.approx(spend.std(), rel=0.15)


def test_an_object_registered_with_reference_data(sqlite_workspace: loopml.Workspace) -> None:
    frame = binary_frame(300)
    numeric = frame[["tenure", "spend"]]
    model = LogisticRegression(max_iter=500).fit(numeric, frame["churned"])
    version = sqlite_workspace.registry.register(model, "plain", reference_data=numeric)
    reference = sqlite_workspace.registry.reference(version.uri)
    assert reference is not None and reference.features.rows == 300
    assert list(reference.features) == ["tenure", "spend"]
    # and the bundle still loads and verifies with the extra file
    loaded = sqlite_workspace.registry.load(version.uri)
    assert len(loaded.predict(numeric.head(3))) == 3


def test_set_reference_replaces_the_profile_and_keeps_the_bundle_loadable(
    sqlite_workspace: loopml.Workspace,
) -> None:
    ws = sqlite_workspace
    frame = binary_frame(200)
    model = LogisticRegression(max_iter=500).fit(frame[["tenure", "spend"]], frame["churned"])
    version = ws.registry.register(model, "plain", input_example=frame[["tenure", "spend"]].head())
    assert ws.registry.reference(version.uri) is None  # no data given: no profile
    shifted = frame.assign(spend=frame["spend"] + 1000)
    ws.registry.set_reference(version.uri, shifted)
    reference = ws.registry.reference(version.uri)
    assert reference is not None and reference.features["spend"].mean == pytest.approx(
        shifted["spend"].mean()
    )
    assert list(reference.features) == ["tenure", "spend"]  # the signature's columns only
    assert ws.registry.load(version.uri).predict(frame[["tenure", "spend"]].head(2)).shape == (2,)


def test_bad_reference_input(sqlite_workspace: loopml.Workspace) -> None:
    frame = binary_frame(50)
    model = LogisticRegression(max_iter=200).fit(frame[["tenure", "spend"]], frame["churned"])
    with pytest.raises(ValidationError, match="lack the model's input column"):
        build_reference(model, frame[["tenure"]], columns=["tenure", "spend"])
    with pytest.raises(ValidationError, match="empty"):
        build_reference(model, frame.head(0), columns=["tenure", "spend"])
    good = build_reference(model, frame, columns=["tenure", "spend"]).to_dict()
    with pytest.raises(ValidationError, match="Upgrade loopml"):
        Reference.from_dict({**good, "format": 99})
    with pytest.raises(CorruptArtifactError, match="set_reference"):
        Reference.from_dict({"format": 1})


def test_a_model_that_cannot_predict_still_gets_a_feature_profile() -> None:
    class Broken:
        def predict(self, rows: object) -> np.ndarray:
            raise RuntimeError("no")

    frame = binary_frame(40)
    reference = build_reference(Broken(), frame, columns=["tenure", "spend"])
    assert reference.predictions is None and reference.features.rows == 40
    assert json.loads(json.dumps(reference.to_dict()))["predictions"] is None
