"""``loopml runs list|show|compare|delete|restore``: a thin layer over Workspace run methods."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from enum import StrEnum
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from loopml.cli._output import (
    HomeOption,
    console,
    deleted_run_ids,
    duration_seconds,
    format_duration,
    format_number,
    human_bytes,
    is_missing,
    local_time,
    lower_is_better,
    open_workspace,
    resolve_run_id,
    short_id,
    sparkline,
    status_text,
)
from loopml.errors import NotFoundError, ValidationError
from loopml.store.search import parse_order_by
from loopml.tracking.run import Run

app = typer.Typer(
    help="List, inspect, compare, delete and restore runs.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

_CELL_PADDING = 3  # a border and a space either side
_MAX_PARAM_WIDTH = 24
_START_WIDTH = 19
_MIN_METRIC_COLUMNS = 2
# Of every five extra columns, metrics get three and params two.
_COLUMN_PATTERN = ("metrics", "metrics", "params", "metrics", "params")
_ERROR_LINES = 30


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
        deleted: set[str] = set()
        if include_deleted:
            deleted = deleted_run_ids(ws, list(frame["run_id"]))
    if output_format is OutputFormat.json:
        typer.echo(json.dumps([_run_record(row, deleted) for _, row in frame.iterrows()], indent=2))
        return
    if output_format is OutputFormat.csv:
        typer.echo(_runs_csv(frame, deleted), nl=False)
        return
    out = console()
    if frame.empty:
        where = f" in experiment {', '.join(experiment)}" if experiment else ""
        matching = " matching the filter" if filter_text else ""
        out.print(f"No runs{escape(where)}{matching}.")
        if not include_deleted:
            out.print("[dim]Deleted runs are hidden; --all shows them.[/]")
        return
    priority_metrics = [f.key for f, _ in ordering if f.kind == "metrics"]
    priority_params = [f.key for f, _ in ordering if f.kind == "params"]
    if filter_text:
        priority_metrics += _mentioned(filter_text, "metrics?")
        priority_params += _mentioned(filter_text, "params?")
    out.print(
        _runs_table(frame, deleted, experiment, out.width, priority_metrics, priority_params, more)
    )


def _runs_table(
    frame: pd.DataFrame,
    deleted: set[str],
    experiment: list[str] | None,
    width: int,
    priority_metrics: list[str],
    priority_params: list[str],
    more: bool,
) -> Table:
    metric_keys = _keys(frame, "metrics.")
    param_keys = _keys(frame, "params.")
    ranked_metrics = _pick_columns(frame, "metrics.", metric_keys, priority_metrics, False)
    ranked_params = _pick_columns(frame, "params.", param_keys, priority_params, True)
    show_experiment = not experiment or len(experiment) > 1
    show_start = True
    # On narrow terminals give up the start time, then the experiment, for two metrics.
    wanted = sum(
        _column_width(frame, "metrics", key) + _CELL_PADDING
        for key in ranked_metrics[:_MIN_METRIC_COLUMNS]
    )
    base = _base_width(frame, show_experiment, bool(deleted))
    if width - base < wanted:
        show_start = False
        base -= _START_WIDTH + _CELL_PADDING
    if width - base < wanted and show_experiment:
        base = _base_width(frame, False, bool(deleted)) - _START_WIDTH - _CELL_PADDING
        show_experiment = False
    metrics, params = _fit_columns(frame, width - base, ranked_metrics, ranked_params)
    sort_key = priority_metrics[0] if priority_metrics else None

    title = f"Runs in {', '.join(experiment)}" if experiment and len(experiment) == 1 else "Runs"
    table = Table(title=escape(title), title_justify="left", header_style="bold")
    table.add_column("run id", style="cyan", no_wrap=True)
    table.add_column("name", overflow="fold", min_width=8)
    if show_experiment:
        table.add_column("experiment")
    table.add_column("status", no_wrap=True)
    if show_start:
        table.add_column("start", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    for key in metrics:
        table.add_column(escape(key), justify="right", style="bold" if key == sort_key else "")
    for key in params:
        table.add_column(escape(key), style="magenta", overflow="fold")
    for _, row in frame.iterrows():
        cells: list[Any] = [short_id(row["run_id"]), escape(str(row["run_name"]))]
        if show_experiment:
            cells.append(escape(str(row["experiment"])))
        cells.append(status_text(row["status"], row["run_id"] in deleted))
        if show_start:
            cells.append(local_time(row["start_time"]))
        cells.append(format_duration(duration_seconds(row["start_time"], row["end_time"])))
        cells += [_cell(row.get(f"metrics.{key}"), numeric=True) for key in metrics]
        cells += [_cell(row.get(f"params.{key}")) for key in params]
        table.add_row(*cells, style="dim" if row["run_id"] in deleted else None)
    notes = [f"{len(frame)} run{'s' if len(frame) != 1 else ''}"]
    if more:
        notes.append("more match: raise --max")
    hidden = []
    if len(metrics) < len(metric_keys):
        hidden.append(f"{len(metrics)} of {len(metric_keys)} metrics")
    if len(params) < len(param_keys):
        hidden.append(f"{len(params)} of {len(param_keys)} params")
    if hidden:
        notes.append(f"showing {' and '.join(hidden)}; --format json has all")
    table.caption = " · ".join(notes)
    table.caption_justify = "left"
    return table


def _keys(frame: pd.DataFrame, prefix: str) -> list[str]:
    return [column[len(prefix) :] for column in frame.columns if column.startswith(prefix)]


def _pick_columns(
    frame: pd.DataFrame, prefix: str, keys: list[str], priority: list[str], prefer_varying: bool
) -> list[str]:
    """Keys in the order worth showing: the ones asked about, then well-filled ones.

    Params that differ between the listed runs come before constant ones; metrics that
    look like timings (``fit_seconds``) come after quality metrics.
    """

    def rank(key: str) -> tuple[int, int, int, int, str]:
        column = frame[f"{prefix}{key}"]
        asked = priority.index(key) if key in priority else len(priority)
        constant = prefer_varying and column.dropna().astype(str).nunique() <= 1
        timing = not prefer_varying and bool(re.search(r"time|seconds|duration", key, re.I))
        return (asked, int(constant), int(timing), -int(column.notna().sum()), key)

    return sorted(keys, key=rank)


def _base_width(frame: pd.DataFrame, show_experiment: bool, any_deleted: bool) -> int:
    """Width taken by the fixed columns (id, name, experiment, status, start, duration)."""
    widths = [8, max(4, int(frame["run_name"].astype(str).str.len().max()))]
    if show_experiment:
        widths.append(max(10, int(frame["experiment"].astype(str).str.len().max())))
    widths += [8 + (10 if any_deleted else 0), _START_WIDTH, 8]
    return sum(w + _CELL_PADDING for w in widths) + 1


def _fit_columns(
    frame: pd.DataFrame, room: int, metrics: list[str], params: list[str]
) -> tuple[list[str], list[str]]:
    """As many metric and param columns as fit in ``room`` characters, best ones first."""
    queues = {"metrics": list(metrics), "params": list(params)}
    chosen: dict[str, list[str]] = {"metrics": [], "params": []}
    pattern = 0
    while queues["metrics"] or queues["params"]:
        kind = _COLUMN_PATTERN[pattern % len(_COLUMN_PATTERN)]
        pattern += 1
        if not queues[kind]:
            kind = "params" if kind == "metrics" else "metrics"
        key = queues[kind].pop(0)
        needed = _column_width(frame, kind, key) + _CELL_PADDING
        if needed <= room:
            chosen[kind].append(key)
            room -= needed
    return chosen["metrics"], chosen["params"]


def _column_width(frame: pd.DataFrame, kind: str, key: str) -> int:
    values = frame[f"{kind}.{key}"].dropna()
    render = format_number if kind == "metrics" else str
    longest = max((len(render(value)) for value in values), default=0)
    return max(len(key), longest if kind == "metrics" else min(_MAX_PARAM_WIDTH, longest))


def _mentioned(filter_text: str, kind: str) -> list[str]:
    pattern = rf"\b{kind}\.(?:`([^`]+)`|\"([^\"]+)\"|([A-Za-z_][\w\-/.:]*))"
    return [next(g for g in match if g) for match in re.findall(pattern, filter_text, re.I)]


def _cell(value: Any, numeric: bool = False) -> str:
    if is_missing(value):
        return ""
    return format_number(value) if numeric else escape(str(value))


def _run_record(row: pd.Series, deleted: set[str]) -> dict[str, Any]:
    def section(prefix: str) -> dict[str, Any]:
        return {
            str(key)[len(prefix) :]: _plain(value)
            for key, value in row.items()
            if str(key).startswith(prefix) and not is_missing(value)
        }

    return {
        "run_id": row["run_id"],
        "run_name": row["run_name"],
        "experiment": row["experiment"],
        "status": row["status"],
        "deleted": row["run_id"] in deleted,
        "start_time": _iso(row["start_time"]),
        "end_time": _iso(row["end_time"]),
        "duration_seconds": duration_seconds(row["start_time"], row["end_time"]),
        "parent_run_id": None if is_missing(row["parent_run_id"]) else row["parent_run_id"],
        "user": None if is_missing(row["user"]) else row["user"],
        "git_commit": None if is_missing(row["git_commit"]) else row["git_commit"],
        "metrics": {k: v for k, v in section("metrics.").items() if _finite(v)},
        "params": section("params."),
        "tags": section("tags."),
    }


def _runs_csv(frame: pd.DataFrame, deleted: set[str]) -> str:
    table = frame.copy()
    table.insert(4, "deleted", [run_id in deleted for run_id in table["run_id"]])
    for column in ("start_time", "end_time"):
        table[column] = [_iso(value) for value in table[column]]
    buffer = io.StringIO()
    table.to_csv(buffer, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    return buffer.getvalue()


def _iso(value: Any) -> str | None:
    if is_missing(value):
        return None
    return str(value.isoformat()) if hasattr(value, "isoformat") else str(value)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _finite(value: Any) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


# -- show -----------------------------------------------------------------------
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
        run = ws.get_run(resolve_run_id(ws, run_id))
        info = run.info
        parent = None
        if info.parent_run_id:
            try:
                parent = ws.get_run(info.parent_run_id)
            except NotFoundError:
                parent = None
        out.print(_info_panel(run, parent))
        if info.error:
            out.print(_error_panel(info.error, info.status))
        _print_key_values(out, "Params", run.params, style="magenta")
        _print_metrics(out, run)
        _print_key_values(out, "Tags", run.tags)
        _print_artifacts(out, run)
        _print_children(out, run)


def _info_panel(run: Run, parent: Run | None) -> Panel:
    info = run.info
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("experiment", escape(run.experiment))
    grid.add_row("status", status_text(info.status, info.deleted))
    grid.add_row("started", local_time(info.start_time))
    if info.end_time is not None:
        grid.add_row("ended", local_time(info.end_time))
        grid.add_row("duration", format_duration((info.end_time - info.start_time) / 1000))
    if info.parent_run_id:
        name = f" ({escape(parent.info.name)})" if parent is not None else " (removed)"
        grid.add_row("parent", f"{info.parent_run_id}{name}")
    if info.user:
        grid.add_row("user", escape(info.user))
    if info.source:
        grid.add_row("source", escape(info.source))
    if info.git_commit:
        state = ""
        if info.git_dirty:
            state = (
                " [yellow](dirty; diff stored)[/]"
                if info.git_diff_sha256
                else " [yellow](dirty)[/]"
            )
        elif info.git_dirty is False:
            state = " (clean)"
        grid.add_row("git commit", f"{info.git_commit}{state}")
    if info.environment_id:
        grid.add_row("environment", info.environment_id[:12])
    title = f"[bold]{escape(info.name)}[/]  [cyan]{info.run_id}[/]"
    return Panel(grid, title=title, title_align="left", expand=False)


def _error_panel(error: str, status: str) -> Panel:
    lines = error.rstrip().splitlines()
    shown = lines[-_ERROR_LINES:]
    body = Text("\n".join(shown))
    if len(lines) > len(shown):
        body = Text.assemble((f"... {len(lines) - len(shown)} earlier lines\n", "dim"), body)
    return Panel(
        body, title=f"[bold red]Error ({status})[/]", title_align="left", border_style="red"
    )


def _print_key_values(out: Console, title: str, values: dict[str, str], style: str = "") -> None:
    if not values:
        out.print(f"[bold]{title}:[/] [dim]none[/]")
        return
    table = Table(title=title, title_justify="left", title_style="bold", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value", style=style, overflow="fold")
    for key in sorted(values):
        table.add_row(escape(key), escape(values[key]))
    out.print(table)


def _print_metrics(out: Console, run: Run) -> None:
    latest = run.metrics
    if not latest:
        out.print("[bold]Metrics:[/] [dim]none[/]")
        return
    history = run.metric_history()
    table = Table(title="Metrics", title_justify="left", title_style="bold", header_style="bold")
    table.add_column("metric")
    table.add_column("latest", justify="right")
    table.add_column("steps", justify="right")
    table.add_column("min", justify="right")
    table.add_column("max", justify="right")
    table.add_column("history")
    for key in sorted(latest):
        points = history[history["key"] == key].sort_values(["step", "timestamp"])
        values = [float(v) for v in points["value"]]
        if len(values) > 1:
            finite = [v for v in values if math.isfinite(v)] or values
            table.add_row(
                escape(key),
                format_number(latest[key]),
                f"{len(values):,}",
                format_number(min(finite)),
                format_number(max(finite)),
                Text(sparkline(values), style="green"),
            )
        else:
            table.add_row(escape(key), format_number(latest[key]), "", "", "", "")
    out.print(table)


def _print_artifacts(out: Console, run: Run) -> None:
    artifacts = run.artifacts()
    if not artifacts:
        out.print("[bold]Artifacts:[/] [dim]none[/]")
        return
    table = Table(title="Artifacts", title_justify="left", title_style="bold", header_style="bold")
    table.add_column("path")
    table.add_column("size", justify="right")
    for item in artifacts:
        table.add_row(escape(item.path), human_bytes(item.size))
    table.caption = f"{len(artifacts)} files, {human_bytes(sum(a.size for a in artifacts))}"
    table.caption_justify = "left"
    out.print(table)


def _print_children(out: Console, run: Run) -> None:
    children = run.children()
    if not children:
        return
    table = Table(title="Child runs", title_justify="left", title_style="bold", header_style="bold")
    table.add_column("run id", style="cyan")
    table.add_column("name")
    table.add_column("status")
    table.add_column("duration", justify="right")
    for child in children:
        info = child.info
        table.add_row(
            short_id(info.run_id),
            escape(info.name),
            status_text(info.status, info.deleted),
            format_duration(duration_seconds(info.start_time, info.end_time)),
        )
    out.print(table)


# -- compare --------------------------------------------------------------------
@app.command("compare")
def compare_runs(
    run_ids: Annotated[
        list[str],
        typer.Argument(metavar="RUN_ID...", help="Two or more run ids (or unique prefixes)."),
    ],
    only_differences: Annotated[
        bool, typer.Option("--diff", "-d", help="Only rows whose values differ.")
    ] = False,
    home: HomeOption = None,
) -> None:
    """Put runs' params and metrics side by side; differing rows marked ≠, best metric ★."""
    out = console()
    with open_workspace(home) as ws:
        if len(run_ids) < 2:
            raise ValidationError("Give at least two run ids to compare.")
        resolved = [resolve_run_id(ws, text) for text in run_ids]
        runs = [ws.get_run(run_id) for run_id in resolved]
        infos = [run.info for run in runs]
        params = [run.params for run in runs]
        metrics = [run.metrics for run in runs]
        experiments = [run.experiment for run in runs]
    headers = [f"{escape(info.name)}\n[cyan]{short_id(info.run_id)}[/]" for info in infos]

    overview = _compare_table("Runs", headers)
    _add_compare_row(overview, "experiment", [escape(e) for e in experiments], only_differences)
    statuses = [status_text(i.status, i.deleted) for i in infos]
    _add_compare_row(overview, "status", statuses, only_differences, raw=[i.status for i in infos])
    _add_compare_row(
        overview,
        "duration",
        [format_duration(duration_seconds(i.start_time, i.end_time)) for i in infos],
        only_differences,
        differs=False,
    )
    out.print(overview)

    param_table = _compare_table("Params", headers)
    for key in sorted({k for p in params for k in p}):
        texts = [p.get(key) for p in params]
        _add_compare_row(
            param_table, key, [_missing_or(v, escape) for v in texts], only_differences, raw=texts
        )
    out.print(param_table if param_table.row_count else "[bold]Params:[/] [dim]none differ[/]")

    metric_table = _compare_table("Metrics", headers)
    for key in sorted({k for m in metrics for k in m}):
        values = [m.get(key) for m in metrics]
        numbers = [v for v in values if v is not None and math.isfinite(v)]
        best = None
        if len(set(numbers)) > 1:
            best = min(numbers) if lower_is_better(key) else max(numbers)
        cells: list[Any] = []
        for value in values:
            if value is None:
                cells.append(Text("—", style="dim"))
            elif best is not None and value == best:
                cells.append(Text(f"{format_number(value)} ★", style="bold green"))
            else:
                cells.append(format_number(value))
        _add_compare_row(metric_table, key, cells, only_differences, raw=values)
    out.print(metric_table if metric_table.row_count else "[bold]Metrics:[/] [dim]none differ[/]")
    out.print("[dim]≠ values differ · ★ best value (lowest for loss/error/time metrics)[/]")


def _compare_table(title: str, headers: list[str]) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", header_style="bold")
    table.add_column("", width=1, style="bold yellow")
    table.add_column("")
    for header in headers:
        table.add_column(header, overflow="fold")
    return table


def _add_compare_row(
    table: Table,
    key: str,
    cells: list[Any],
    only_differences: bool,
    raw: list[Any] | None = None,
    differs: bool | None = None,
) -> None:
    values = raw if raw is not None else [str(cell) for cell in cells]
    if differs is None:
        differs = len({repr(v) for v in values}) > 1
    if only_differences and not differs:
        return
    style = "bold yellow" if differs else None
    table.add_row("≠" if differs else "", escape(key), *cells, style=style)


def _missing_or(value: Any, render: Any) -> Any:
    return Text("—", style="dim") if value is None else render(value)


# -- delete / restore -----------------------------------------------------------
@app.command("delete")
def delete_runs(
    run_ids: Annotated[
        list[str], typer.Argument(metavar="RUN_ID...", help="Run ids (or unique prefixes).")
    ],
    home: HomeOption = None,
) -> None:
    """Soft-delete runs (and their children): hidden from lists until restored or `loopml gc`."""
    out = console()
    with open_workspace(home) as ws:
        for text in run_ids:
            run = ws.get_run(resolve_run_id(ws, text))
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
        list[str], typer.Argument(metavar="RUN_ID...", help="Run ids (or unique prefixes).")
    ],
    home: HomeOption = None,
) -> None:
    """Bring back soft-deleted runs (and their children)."""
    out = console()
    with open_workspace(home) as ws:
        for text in run_ids:
            run = ws.get_run(resolve_run_id(ws, text))
            ws.restore_run(run.id)
            out.print(f"Restored run [cyan]{short_id(run.id)}[/] ({escape(run.info.name)}).")
