"""Runs: params, metrics, tags, artifacts, status, nesting, provenance and bad input."""

from __future__ import annotations

import json
import math
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

import loopml


def test_params_are_stored_as_text_with_containers_as_json(workspace: loopml.Workspace) -> None:
    with workspace.start_run() as run:
        run.log_params(
            {"lr": 0.1, "depth": 8, "fast": True, "none": None, "layers": [64, 32],
             "opts": {"b": 1, "a": 2}, "np": np.float32(0.5), "name": "rf"}
        )  # fmt: skip
    assert run.params == {
        "lr": "0.1", "depth": "8", "fast": "True", "none": "None", "layers": "[64, 32]",
        "opts": '{"a": 2, "b": 1}', "np": "0.5", "name": "rf",
    }  # fmt: skip


def test_same_param_again_is_accepted(workspace: loopml.Workspace) -> None:
    with workspace.start_run() as run:
        run.log_param("lr", 0.1)
        run.log_param("lr", 0.1)
    assert run.params == {"lr": "0.1"}


def test_changing_a_param_is_refused_and_the_first_value_kept(workspace: loopml.Workspace) -> None:
    with workspace.start_run() as run:
        run.log_param("lr", 0.1)
        with pytest.raises(loopml.ValidationError, match=r"already '0\.1'.*metric or a tag"):
            run.log_params({"other": 1, "lr": 0.2})
    assert run.params == {"lr": "0.1"}


def test_a_very_long_param_is_refused_with_advice(workspace: loopml.Workspace) -> None:
    with workspace.start_run() as run:
        run.log_param("ok", "x" * 8000)
        with pytest.raises(loopml.ValidationError, match="log_dict"):
            run.log_param("long", "x" * 8001)
    assert set(run.params) == {"ok"}
    assert len(run.params["ok"]) == 8000


@pytest.mark.parametrize("key", ["", "   ", 5, "k" * 257])
def test_bad_keys_are_refused(workspace: loopml.Workspace, key: object) -> None:
    with workspace.start_run() as run:
        with pytest.raises(loopml.ValidationError):
            run.log_param(key, 1)  # type: ignore[arg-type]
        with pytest.raises(loopml.ValidationError):
            run.log_metric(key, 1.0)  # type: ignore[arg-type]


def test_metric_history_counts_steps_per_key(workspace: loopml.Workspace) -> None:
    with workspace.start_run() as run:
        for value in (0.9, 0.5, 0.3):
            run.log_metric("loss", value)
        run.log_metric("acc", 0.7, step=10)
        run.log_metric("acc", 0.8)
    history = run.metric_history("loss")
    assert list(history["step"]) == [0, 1, 2]
    assert list(history["value"]) == [0.9, 0.5, 0.3]
    assert list(run.metric_history("acc")["step"]) == [10, 11]
    assert run.metrics == {"loss": 0.3, "acc": 0.8}


def test_latest_value_is_the_highest_step_not_the_last_logged(workspace: loopml.Workspace) -> None:
    with workspace.start_run() as run:
        run.log_metric("loss", 0.1, step=5)
        run.flush()
        run.log_metric("loss", 0.9, step=2)
    assert run.metrics["loss"] == 0.1
    assert len(run.metric_history("loss")) == 2


def test_nan_and_infinities_are_stored_faithfully(workspace: loopml.Workspace) -> None:
    with workspace.start_run() as run:
        run.log_metrics({"nan": math.nan, "pos": math.inf, "neg": -math.inf, "np": np.float64(2)})
    assert math.isnan(run.metrics["nan"])
    assert run.metrics["pos"] == math.inf
    assert run.metrics["neg"] == -math.inf
    assert math.isnan(run.metric_history("nan")["value"].iloc[0])
    found = workspace.search_runs(filter="metrics.pos > 1e308")
    assert list(found["run_id"]) == [run.id]
    assert workspace.search_runs(filter="metrics.nan > 0").empty


@pytest.mark.parametrize("value", ["0.5", b"1", None, [1.0], True])
def test_non_numeric_metric_values_are_refused(workspace: loopml.Workspace, value: object) -> None:
    with workspace.start_run() as run:
        with pytest.raises(loopml.ValidationError, match="must be a number"):
            run.log_metric("m", value)  # type: ignore[arg-type]
    assert run.metrics == {}


def test_tags_can_change(workspace: loopml.Workspace) -> None:
    with workspace.start_run(tags={"stage": "dev"}) as run:
        run.set_tag("stage", "prod")
        run.set_tags({"owner": "ana"})
    assert run.tags == {"stage": "prod", "owner": "ana"}


def test_a_block_that_raises_ends_the_run_failed_with_the_error(
    workspace: loopml.Workspace,
) -> None:
    with pytest.raises(ZeroDivisionError), workspace.start_run() as run:
        run.log_metric("before", 1.0)
        _ = 1 / 0
    info = run.info
    assert info.status == "FAILED"
    assert info.error is not None and "ZeroDivisionError" in info.error
    assert info.end_time is not None
    assert run.metrics == {"before": 1.0}


def test_keyboard_interrupt_ends_the_run_killed(workspace: loopml.Workspace) -> None:
    with pytest.raises(KeyboardInterrupt), workspace.start_run() as run:
        raise KeyboardInterrupt
    assert run.info.status == "KILLED"


def test_nested_blocks_make_child_runs(workspace: loopml.Workspace) -> None:
    with workspace.start_run(experiment="search", run_name="parent") as parent:
        assert loopml.active_run() is parent
        with workspace.start_run(experiment="search", run_name="child") as child:
            assert loopml.active_run() is child
        assert loopml.active_run() is parent
    assert loopml.active_run() is None
    assert child.info.parent_run_id == parent.id
    assert [c.id for c in parent.children()] == [child.id]


def test_explicit_parent_by_id(workspace: loopml.Workspace) -> None:
    with workspace.start_run() as parent:
        pass
    with workspace.start_run(parent=parent.id) as child:
        pass
    assert child.info.parent_run_id == parent.id
    with pytest.raises(loopml.NotFoundError):
        workspace.start_run(parent="0" * 32)


def test_each_thread_has_its_own_current_run(workspace: loopml.Workspace) -> None:
    seen: dict[str, str | None] = {}

    def work(name: str) -> None:
        with workspace.start_run(run_name=name) as run:
            for step in range(50):
                loopml.active_run().log_metric("who", hash(name) % 100, step=step)  # type: ignore[union-attr]
            seen[name] = run.id

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, run_id in seen.items():
        run = workspace.get_run(str(run_id))
        assert run.info.parent_run_id is None
        assert set(run.metric_history("who")["value"]) == {hash(name) % 100}


def test_unknown_run_id_is_not_found(workspace: loopml.Workspace) -> None:
    with pytest.raises(loopml.NotFoundError, match="32 hexadecimal characters"):
        workspace.get_run("does-not-exist")
    with pytest.raises(loopml.NotFoundError, match="at least 6"):
        workspace.get_run("abc")
    with pytest.raises(loopml.NotFoundError, match="loopml runs list"):
        workspace.get_run("0" * 32)
    with pytest.raises(loopml.NotFoundError):
        workspace.get_run("abcdef12")


def test_a_unique_id_prefix_finds_the_run(workspace: loopml.Workspace) -> None:
    experiment_id = workspace.experiment("prefix").experiment_id
    for run_id in ("abcdef0000000000000000000000000a", "abcdef1100000000000000000000000b"):
        workspace._runs.create(
            {"run_id": run_id, "experiment_id": experiment_id, "name": run_id[:8],
             "status": "FINISHED", "start_time": 0},
            {},
        )  # fmt: skip
    assert workspace.get_run("abcdef00").id == "abcdef0000000000000000000000000a"
    with pytest.raises(loopml.ValidationError, match="More than one run id starts with 'abcdef'"):
        workspace.get_run("abcdef")


def test_artifacts_files_folders_dicts_and_text(
    workspace: loopml.Workspace, tmp_path: Path
) -> None:
    (tmp_path / "report.txt").write_text("hello")
    folder = tmp_path / "plots"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.csv").write_text("x\n1\n")
    (folder / "sub" / "b.csv").write_text("y\n2\n")
    with workspace.start_run() as run:
        run.log_artifact(tmp_path / "report.txt")
        run.log_artifacts(folder, "data")
        run.log_artifact(folder / "a.csv", "single")
        run.log_artifact(folder, "whole")
        run.log_dict({"k": [1, 2]}, "config.json")
        run.log_text("note", "notes/readme.md")
    assert [a.path for a in run.artifacts()] == [
        "config.json", "data/a.csv", "data/sub/b.csv", "notes/readme.md", "report.txt",
        "single/a.csv", "whole/plots/a.csv", "whole/plots/sub/b.csv",
    ]  # fmt: skip
    assert json.loads(run.read_artifact("config.json")) == {"k": [1, 2]}
    out = run.download_artifacts(tmp_path / "out", "data")
    assert (out / "data" / "sub" / "b.csv").read_text() == "y\n2\n"
    with pytest.raises(loopml.NotFoundError, match=r"report\.txt"):
        run.read_artifact("missing.txt")
    with pytest.raises(loopml.NotFoundError, match="does not exist"):
        run.log_artifact(tmp_path / "nope.txt")


def test_figures_from_matplotlib_and_plotly(workspace: loopml.Workspace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go

    figure, axes = plt.subplots()
    axes.plot([0, 1], [0, 1])
    with workspace.start_run() as run:
        run.log_figure(figure, "curve.png")
        run.log_figure(go.Figure(go.Scatter(x=[0, 1], y=[1, 0])), "roc.html")
        with pytest.raises(loopml.ValidationError, match="matplotlib or Plotly"):
            run.log_figure(object(), "x.png")
    plt.close(figure)
    assert run.read_artifact("curve.png").startswith(b"\x89PNG")
    html = run.read_artifact("roc.html")
    assert b"Plotly.newPlot" in html and b'src="plotly.min.js"' in html
    assert b"plotly" in run.read_artifact("plotly.min.js")[:2000].lower()
    assert len(html) < 100_000  # the 4 MB library is not copied into every page


def test_plotly_pages_share_one_stored_library(workspace: loopml.Workspace) -> None:
    import plotly.graph_objects as go

    shas = set()
    for y in ([1, 2], [2, 1]):
        with workspace.start_run() as run:
            run.log_figure(go.Figure(go.Scatter(y=y)), "plots/curve.html")
        shas.add(run.artifacts("plots/plotly.min.js")[0].sha256)
    assert len(shas) == 1
    assert workspace._blobs.reference_count(shas.pop()) == 2


def test_identical_artifacts_are_stored_once(workspace: loopml.Workspace) -> None:
    with workspace.start_run() as first:
        first.log_text("same bytes", "a.txt")
    with workspace.start_run() as second:
        second.log_text("same bytes", "b.txt")
    objects = [p for p in Path(workspace.artifacts.root, "objects").rglob("*") if p.is_file()]
    shas = {a.sha256 for a in first.artifacts() + second.artifacts()}
    assert len(shas) == 1
    assert workspace._blobs.reference_count(shas.pop()) == 2
    assert len([p for p in objects if p.stat().st_size == len("same bytes")]) == 1


def test_environment_is_recorded(workspace: loopml.Workspace) -> None:
    import platform

    with workspace.start_run() as run:
        pass
    environment = run.environment
    assert environment["python_version"] == platform.python_version()
    assert "sqlalchemy" in environment["packages"]
    with workspace.start_run() as second:
        pass
    assert second.info.environment_id == run.info.environment_id  # stored once


def test_code_version_records_commit_dirty_flag_and_diff(
    workspace: loopml.Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopml.tracking import provenance

    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t", *args],
            check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip

    git("init", "-q")
    (repo / "train.py").write_text("print('v1')\n")
    git("add", ".")
    git("commit", "-qm", "v1")
    monkeypatch.chdir(repo)
    provenance._code_cache.clear()
    with workspace.start_run() as clean:
        pass
    (repo / "train.py").write_text("print('v2')\n")
    provenance._code_cache.clear()
    with workspace.start_run() as dirty:
        pass
    assert clean.info.git_commit == git("rev-parse", "HEAD")
    assert clean.info.git_dirty is False and clean.info.git_diff_sha256 is None
    assert dirty.info.git_dirty is True
    diff = workspace.artifacts.read_bytes(str(dirty.info.git_diff_sha256))
    assert b"+print('v2')" in diff


def test_outside_a_git_repository_no_code_version(
    workspace: loopml.Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopml.tracking import provenance

    monkeypatch.chdir(tmp_path)
    provenance._code_cache.clear()
    with workspace.start_run() as run:
        pass
    assert run.info.git_commit is None


def test_a_corrupted_artifact_is_refused_not_returned(
    workspace: loopml.Workspace, tmp_path: Path
) -> None:
    with workspace.start_run() as run:
        info = run.log_text("the real content", "data.txt")
    Path(workspace.artifacts.object_path(info.sha256)).write_bytes(b"the fake content")
    with pytest.raises(loopml.CorruptArtifactError, match=info.sha256):
        run.read_artifact("data.txt")
    with pytest.raises(loopml.CorruptArtifactError):
        run.download_artifacts(tmp_path / "out")
    assert not (tmp_path / "out" / "data.txt").exists()
    assert run.artifacts()[0].sha256 == info.sha256  # the record is kept for a restore


def test_log_model_stores_a_bundle_and_load_model_returns_the_model(
    workspace: loopml.Workspace,
) -> None:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from loopml.data.contract import load_contract

    frame = pd.DataFrame({"spend": [1.0, 5.0, 9.0, 12.0], "tenure": [1, 2, 30, 40]})
    target = [0, 0, 1, 1]
    model = LogisticRegression().fit(frame, target)
    contract = load_contract({"columns": {"spend": "float", "tenure": "int", "churned": "int"}})
    with workspace.start_run() as run:
        run.log_model(model, "churn", signature=contract, input_example=frame.head(2))

    assert {a.path for a in run.artifacts()} == {
        "churn/loopml-model.yaml",
        "churn/model.joblib",
        "churn/requirements.txt",
        "churn/input_example.json",
    }
    restored = run.load_model("churn")
    assert isinstance(restored, LogisticRegression)
    assert restored.predict(frame).tolist() == model.predict(frame).tolist()
    loaded = loopml.models.load(f"runs:/{run.id}/churn", workspace=workspace)
    assert loaded.signature.input_names == ["spend", "tenure"]
    with pytest.raises(loopml.NotFoundError, match="no model bundle at 'model'"):
        run.load_model()


def test_logging_a_model_over_one_with_more_files_is_refused(
    workspace: loopml.Workspace,
) -> None:
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    model = LinearRegression().fit(frame, [1.0, 2.0, 3.0])
    with workspace.start_run() as run:
        run.log_model(model, input_example=frame)
        run.log_model(model, input_example=frame)  # the same files again: replaced
        with pytest.raises(loopml.ConflictError, match=r"model/input_example\.json"):
            run.log_model(model)
    assert run.load_model().predict(frame).tolist() == pytest.approx([1.0, 2.0, 3.0])
