"""Workspace-level lifecycle: soft delete, restore and garbage collection of runs and artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest

import loopml
from tests.conftest import S3Backend


def _objects(ws: loopml.Workspace) -> set[str]:
    root = Path(ws.artifacts.root, "objects")
    return {p.parent.name + p.name for p in root.rglob("*") if p.is_file()}


def test_deleted_runs_are_hidden_and_can_be_restored(workspace: loopml.Workspace) -> None:
    with workspace.start_run(experiment="e", run_name="keep"):
        pass
    with workspace.start_run(experiment="e", run_name="drop") as drop:
        with workspace.start_run(experiment="e", run_name="drop-child"):
            pass
    workspace.delete_run(drop.id)
    assert list(workspace.search_runs("e")["run_name"]) == ["keep"]
    assert len(workspace.search_runs("e", include_deleted=True)) == 3
    assert drop.info.deleted
    workspace.restore_run(drop.id)
    assert set(workspace.search_runs("e")["run_name"]) == {"keep", "drop", "drop-child"}


def test_deleted_experiments_can_be_restored(workspace: loopml.Workspace) -> None:
    with workspace.start_run(experiment="old"):
        pass
    workspace.delete_experiment("old")
    assert "old" not in [e.name for e in workspace.experiments()]
    with pytest.raises(loopml.ValidationError, match="restore"):
        workspace.start_run(experiment="old")
    workspace.restore_experiment("old")
    assert len(workspace.search_runs("old")) == 1
    with pytest.raises(loopml.NotFoundError):
        workspace.delete_experiment("never-was")


def test_gc_removes_deleted_runs_and_frees_their_artifacts(workspace: loopml.Workspace) -> None:
    with workspace.start_run(experiment="e") as doomed:
        doomed.log_text("only mine", "mine.txt")
        doomed.log_text("shared bytes", "shared.txt")
        doomed.log_metric("m", 1.0)
    with workspace.start_run(experiment="e") as survivor:
        survivor.log_text("shared bytes", "also-shared.txt")
    mine = doomed.artifacts("mine.txt")[0].sha256
    shared = doomed.artifacts("shared.txt")[0].sha256
    workspace.delete_run(doomed.id)
    report = workspace.gc(grace_seconds=0)
    assert report.runs == 1
    assert report.blobs == 1 and report.bytes_freed == len("only mine")
    assert mine not in _objects(workspace)
    assert shared in _objects(workspace)
    assert survivor.read_artifact("also-shared.txt") == b"shared bytes"
    with pytest.raises(loopml.NotFoundError):
        workspace.get_run(doomed.id)


def test_gc_removes_deleted_experiments_with_their_runs(workspace: loopml.Workspace) -> None:
    with workspace.start_run(experiment="gone") as run:
        run.log_text("bytes", "a.txt")
    workspace.delete_experiment("gone")
    report = workspace.gc(grace_seconds=0)
    assert (report.runs, report.experiments, report.blobs) == (1, 1, 1)
    assert "gone" not in [e.name for e in workspace.experiments(include_deleted=True)]
    with workspace.start_run(experiment="gone"):
        pass  # the name is free again


def test_gc_spares_recent_unreferenced_artifacts(workspace: loopml.Workspace) -> None:
    with workspace.start_run() as run:
        run.log_text("fresh", "f.txt")
    workspace.delete_run(run.id)
    report = workspace.gc(grace_seconds=3600)
    assert report.runs == 1 and report.blobs == 0
    assert len(_objects(workspace)) >= 1
    assert workspace.gc(grace_seconds=0).blobs == 1


def test_gc_keeps_live_runs_untouched(workspace: loopml.Workspace) -> None:
    with workspace.start_run() as run:
        run.log_text("live", "l.txt")
        run.log_metric("m", 2.0)
    assert workspace.gc(grace_seconds=0) == loopml.GcReport(0, 0, 0, 0)
    assert run.read_artifact("l.txt") == b"live"
    assert run.metrics == {"m": 2.0}


def test_close_ends_runs_left_open(tmp_path: Path) -> None:
    ws = loopml.Workspace.open(tmp_path)
    run = ws.start_run()
    run.log_metric("m", 1.0)
    ws.close()
    reopened = loopml.Workspace.open(tmp_path)
    assert reopened.get_run(run.id).info.status == "FINISHED"
    assert reopened.get_run(run.id).metrics == {"m": 1.0}
    reopened.close()


def test_gc_frees_objects_a_crashed_writer_never_recorded(workspace: loopml.Workspace) -> None:
    orphan = workspace.artifacts.put_bytes(b"stored, then the process died")
    leftover = Path(workspace.artifacts.root, "tmp", "half-written")
    leftover.write_bytes(b"partial")
    with workspace.start_run() as run:
        run.log_text("recorded", "r.txt")
    assert workspace.gc(grace_seconds=3600).blobs == 0  # too recent to be sure
    report = workspace.gc(grace_seconds=0)
    assert report.blobs == 1 and report.bytes_freed == len(b"stored, then the process died")
    assert not workspace.artifacts.exists(orphan.sha256)
    assert not leftover.exists()
    assert run.read_artifact("r.txt") == b"recorded"


@pytest.mark.s3
def test_a_workspace_with_artifacts_on_s3(tmp_path: Path, s3_backend: S3Backend) -> None:
    ws = loopml.Workspace.open(
        tmp_path, artifacts_url=s3_backend.url(), artifacts_options=s3_backend.options()
    )
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"\x00" * 100_000)
    with ws.start_run() as kept:
        kept.log_artifact(folder)
        kept.log_text("shared", "s.txt")
    with ws.start_run() as dropped:
        dropped.log_text("shared", "s.txt")
        dropped.log_text("only here", "o.txt")
    assert kept.read_artifact("model/weights.bin") == b"\x00" * 100_000
    ws.delete_run(dropped.id)
    report = ws.gc(grace_seconds=0)
    assert (report.runs, report.blobs, report.bytes_freed) == (1, 1, len("only here"))
    assert len(s3_backend.keys("objects/")) == 2
    assert kept.read_artifact("s.txt") == b"shared"
    ws.close()


def test_runs_of_a_deleted_experiment_are_hidden(workspace: loopml.Workspace) -> None:
    with workspace.start_run(experiment="gone"):
        pass
    with workspace.start_run(experiment="kept"):
        pass
    workspace.delete_experiment("gone")
    assert list(workspace.search_runs()["experiment"]) == ["kept"]
    frame = workspace.search_runs(include_deleted=True).set_index("experiment")
    assert frame.loc["gone", "deleted"] and not frame.loc["kept", "deleted"]


def test_count_runs_matches_search_at_any_page_size(workspace: loopml.Workspace) -> None:
    for value in range(7):
        with workspace.start_run(experiment="c") as run:
            if value % 2:
                run.log_metric("auc", value / 10)
    assert workspace.count_runs("c") == 7
    assert workspace.count_runs("c", filter="metrics.auc > 0.2") == 2
    assert workspace.count_runs(filter="metrics.auc is null") == 4


def test_gc_dry_run_reports_and_changes_nothing(workspace: loopml.Workspace) -> None:
    with workspace.start_run() as run:
        run.log_text("doomed bytes", "d.txt")
    workspace.delete_run(run.id)
    planned = workspace.gc(grace_seconds=0, dry_run=True)
    assert (planned.runs, planned.blobs, planned.bytes_freed) == (1, 1, len("doomed bytes"))
    assert workspace.get_run(run.id).read_artifact("d.txt") == b"doomed bytes"
    assert workspace.gc(grace_seconds=0) == planned


def test_open_without_create_refuses_a_missing_workspace(tmp_path: Path) -> None:
    with pytest.raises(loopml.NotFoundError, match="loopml init"):
        loopml.Workspace.open(tmp_path / "nowhere", create=False)
    assert not (tmp_path / "nowhere" / "loopml.db").exists()
    loopml.Workspace.open(tmp_path / "somewhere").close()
    loopml.Workspace.open(tmp_path / "somewhere", create=False).close()


def test_registry_settings_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopml.config import Settings
    from loopml.errors import ConfigError

    assert Settings.resolve(tmp_path).protected_aliases == ("production",)
    monkeypatch.setenv("LOOPML_PROTECTED_ALIASES", "production, staging")
    monkeypatch.setenv("LOOPML_REQUIRED_APPROVALS", "2")
    settings = Settings.resolve(tmp_path)
    assert (settings.protected_aliases, settings.required_approvals) == (
        ("production", "staging"),
        2,
    )
    monkeypatch.setenv("LOOPML_PROTECTED_ALIASES", "")
    assert Settings.resolve(tmp_path).protected_aliases == ()
    monkeypatch.setenv("LOOPML_REQUIRED_APPROVALS", "two")
    with pytest.raises(ConfigError, match="LOOPML_REQUIRED_APPROVALS"):
        Settings.resolve(tmp_path)
