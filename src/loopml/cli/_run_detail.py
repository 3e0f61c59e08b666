"""How ``loopml runs show`` and ``loopml runs compare`` present runs."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from loopml.cli._output import (
    duration_seconds,
    format_duration,
    format_number,
    human_bytes,
    local_time,
    lower_is_better,
    short_id,
    sparkline,
    status_text,
)
from loopml.store.entities import RunInfo
from loopml.tracking.run import Run

_ERROR_LINES = 30


@dataclass(frozen=True)
class RunSnapshot:
    """What ``runs compare`` shows of one run, read while the workspace is open."""

    info: RunInfo
    experiment: str
    params: dict[str, str]
    metrics: dict[str, float]

    @classmethod
    def of(cls, run: Run) -> RunSnapshot:
        return cls(run.info, run.experiment, run.params, run.metrics)


def print_run(out: Console, run: Run, parent: Run | None) -> None:
    """Info, the error of a failed run, params, metrics, tags, artifacts and children."""
    info = run.info
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
def print_comparison(out: Console, runs: list[RunSnapshot], only_differences: bool) -> None:
    """Overview, params and metrics side by side: ≠ on rows that differ, ★ on the best value."""
    headers = [f"{escape(r.info.name)}\n[cyan]{short_id(r.info.run_id)}[/]" for r in runs]
    infos = [r.info for r in runs]

    overview = _compare_table("Runs", headers)
    experiments = [escape(r.experiment) for r in runs]
    _add_compare_row(overview, "experiment", experiments, only_differences)
    statuses = [status_text(i.status, i.deleted) for i in infos]
    _add_compare_row(overview, "status", statuses, only_differences, raw=[i.status for i in infos])
    durations = [format_duration(duration_seconds(i.start_time, i.end_time)) for i in infos]
    _add_compare_row(overview, "duration", durations, only_differences, differs=False)
    if overview.row_count:
        out.print(overview)

    param_table = _compare_table("Params", headers)
    for key in sorted({k for r in runs for k in r.params}):
        texts = [r.params.get(key) for r in runs]
        cells = [_missing_or(text, escape) for text in texts]
        _add_compare_row(param_table, key, cells, only_differences, raw=texts)
    out.print(param_table if param_table.row_count else "[bold]Params:[/] [dim]none differ[/]")

    metric_table = _compare_table("Metrics", headers)
    for key in sorted({k for r in runs for k in r.metrics}):
        values = [r.metrics.get(key) for r in runs]
        _add_compare_row(
            metric_table, key, _metric_cells(key, values), only_differences, raw=values
        )
    out.print(metric_table if metric_table.row_count else "[bold]Metrics:[/] [dim]none differ[/]")
    out.print("[dim]≠ values differ · ★ best value (lowest for loss/error/time metrics)[/]")


def _metric_cells(key: str, values: list[float | None]) -> list[Any]:
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
    return cells


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
