"""``loopml init`` and ``loopml gc``: create a workspace, and clean one up."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from loopml.cli._output import (
    HomeOption,
    console,
    embedded_database,
    format_duration,
    human_bytes,
    open_workspace,
)
from loopml.config import Settings
from loopml.errors import LoopmlError


def init(
    path: Annotated[
        Path | None,
        typer.Argument(
            help="Where to create the workspace (default: --home, $LOOPML_HOME or ./.loopml).",
            show_default=False,
            file_okay=False,
        ),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Create a workspace (or check an existing one) and show where it keeps things."""
    target = path or home
    try:
        database = embedded_database(target)
        existed = database is not None and database.exists()
    except LoopmlError:
        existed = False  # open_workspace reports the problem
    with open_workspace(target, create=True) as ws:
        settings = ws.settings
    out = console()
    verb = "Using existing" if existed else "Created"
    out.print(f"[green]✓[/] {verb} loopml workspace at [bold]{escape(str(settings.home))}[/]")
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("home", escape(str(settings.home)))
    grid.add_row("database", escape(_safe_url(settings.db_url)))
    grid.add_row("artifacts", escape(settings.artifacts_url))
    out.print(grid)
    default = Settings.resolve(None).home
    if settings.home != default:
        out.print(
            f"[dim]Other commands look in {escape(str(default))}; pass "
            f"--home {escape(str(settings.home))} or export "
            f"LOOPML_HOME={escape(str(settings.home))}.[/]"
        )
    out.print("Next: [bold]loopml demo[/] trains a few models and tracks them here.")


def gc(
    grace: Annotated[
        float,
        typer.Option(
            "--grace",
            min=0,
            metavar="SECONDS",
            help="Keep unreferenced artifacts stored less than this many seconds ago.",
        ),
    ] = 3600.0,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    home: HomeOption = None,
) -> None:
    """Permanently remove deleted runs and experiments, and artifacts nothing references."""
    out = console()
    with open_workspace(home) as ws:
        if not yes and not typer.confirm(
            f"Permanently remove deleted runs and experiments in {ws.settings.home}, "
            "and the artifacts no run uses?"
        ):
            out.print("Nothing removed.")
            raise typer.Exit(1)
        report = ws.gc(grace_seconds=grace)
    if report.runs == report.experiments == report.blobs == 0:
        out.print("Nothing to remove.")
    else:
        out.print(
            f"Removed {_count(report.runs, 'run')}, {_count(report.experiments, 'experiment')} "
            f"and {_count(report.blobs, 'artifact file')}; "
            f"freed [bold]{human_bytes(report.bytes_freed)}[/]."
        )
    if grace > 0:
        out.print(
            f"[dim]Artifacts stored in the last {format_duration(grace)} are kept even when "
            "unused; --grace 0 frees them now.[/]"
        )


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _safe_url(url: str) -> str:
    """A database URL with any password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url
