"""``loopml experiments list|delete|restore``: a thin layer over Workspace experiment methods."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from loopml.cli._output import HomeOption, console, local_time, open_workspace

app = typer.Typer(
    help="List, delete and restore experiments.", no_args_is_help=True, rich_markup_mode="rich"
)


@app.command("list")
def list_experiments(
    include_deleted: Annotated[
        bool, typer.Option("--all", "-a", help="Include deleted experiments.")
    ] = False,
    home: HomeOption = None,
) -> None:
    """List experiments with how many runs each has."""
    out = console()
    with open_workspace(home) as ws:
        experiments = ws.experiments(include_deleted)
        counts = {e.name: ws.count_runs(e.name, include_deleted=True) for e in experiments}
    if not experiments:
        out.print("No experiments yet. `loopml demo` makes one.")
        return
    table = Table(title="Experiments", title_justify="left", header_style="bold")
    table.add_column("id", justify="right")
    table.add_column("name", style="bold")
    table.add_column("created")
    table.add_column("runs", justify="right")
    if include_deleted:
        table.add_column("state")
    for experiment in experiments:
        cells = [str(experiment.experiment_id), escape(experiment.name)]
        cells.append(local_time(experiment.created_at))
        cells.append(f"{counts[experiment.name]:,}")
        if include_deleted:
            cells.append("[dim]deleted[/]" if experiment.deleted else "[green]active[/]")
        table.add_row(*cells, style="dim" if experiment.deleted else None)
    table.caption = "Run counts include deleted runs."
    out.print(table)


@app.command("delete")
def delete_experiment(
    name: Annotated[str, typer.Argument(help="Experiment name.")],
    home: HomeOption = None,
) -> None:
    """Soft-delete an experiment: hidden until restored or `loopml gc` removes it with its runs."""
    with open_workspace(home) as ws:
        ws.delete_experiment(name)
    console().print(
        f"Deleted experiment [bold]{escape(name)}[/]. "
        f"[dim]Undo: loopml experiments restore {escape(name)}; "
        "`loopml gc` removes it for good.[/]"
    )


@app.command("restore")
def restore_experiment(
    name: Annotated[str, typer.Argument(help="Experiment name.")],
    home: HomeOption = None,
) -> None:
    """Bring back a soft-deleted experiment."""
    with open_workspace(home) as ws:
        ws.restore_experiment(name)
    console().print(f"Restored experiment [bold]{escape(name)}[/].")
