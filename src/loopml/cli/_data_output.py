"""Rendering for ``loopml data ...``: progress, reports, versions, previews, diffs, frames.

Not public: :mod:`loopml.cli.data` holds the commands. Kept apart from them so the
commands stay a few lines each over ``ws.data``; one module past the usual size because
its sections (progress, reports, versions, frames, diffs) share the same few helpers
and are each short.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.measure import Measurement
from rich.padding import Padding
from rich.panel import Panel
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Column, Table
from rich.text import Text

from loopml.cli._output import (
    format_duration,
    format_number,
    human_bytes,
    is_missing,
    local_time,
    short_id,
)

if TYPE_CHECKING:
    import pandas as pd

    from loopml.data.catalog import DatasetVersion
    from loopml.data.diff import DatasetDiff
    from loopml.data.sources import Source
    from loopml.data.validation import ValidationReport

HASH_CHARS = 12
_EXAMPLE_CHARS = 48


# -- progress ------------------------------------------------------------------------
@contextmanager
def ingest_progress(console: Console, label: str) -> Iterator[Callable[[Source], None]]:
    """A transient progress bar; yields the ``on_progress`` callback that advances it.

    The bar shows bytes or rows as the source reports them, and pulses while the
    total is unknown. It disappears when done, leaving room for the summary.
    """
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[amount]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    task = progress.add_task(escape(label), total=None, amount="")

    def advance(source: Source) -> None:
        done = source.progress[0]
        progress.update(
            task,
            completed=done,
            total=source.total,
            amount=_amount(done, source.total, source.unit),
        )

    with progress:
        yield advance


def _amount(done: int, total: int | None, unit: str) -> str:
    if unit == "B":
        return human_bytes(done) + (f" / {human_bytes(total)}" if total else "")
    return f"{done:,}" + (f" / {total:,}" if total else "") + f" {unit}"


# -- validation reports ------------------------------------------------------------
def report_headline(report: ValidationReport) -> Text:
    """``✓ Validation passed: ...`` in green, or ``✗ Validation failed: ...`` in red."""
    rows = f"{report.rows_valid:,} of {report.rows_in:,} rows valid"
    checks = len(report.checks)
    failed = len(report.failed_checks)
    if report.passed:
        return Text(f"✓ Validation passed: {rows}, {checks} checks", style="green")
    if report.structural and not failed:
        return Text("✗ Validation failed: the columns do not fit the contract", style="bold red")
    invalid = f" ({report.rows_invalid:,} invalid)" if report.rows_invalid else ""
    which = f", {failed} of {checks} checks failed" if failed else ""
    return Text(f"✗ Validation failed: {rows}{invalid}{which}", style="bold red")


def report_table(report: ValidationReport) -> Table:
    """The failing checks of a report with their counts and example values; the
    passing ones are counted in the caption."""
    table = Table(header_style="bold")
    table.add_column("check")
    table.add_column("column")
    table.add_column("rule", style="dim", overflow="fold")
    table.add_column("failures", justify="right", style="red")
    table.add_column("examples", overflow="fold")
    failing = sorted(report.failed_checks, key=lambda c: (c.column or "", c.check))
    for check in failing:
        table.add_row(
            escape(check.check),
            escape(check.column) if check.column is not None else "[dim](dataset)[/]",
            escape(check.detail),
            f"{check.failures:,}",
            escape(examples_text(check.examples)),
        )
    passing = len(report.checks) - len(failing)
    if passing:
        table.caption = f"{passing} other checks passed"
        table.caption_justify = "left"
    return table


def print_report(console: Console, report: ValidationReport) -> None:
    """The headline, a table of failing checks, and problems with the columns themselves."""
    console.print(report_headline(report))
    if report.failed_checks:
        console.print(report_table(report))
    for problem in report.structural:
        console.print(f"  [red]•[/] {escape(problem)}")


def examples_text(examples: Sequence[Any]) -> str:
    shown = ", ".join(_example(value) for value in list(examples)[:3])
    if len(examples) > 3:
        shown += ", …"
    return shown if len(shown) <= _EXAMPLE_CHARS else shown[: _EXAMPLE_CHARS - 1] + "…"


def _example(value: Any) -> str:
    if is_missing(value):
        return "null"
    return repr(value) if isinstance(value, str) else str(value)


# -- versions ---------------------------------------------------------------------
def version_summary(version: DatasetVersion, created: bool, seconds: float) -> RenderableType:
    """What ``data ingest`` did: the ref, its shape and hash, and any quarantine."""
    shape = f"{version.rows:,} rows, {version.columns} columns"
    digest = version.content_hash[:HASH_CHARS]
    if created:
        head = Text.assemble(("✓ Stored ", "green"), (version.ref, "bold cyan"))
        head.append(f"  {shape}, content {digest}", style="")
        if seconds >= 0.5:
            head.append(f"  in {format_duration(seconds)}", style="dim")
    else:
        head = Text.assemble(("= ", "yellow"), (version.ref, "bold cyan"))
        head.append(" already holds these rows", style="yellow")
        head.append(f" (identical content {digest}); nothing new was stored.")
    lines: list[RenderableType] = [head]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", min_width=10)
    grid.add_column()
    grid.add_row("source", escape(version.source))
    grid.add_row("contract", contract_text(version))
    if version.quarantine is not None:
        grid.add_row(
            "quarantine",
            Text.assemble(
                (version.quarantine.ref, "bold yellow"),
                f"  {version.quarantine.rows:,} rows set aside",
                (f"  (loopml data show {version.quarantine.ref})", "dim"),
            ),
        )
    lines.append(Padding(grid, (0, 0, 0, 2), expand=False))
    return Group(*lines)


def contract_text(version: DatasetVersion) -> str:
    if version.contract_version is None:
        return "[dim]none[/]"
    return f"v{version.contract_version}, on invalid rows: {escape(version.on_invalid)}"


def versions_table(name: str, versions: Sequence[DatasetVersion], width: int) -> Table:
    """One line per version; on a narrow terminal the user, the source and then the
    creation time are left out rather than every cell cut short."""
    optional = ["by", "source", "created"]
    table = _versions_table(name, versions, set())
    for count in range(1, len(optional) + 1):
        if natural_width(table) <= width:
            break
        table = _versions_table(name, versions, set(optional[:count]))
    return table


def _versions_table(name: str, versions: Sequence[DatasetVersion], leave_out: set[str]) -> Table:
    columns = [
        Column("version", justify="right", style="bold cyan", no_wrap=True),
        Column("rows", justify="right", no_wrap=True),
        Column("cols", justify="right", no_wrap=True),
        Column("hash", no_wrap=True),
        Column("contract", no_wrap=True),
        Column("created", no_wrap=True),
        Column("by", overflow="ellipsis", max_width=16, no_wrap=True),
        Column("source", no_wrap=True),
        Column("quarantined", justify="right", no_wrap=True),
    ]
    kept = [str(column.header) for column in columns if column.header not in leave_out]
    table = Table(
        *(column for column in columns if column.header in kept),
        title=f"Versions of {escape(name)}",
        title_justify="left",
        header_style="bold",
    )
    for version in versions:
        quarantine = version.quarantine
        cells: dict[str, RenderableType] = {
            "version": str(version.version),
            "rows": f"{version.rows:,}",
            "cols": str(version.columns),
            "hash": version.content_hash[:HASH_CHARS],
            "contract": (
                f"v{version.contract_version} {escape(version.on_invalid)}"
                if version.contract_version is not None
                else "[dim]none[/]"
            ),
            "created": local_time(version.created_at),
            "by": escape(version.created_by or ""),
            "source": escape(tail(version.source, 40)),
            "quarantined": (
                Text(f"{quarantine.rows:,}", style="yellow") if quarantine is not None else ""
            ),
        }
        table.add_row(*(cells[column] for column in kept))
    if leave_out:
        table.caption = f"Left out to fit: {', '.join(sorted(leave_out))} (--format json has all)"
        table.caption_justify = "left"
    return table


def tail(text: str, width: int) -> str:
    """The end of ``text`` (where a path keeps its file name), at most ``width`` long."""
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def natural_width(renderable: RenderableType) -> int:
    """How wide ``renderable`` is when nothing constrains it."""
    wide = Console(width=10_000)
    return Measurement.get(wide, wide.options, renderable).maximum


def version_record(version: DatasetVersion) -> dict[str, Any]:
    """A version as plain JSON-ready values (``--format json``)."""
    quarantine = version.quarantine
    return {
        "ref": version.ref,
        "name": version.name,
        "version": version.version,
        "rows": version.rows,
        "columns": version.columns,
        "content_hash": version.content_hash,
        "contract_version": version.contract_version,
        "on_invalid": version.on_invalid,
        "created_at": version.created_at.isoformat(),
        "created_by": version.created_by,
        "source": version.source,
        "run_id": version.run_id,
        "quarantine": (
            {"ref": quarantine.ref, "rows": quarantine.rows} if quarantine is not None else None
        ),
        "passed": version.report.passed if version.report is not None else None,
    }


def version_panel(version: DatasetVersion) -> Panel:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("rows", f"{version.rows:,}")
    grid.add_row("columns", str(version.columns))
    grid.add_row("content hash", version.content_hash)
    grid.add_row("source", escape(version.source))
    grid.add_row("contract", contract_text(version))
    grid.add_row(
        "created", f"{local_time(version.created_at)} by {escape(version.created_by or '?')}"
    )
    if version.run_id:
        grid.add_row("produced by run", short_id(version.run_id))
    if version.quarantine is not None:
        grid.add_row(
            "quarantine",
            f"[yellow]{escape(version.quarantine.ref)}[/] ({version.quarantine.rows:,} rows)",
        )
    return Panel(grid, title=f"[bold cyan]{escape(version.ref)}[/]", title_align="left",
                 expand=False)  # fmt: skip


def schema_table(schema: Sequence[dict[str, str]]) -> Table:
    table = Table(title="Schema", title_justify="left", header_style="bold")
    table.add_column("column", style="bold")
    table.add_column("type")
    for field in schema:
        table.add_row(escape(field["name"]), escape(friendly_type(field["type"])))
    return table


def friendly_type(arrow_type: str) -> str:
    """``dictionary<values=string, indices=int32, ordered=0>`` → ``category<string>``."""
    if arrow_type.startswith("dictionary<values="):
        return f"category<{arrow_type.removeprefix('dictionary<values=').split(',')[0]}>"
    return arrow_type


def runs_table(runs: Sequence[tuple[str, str, str]]) -> Table:
    """(run id, role, run name) of the runs that read a version."""
    table = Table(title="Used by runs", title_justify="left", header_style="bold")
    table.add_column("run", style="cyan")
    table.add_column("name")
    table.add_column("role")
    for run_id, role, name in runs:
        table.add_row(short_id(run_id), escape(name), escape(role))
    return table


def datasets_table(rows: Sequence[tuple[str, int, DatasetVersion | None]]) -> Table:
    table = Table(title="Datasets", title_justify="left", header_style="bold")
    table.add_column("name", style="bold")
    table.add_column("versions", justify="right")
    table.add_column("latest", style="cyan")
    table.add_column("rows", justify="right")
    table.add_column("columns", justify="right")
    table.add_column("updated")
    for name, count, latest in rows:
        quarantine = name.endswith(".quarantine")
        if latest is None:
            table.add_row(escape(name), "0", "[dim]none[/]", "", "", "", style="dim")
            continue
        table.add_row(
            escape(name),
            f"{count:,}",
            latest.ref,
            f"{latest.rows:,}",
            str(latest.columns),
            local_time(latest.created_at),
            style="dim" if quarantine else None,
        )
    return table


# -- frames --------------------------------------------------------------------------
def frame_table(
    frame: pd.DataFrame,
    title: str,
    width: int,
    *,
    index: str | None = None,
    names: bool = False,
    cell: Callable[[Any], Text] | None = None,
    right: Sequence[str] = (),
) -> Table:
    """A DataFrame as a table: numbers right-aligned, and as many columns as fit
    ``width`` (the rest named in the caption).

    Args:
        index: Header of a first column holding the frame's index (none if None).
        names: Whether the index holds names (bold, left) rather than row numbers.
        cell: How to write a value (default: as the data holds it, see ``cell_text``).
        right: Columns to right-align besides the numeric ones.
    """
    columns = [str(c) for c in frame.columns]
    shown = columns
    table = _frame_table(frame, title, index, names, cell or cell_text, shown, right)
    while len(shown) > 1 and natural_width(table) > width:
        shown = shown[:-1]
        table = _frame_table(frame, title, index, names, cell or cell_text, shown, right)
    hidden = columns[len(shown) :]
    if hidden:
        listed = ", ".join(hidden[:8]) + (", …" if len(hidden) > 8 else "")
        table.caption = escape(f"{len(hidden)} more columns not shown: {listed}")
        table.caption_justify = "left"
    return table


def _frame_table(
    frame: pd.DataFrame,
    title: str,
    index: str | None,
    names: bool,
    cell: Callable[[Any], Text],
    shown: list[str],
    right: Sequence[str],
) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold")
    if index is not None:
        table.add_column(escape(index), justify="left" if names else "right",
                         style="bold" if names else "dim", no_wrap=True)  # fmt: skip
    for position, column in enumerate(shown):
        numeric = column in right or getattr(frame.dtypes.iloc[position], "kind", "") in "iuf"
        table.add_column(escape(column), justify="right" if numeric else "left",
                         overflow="ellipsis", no_wrap=True, max_width=48)  # fmt: skip
    for label, row in frame.iterrows():
        cells: list[RenderableType] = [Text(str(label))] if index is not None else []
        cells += [cell(row.iloc[i]) for i in range(len(shown))]
        table.add_row(*cells)
    return table


def cell_text(value: Any) -> Text:
    """A data value as written in the data: no thousands separators (ids stay ids), floats
    to 6 significant digits and still recognisable as floats, nulls dim."""
    if is_missing(value):
        return Text("null", style="dim")
    if isinstance(value, float) or (hasattr(value, "dtype") and value.dtype.kind == "f"):
        text = f"{float(value):.6g}"
        if text.lstrip("-").isdigit():
            text += ".0"
        return Text(text)
    return Text(str(value))


_PROFILE_COLUMNS = ["type", "missing_share", "distinct", "mean", "std", "min", "50%", "max"]


def profile_table(frame: pd.DataFrame, title: str, width: int) -> Table:
    """The per-column statistics of a profile worth reading in a terminal."""
    wanted = [c for c in _PROFILE_COLUMNS if c in frame.columns] or list(frame.columns)
    shown = frame[wanted].copy()
    if "missing_share" in shown.columns:
        shown["missing_share"] = [
            "" if is_missing(share) else f"{100 * float(share):.1f}%"
            for share in shown["missing_share"]
        ]
        shown = shown.rename(columns={"missing_share": "missing", "50%": "median"})
    index = str(frame.index.name or "column")
    return frame_table(
        shown, title, width, index=index, names=True, cell=stat_text, right=["missing"]
    )


def stat_text(value: Any) -> Text:
    """A statistic: 4 significant digits, blank when there is none."""
    return Text(_stat_text(value))


# -- diffs ---------------------------------------------------------------------------
def print_diff(console: Console, change: DatasetDiff) -> None:
    """Rows and schema changes as lines, then the per-column summary side by side."""
    console.print(
        Text.assemble("Comparing ", (change.old, "bold cyan"), " → ", (change.new, "bold cyan"))
    )
    delta = change.rows_new - change.rows_old
    console.print(
        f"  rows     {change.rows_old:,} → {change.rows_new:,} [{_delta_style(delta)}]"
        f"({delta:+,})[/]"
    )
    if change.identical_schema:
        console.print("  schema   [green]unchanged[/]")
    for column in change.columns_added:
        console.print(f"  [green]+ column {escape(column)}[/] (added)")
    for column in change.columns_removed:
        console.print(f"  [red]- column {escape(column)}[/] (removed)")
    for column, (before, after) in change.types_changed.items():
        console.print(f"  [yellow]~ column {escape(column)}[/]: {escape(before)} → {escape(after)}")
    if change.key:
        console.print(
            f"  by key   {escape(', '.join(change.key))}: "
            f"[green]{change.rows_added or 0:,} added[/], "
            f"[red]{change.rows_removed or 0:,} removed[/], "
            f"[yellow]{change.rows_changed or 0:,} changed[/]"
        )
    else:
        console.print(
            "  [dim]No key: pass --key COLUMN (or give the contract a key) to count rows "
            "added, removed and changed.[/]"
        )
    if change.columns is not None and not change.columns.empty:
        console.print(diff_columns_table(change.columns))


_DIFF_STATS = [
    ("null_percentage", "nulls %"),
    ("distinct", "~distinct"),
    ("avg", "mean"),
    ("std", "std"),
    ("min", "min"),
    ("max", "max"),
]
_AS_STORED = {"min", "max"}  # the data's own text: '1.0' stays a float, dates stay dates


def diff_columns_table(columns: pd.DataFrame) -> Table:
    table = Table(title="Columns (old → new)", title_justify="left", header_style="bold")
    table.add_column("column", style="bold")
    for _, label in _DIFF_STATS:
        table.add_column(label, justify="right", overflow="fold")
    for _, row in columns.iterrows():
        cells: list[RenderableType] = [escape(str(row["column"]))]
        for stat, _label in _DIFF_STATS:
            before, after = row.get(f"{stat}_old"), row.get(f"{stat}_new")
            cells.append(_change_cell(before, after, as_stored=stat in _AS_STORED))
        table.add_row(*cells)
    return table


def _change_cell(before: Any, after: Any, *, as_stored: bool = False) -> Text:
    text = _stored_text if as_stored else _stat_text
    old, new = text(before), text(after)
    if old == new:
        return Text(old, style="dim")
    return Text.assemble(old or "none", " → ", (new or "none", "yellow"))


def _stored_text(value: Any) -> str:
    return "" if is_missing(value) else str(value)


def _stat_text(value: Any) -> str:
    if is_missing(value):
        return ""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isfinite(number) and not number.is_integer():
        return f"{number:.4g}" if abs(number) < 1e6 else format_number(number)
    return format_number(number)


def _delta_style(delta: int) -> str:
    return "dim" if delta == 0 else "green" if delta > 0 else "red"
