"""``loopml runs list|show|compare|delete|restore``: a thin layer over Workspace run methods."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer
from rich.markup import escape

from loopml.cli._output import (
    HomeOption,
    console,
    open_workspace,
    short_id,
)
from loopml.cli._run_detail import RunSnapshot, print_comparison, print_run
from loopml.cli._run_list import priority_keys, run_record, runs_csv, runs_table
from loopml.errors import NotFoundError, ValidationError
from loopml.store.search import parse_order_by

app = typer.Typer(
    help="List, inspect, compare, delete and restore runs.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


# -- list -----------------------------------------------------------------------
@app.command("list")
def list_runs(
    experiment: Annotated[
        list[str] | None,
        typer.Option(
            "--experiment",
            "-e",
            metavar="NAME",
            help="Only runs of this experiment (repeatable).",
        ),
    ] = None,
    filter_text: Annotated[
        str | None,
        typer.Option(
            "--filter",
            "-f",
            metavar="EXPR",
            help="Filter, e.g. \"metrics.roc_auc > 0.9 and params.model = 'rf'\".",
        ),
    ] = None,
    order_by: Annotated[
        list[str] | None,
        typer.Option(
            "--order-by",
            "-o",
            metavar="ITEM",
            help="Sort item, e.g. 'metrics.roc_auc desc' (repeatable).",
        ),
    ] = None,
    max_results: Annotated[
        int, typer.Option("--max", "-n", min=1, metavar="N", help="Show at most this many runs.")
    ] = 50,
    include_deleted: Annotated[
        bool, typer.Option("--all", "-a", help="Include deleted runs.")
    ] = False,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="Output format.")
    ] = OutputFormat.table,
    home: HomeOption = None,
) -> None:
    """List runs, newest first unless --order-by says otherwise."""
    with open_workspace(home) as ws:
        order = list(order_by or [])
        ordering = parse_order_by(order)
        frame = ws.search_runs(
            experiment or None,
            filter=filter_text,
            order_by=order or None,
            max_results=max_results + 1,
            include_deleted=include_deleted,
        )
        more = len(frame) > max_results
        frame = frame.head(max_results).reset_index(drop=True)
        deleted = set(frame.loc[frame["deleted"].astype(bool), "run_id"])
    if output_format is OutputFormat.json:
        records = [run_record(row) for _, row in frame.iterrows()]
        typer.echo(json.dumps(records, indent=2))
        return
    if output_format is OutputFormat.csv:
        typer.echo(runs_csv(frame), nl=False)
        return
    out = console()
    if frame.empty:
        where = f" in experiment {', '.join(experiment)}" if experiment else ""
        matching = " matching the filter" if filter_text else ""
        out.print(f"No runs{escape(where)}{matching}.")
        if not include_deleted:
            out.print("[dim]Deleted runs are hidden; --all shows them.[/]")
        return
    metrics, params = priority_keys(ordering, filter_text)
    out.print(runs_table(frame, deleted, experiment, out.width, metrics, params, more))


@app.command("show")
def show_run(
    run_id: Annotated[
        str, typer.Argument(metavar="RUN_ID", help="Run id or a unique prefix (6+ characters).")
    ],
    home: HomeOption = None,
) -> None:
    """Show one run: info, params, metrics with their history, tags, artifacts, children."""
    out = console()
    with open_workspace(home) as ws:
        run = ws.get_run(run_id.strip().lower())
        info = run.info
        parent = None
        if info.parent_run_id:
            try:
                parent = ws.get_run(info.parent_run_id)
            except NotFoundError:
                parent = None
        print_run(out, run, parent)


@app.command("compare")
def compare_runs(
    run_ids: Annotated[
        list[str],
        typer.Argument(metavar="RUN_ID", help="Two or more run ids (or unique prefixes)."),
    ],
    only_differences: Annotated[
        bool, typer.Option("--diff", "-d", help="Only rows whose values differ.")
    ] = False,
    home: HomeOption = None,
) -> None:
    """Put runs' params and metrics side by side; differing rows marked ≠, best metric ★."""
    with open_workspace(home) as ws:
        if len(run_ids) < 2:
            raise ValidationError("Give at least two run ids to compare.")
        runs = [RunSnapshot.of(ws.get_run(text.strip().lower())) for text in run_ids]
    print_comparison(console(), runs, only_differences)


@app.command("delete")
def delete_runs(
    run_ids: Annotated[
        list[str], typer.Argument(metavar="RUN_ID", help="Run ids (or unique prefixes).")
    ],
    home: HomeOption = None,
) -> None:
    """Soft-delete runs (and their children): hidden from lists until restored or `loopml gc`."""
    out = console()
    with open_workspace(home) as ws:
        for text in run_ids:
            run = ws.get_run(text.strip().lower())
            children = run.children()
            ws.delete_run(run.id)
            extra = f" and its {len(children)} child runs" if children else ""
            out.print(
                f"Deleted run [cyan]{short_id(run.id)}[/] ({escape(run.info.name)}){extra}. "
                f"[dim]Undo: loopml runs restore {short_id(run.id)}[/]"
            )
    out.print("[dim]`loopml gc` removes deleted runs for good.[/]")


@app.command("restore")
def restore_runs(
    run_ids: Annotated[
        list[str], typer.Argument(metavar="RUN_ID", help="Run ids (or unique prefixes).")
    ],
    home: HomeOption = None,
) -> None:
    """Bring back soft-deleted runs (and their children)."""
    out = console()
    with open_workspace(home) as ws:
        for text in run_ids:
            run = ws.get_run(text.strip().lower())
            ws.restore_run(run.id)
            out.print(f"Restored run [cyan]{short_id(run.id)}[/] ({escape(run.info.name)}).")
