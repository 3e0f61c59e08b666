"""The registry: versions, references, aliases, protected promotion, approvals, rollback."""

from __future__ import annotations

import pytest

import loopml
from loopml.errors import ConflictError, NotFoundError, ValidationError
from tests.registry._samples import FAILING, PASSING, gate, registered, trained


class Doubler:
    """A model of no known library: the ``python`` flavor, beyond ONNX."""

    def predict(self, frame):  # type: ignore[no-untyped-def]
        return (frame.iloc[:, 0] * 2 > 0).astype(int).to_numpy()


def test_register_numbers_versions_and_returns_the_existing_one_for_the_same_run(
    workspace: loopml.Workspace,
) -> None:
    first, second = trained(workspace), trained(workspace, c=0.1)
    v1 = workspace.registry.register(
        first, name="churn", description="baseline", tags={"team": "a"}
    )
    v2 = workspace.registry.register(second.run, name="churn")
    again = workspace.registry.register(f"runs:/{first.run.id}/model", name="churn")

    assert (v1.version, v2.version, again.version) == (1, 2, 1)
    assert again.run_id == first.run.id and again.uri == "models:/churn/1"
    assert v1.flavor == "sklearn" and v1.description == "baseline" and v1.tags == {"team": "a"}
    assert [v.version for v in workspace.registry.versions("churn")] == [1, 2]
    # The version owns references to the run's bundle files: same content, no copies.
    run_files = {a.path.removeprefix("model/"): a.sha256 for a in first.run.artifacts("model/")}
    assert {path: sha for path, sha, _ in v1.files()} == run_files
    assert "loopml-model.yaml" in run_files


def test_register_a_model_object_and_a_bundle_folder(
    sqlite_workspace: loopml.Workspace, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression

    from loopml.models import write_bundle
    from tests.evaluation._samples import binary_frame, binary_model

    frame = binary_frame(200)
    model = binary_model(frame)
    from_object = sqlite_workspace.registry.register(
        model, name="plain", input_example=frame[["tenure", "spend"]].head(3)
    )
    assert from_object.run.tags["loopml.registered_from"] == "object"
    assert from_object.source.startswith("object sklearn.linear_model")

    write_bundle(LogisticRegression().fit(frame[["tenure"]], frame["churned"]), tmp_path / "b")
    from_bundle = sqlite_workspace.registry.register(tmp_path / "b", name="plain")
    assert from_bundle.version == 2 and from_bundle.source.startswith("bundle ")
    loaded = sqlite_workspace.registry.load("models:/plain/2")
    assert list(loaded.predict(frame[["tenure"]].head(5))) == list(
        loaded.model.predict(frame[["tenure"]].head(5))
    )


def test_a_tampered_bundle_is_refused_and_nothing_is_registered(
    sqlite_workspace: loopml.Workspace, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from loopml.errors import CorruptArtifactError
    from loopml.models import write_bundle
    from tests.evaluation._samples import binary_frame, binary_model

    frame = binary_frame(200)
    write_bundle(binary_model(frame), tmp_path / "b")
    model_file = next(p for p in (tmp_path / "b").iterdir() if p.suffix == ".joblib")
    model_file.write_bytes(model_file.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(CorruptArtifactError):
        sqlite_workspace.registry.register(tmp_path / "b", name="tampered")
    with pytest.raises(NotFoundError):
        sqlite_workspace.registry.model("tampered")


def test_references_resolve_everywhere_and_bad_ones_say_what_to_do(
    workspace: loopml.Workspace,
) -> None:
    v1, v2 = registered(workspace, 2)
    workspace.registry.promote("churn", 1, "staging")
    registry = workspace.registry

    assert registry.get("models:/churn/2") == v2
    assert registry.get("models:/churn@staging") == v1
    assert registry.get("models:/churn/latest") == v2
    assert registry.get("churn", 1) == v1

    malformed_references = [
        "models:/", "models:/churn", "models:/churn/", "models:/churn/x",
        "models:/churn@", "models:/churn/0", "models:/ch urn/1", "model:/churn/1",
    ]  # fmt: skip
    for malformed in malformed_references:
        with pytest.raises(ValidationError, match=r"models:/<name>|count from 1"):
            registry.get(malformed)
    with pytest.raises(NotFoundError, match="No registered model 'nope'"):
        registry.get("models:/nope/1")
    with pytest.raises(NotFoundError, match=r"no version 9|Version 9 .* does not exist"):
        registry.get("models:/churn/9")
    with pytest.raises(NotFoundError, match=r"no alias 'production'.*staging -> 1"):
        registry.get("models:/churn@production")


def test_non_protected_aliases_move_freely_and_every_move_is_an_event(
    workspace: loopml.Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    registered(workspace, 2)
    monkeypatch.setenv("LOOPML_USER", "ana")
    first = workspace.registry.promote("churn", 1, "staging", reason="first try")
    second = workspace.registry.promote("churn", 2, "staging")
    assert workspace.registry.promote("churn", 2, "staging") is None  # already there

    assert first is not None and second is not None
    assert (first.from_version, first.to_version, first.user, first.reason) == (
        None,
        1,
        "ana",
        "first try",
    )
    assert (second.from_version, second.to_version) == (1, 2)
    assert [e.to_version for e in workspace.registry.history("churn")] == [1, 2]
    assert workspace.registry.get("models:/churn/2").aliases == ["staging"]
    assert workspace.registry.model("churn").aliases == {"staging": 2}


def test_a_protected_alias_needs_a_passing_gate_against_the_current_holder(
    sqlite_workspace: loopml.Workspace,
) -> None:
    ws = sqlite_workspace
    registered(ws, 3)
    with pytest.raises(ConflictError, match=r"protected alias.*has none"):
        ws.registry.promote("churn", 1, "production")
    assert ws.registry.history("churn") == []

    gate(ws, "models:/churn/1", PASSING, champion=None)
    first = ws.registry.promote("churn", 1, "production", reason="first model")
    assert first is not None and first.gate_id is not None

    # A gate that failed against the holder refuses, and names the failed check.
    gate(ws, "models:/churn/2", FAILING, champion="models:/churn@production")
    with pytest.raises(ConflictError, match=r"failed its gate .* roc_auc >= 0.999"):
        ws.registry.promote("churn", 2, "production")
    # A gate against another champion than the holder does not count.
    gate(ws, "models:/churn/3", PASSING, champion="models:/churn/2")
    with pytest.raises(ConflictError, match="has none"):
        ws.registry.promote("churn", 3, "production")

    gate(ws, "models:/churn/3", PASSING, champion="models:/churn@production")
    assert ws.registry.promote("churn", 3, "production") is not None
    assert ws.registry.get("models:/churn@production").version == 3

    with pytest.raises(ValidationError, match="needs a reason"):
        ws.registry.promote("churn", 2, "production", force=True)
    forced = ws.registry.promote("churn", 2, "production", force=True, reason="hotfix")
    assert forced is not None and forced.forced and forced.reason == "hotfix"
    assert [(e.from_version, e.to_version, e.forced) for e in ws.registry.history("churn")] == [
        (None, 1, False),
        (1, 3, False),
        (3, 2, True),
    ]


def test_approvals_by_distinct_users(
    tmp_path,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.setenv("LOOPML_REQUIRED_APPROVALS", "2")
    with loopml.Workspace.open(tmp_path / "ws") as ws:
        registered(ws, 1)
        gate(ws, "models:/churn/1", PASSING, champion=None)
        monkeypatch.setenv("LOOPML_USER", "ana")
        assert ws.registry.approve("churn", 1, "production") is True
        assert ws.registry.approve("churn", 1, "production") is False  # counted once
        with pytest.raises(ConflictError, match=r"needs 2 approvals .* has 1 \(ana\)"):
            ws.registry.promote("churn", 1, "production")
        monkeypatch.setenv("LOOPML_USER", "ben")
        ws.registry.approve("churn", 1, "production", comment="looks fine")
        event = ws.registry.promote("churn", 1, "production")
        assert event is not None and event.approvals == ["ana", "ben"]


def test_rollback_walks_back_through_the_holders(workspace: loopml.Workspace) -> None:
    registered(workspace, 3)
    for number in (1, 2, 3):
        workspace.registry.promote("churn", number, "champion")
    back = workspace.registry.rollback("churn", "champion", reason="bad latency")
    assert (back.from_version, back.to_version, back.action) == (3, 2, "rollback")
    assert workspace.registry.rollback("churn", "champion").to_version == 1
    with pytest.raises(ConflictError, match="nothing to roll back"):
        workspace.registry.rollback("churn", "champion")
    with pytest.raises(NotFoundError, match="no alias 'other'"):
        workspace.registry.rollback("churn", "other")
    assert workspace.registry.get("models:/churn@champion").version == 1


def test_a_version_an_alias_points_at_cannot_be_deleted(workspace: loopml.Workspace) -> None:
    v1, _v2 = registered(workspace, 2)
    workspace.registry.promote("churn", 1, "staging")
    with pytest.raises(ConflictError, match="holds the alias"):
        workspace.registry.delete_version("churn", 1)
    assert workspace.registry.get("models:/churn/1") == v1

    workspace.registry.delete_version("churn", 2)
    with pytest.raises(NotFoundError, match="was deleted"):
        workspace.registry.get("models:/churn/2")
    assert workspace.registry.get("models:/churn/latest") == v1
    # Its run is the version's lineage: deleting it is refused while the version lives.
    with pytest.raises(ConflictError, match="models:/churn/1"):
        workspace.delete_run(v1.run_id)
    report = workspace.gc(grace_seconds=0)
    assert report.model_versions == 1
    assert [v.version for v in workspace.registry.versions("churn", include_deleted=True)] == [1]
    assert workspace.registry.load("models:/churn/1").predict is not None


def test_gc_keeps_the_run_and_files_of_a_live_version(sqlite_workspace: loopml.Workspace) -> None:
    ws = sqlite_workspace
    (version,) = registered(ws, 1)
    ws.delete_experiment("churn")
    ws.gc(grace_seconds=0)
    loaded = ws.registry.load(version.uri)  # files still there, run still there
    assert version.run.id == version.run_id and loaded.signature is not None


def test_evaluate_and_gate_take_registry_references(sqlite_workspace: loopml.Workspace) -> None:
    ws = sqlite_workspace
    registered(ws, 2)
    gate(ws, "models:/churn/1", PASSING, champion=None)
    ws.registry.promote("churn", 1, "production")
    evaluation = ws.evaluate("models:/churn@production", data="churn", target="churned")
    assert evaluation.run_id == ws.registry.get("models:/churn/1").run_id
    result = gate(ws, "models:/churn/2", {"checks": ["roc_auc >= champion.roc_auc - 0.5"]},
                  champion="models:/churn@production")  # fmt: skip
    assert result.champion_run_id == ws.registry.get("models:/churn/1").run_id
    assert result.passed


def test_loopml_models_load_takes_a_registry_reference(sqlite_workspace: loopml.Workspace) -> None:
    from tests.evaluation._samples import binary_frame

    (version,) = registered(sqlite_workspace, 1)
    sqlite_workspace.registry.promote("churn", 1, "staging")
    loaded = loopml.models.load("models:/churn@staging", workspace=sqlite_workspace)
    rows = binary_frame(20)
    assert list(loaded.predict(rows)) == list(version.run.load_model().predict(rows))
    with pytest.raises(ValidationError, match="tenure"):
        loaded.predict(rows.drop(columns=["tenure"]))
