"""``loopml init`` and ``loopml gc``."""

from __future__ import annotations

from pathlib import Path

import pytest

import loopml
from loopml.cli import main
from tests.cli import CLI_ENV, assert_clean_failure, invoke


def test_init_creates_the_workspace_and_prints_where_it_is(tmp_path: Path) -> None:
    home = tmp_path / "ws"

    result = invoke(None, "init", str(home))

    assert result.exit_code == 0, result.output
    assert (home / "loopml.db").is_file()
    assert (home / "artifacts").is_dir()
    assert "Created" in result.output
    assert str(home) in result.output
    assert f"sqlite:///{home / 'loopml.db'}" in result.output
    assert str(home / "artifacts") in result.output
    assert "loopml demo" in result.output


def test_init_twice_reports_the_existing_workspace(tmp_path: Path) -> None:
    invoke(None, "init", str(tmp_path / "ws"))

    result = invoke(None, "init", str(tmp_path / "ws"))

    assert result.exit_code == 0
    assert "Using existing" in result.output


def test_init_without_a_path_uses_home_option(tmp_path: Path) -> None:
    result = invoke(tmp_path / "via-option", "init")

    assert result.exit_code == 0, result.output
    assert (tmp_path / "via-option" / "loopml.db").is_file()


def test_init_without_anything_uses_loopml_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(CLI_ENV, "LOOPML_HOME", str(tmp_path / "from-env"))

    result = invoke(None, "init")

    assert result.exit_code == 0, result.output
    assert (tmp_path / "from-env" / "loopml.db").is_file()
    assert "Other commands look in" not in result.output  # it is the default already


def test_init_in_an_unwritable_place_fails_cleanly(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")

    result = invoke(None, "init", str(blocker / "ws"))

    assert_clean_failure(result, "Configuration problem", "LOOPML_HOME")


def _run_with_artifact(home: Path, size: int) -> str:
    with loopml.Workspace.open(home) as ws, ws.start_run(experiment="gc") as run:
        run.log_bytes(b"x" * size, "weights.bin")
        return run.id


def test_gc_after_delete_frees_the_artifact_bytes(tmp_path: Path) -> None:
    run_id = _run_with_artifact(tmp_path, 3 * 1024 * 1024)
    objects = tmp_path / "artifacts" / "objects"
    stored = sum(p.stat().st_size for p in objects.rglob("*") if p.is_file())
    invoke(tmp_path, "runs", "delete", run_id)

    result = invoke(tmp_path, "gc", "--grace", "0", "--yes")

    assert result.exit_code == 0, result.output
    assert "Removed 1 deleted run" in result.output
    assert "3.0 MiB" in result.output
    remaining = sum(p.stat().st_size for p in objects.rglob("*") if p.is_file())
    assert stored - remaining >= 3 * 1024 * 1024
    assert_clean_failure(invoke(tmp_path, "runs", "show", run_id), "Not found")


def test_gc_keeps_recent_artifacts_within_the_grace_period(tmp_path: Path) -> None:
    run_id = _run_with_artifact(tmp_path, 1024)
    invoke(tmp_path, "runs", "delete", run_id)

    result = invoke(tmp_path, "gc", "--yes")

    assert result.exit_code == 0, result.output
    assert "Removed 1 deleted run" in result.output
    assert "0 unused artifact files" in result.output
    assert "--grace 0" in result.output


def test_gc_asks_first_and_keeps_everything_on_no(tmp_path: Path) -> None:
    run_id = _run_with_artifact(tmp_path, 1024)
    invoke(tmp_path, "runs", "delete", run_id)

    result = invoke(tmp_path, "gc", "--grace", "0", input="n\n")

    assert result.exit_code == 1
    assert "Permanently remove" in result.output
    assert "Nothing removed" in result.output
    assert "(deleted)" in invoke(tmp_path, "runs", "list", "--all").output


def test_gc_with_nothing_to_do_says_so(tmp_path: Path) -> None:
    invoke(None, "init", str(tmp_path))

    result = invoke(tmp_path, "gc", "--yes")

    assert result.exit_code == 0, result.output
    assert "Nothing to remove" in result.output


def test_version_option_prints_the_version() -> None:
    result = invoke(None, "--version")

    assert result.exit_code == 0
    assert result.output.strip() == f"loopml {loopml.__version__}"


def test_console_script_exits_with_one_on_a_loopml_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("LOOPML_HOME", "LOOPML_DB_URL", "LOOPML_ARTIFACTS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("sys.argv", ["loopml", "runs", "list", "--home", str(tmp_path / "none")])

    with pytest.raises(SystemExit) as exit_info:
        main()

    assert exit_info.value.code == 1
    assert "No loopml workspace" in capsys.readouterr().err
