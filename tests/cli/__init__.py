"""Helpers for CLI tests: run ``loopml`` in-process on a workspace in a temporary folder."""

from __future__ import annotations

from pathlib import Path

from click.testing import Result
from typer.testing import CliRunner

from loopml.cli import app

# Wide enough that no table in these tests is cut or wrapped; the loopml variables
# unset so a developer's own workspace settings never leak in.
CLI_ENV = {
    "COLUMNS": "200",
    "LINES": "100",
    "NO_COLOR": "1",
    "LOOPML_HOME": None,
    "LOOPML_DB_URL": None,
    "LOOPML_ARTIFACTS_URL": None,
}


def invoke(home: Path | None, *args: str, input: str | None = None) -> Result:
    """Runs ``loopml ARGS --home HOME`` and returns the result (output, exit code)."""
    arguments = [*args, "--home", str(home)] if home is not None else list(args)
    return CliRunner().invoke(app, arguments, input=input, env=CLI_ENV, catch_exceptions=True)


def assert_clean_failure(result: Result, *fragments: str) -> None:
    """Exit code 1, a readable message containing ``fragments``, and no traceback."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    for fragment in fragments:
        assert fragment in result.output, result.output


def table_line(output: str, cell: str) -> str:
    """The one output line that contains ``cell``."""
    lines = [line for line in output.splitlines() if cell in line]
    assert len(lines) == 1, f"{cell!r} is on {len(lines)} lines of:\n{output}"
    return lines[0]
