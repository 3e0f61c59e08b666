"""``loopml init`` and ``loopml gc``: create a workspace, and clean one up."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from loopml.cli._output import (
    HomeOption,
    console,
    format_duration,
    human_bytes,
    open_workspace,
)
from loopml.config import Settings
from loopml.errors import LoopmlError
from loopml.workspace import GcReport, Workspace


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
        Workspace.open(target, create=False).close()
        existed = True
    except LoopmlError:
        existed = False  # missing (created below) or broken (open_workspace reports it)
    with open_workspace(target, create=True) as ws:
        settings = ws.settings
        database = ws.db.safe_url()
    out = console()
    verb = "Using existing" if existed else "Created"
    out.print(f"[green]✓[/] {verb} loopml workspace at [bold]{escape(str(settings.home))}[/]")
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("home", escape(str(settings.home)))
    grid.add_row("database", escape(database))
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
        planned = ws.gc(grace_seconds=grace, dry_run=True)
        if planned.runs == planned.experiments == planned.blobs == 0:
            report = planned
        else:
            if not yes and not typer.confirm(
                f"Permanently remove {_summary(planned)} from {ws.settings.home}?"
            ):
                out.print("Nothing removed.")
                raise typer.Exit(1)
            report = ws.gc(grace_seconds=grace)
    if report.runs == report.experiments == report.blobs == report.model_versions == 0:
        out.print("Nothing to remove.")
    else:
        out.print(f"Removed {_summary(report)}.")
    if grace > 0:
        out.print(
            f"[dim]Artifacts stored in the last {format_duration(grace)} are kept even when "
            "unused; --grace 0 frees them now.[/]"
        )


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _summary(report: GcReport) -> str:
    versions = (
        f"{_count(report.model_versions, 'deleted model version')}, "
        if report.model_versions
        else ""
    )
    return (
        f"{versions}{_count(report.runs, 'deleted run')}, "
        f"{_count(report.experiments, 'deleted experiment')}"
        f" and {_count(report.blobs, 'unused artifact file')} "
        f"({human_bytes(report.bytes_freed)})"
    )
