"""``loopml monitor check|run|report|alerts``: a thin layer over ``ws.monitor``."""

from __future__ import annotations

import json
import math
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from loopml.cli._output import HomeOption, console, format_number, local_time, open_workspace

if TYPE_CHECKING:
    from loopml.monitoring import WindowResult

app = typer.Typer(
    help="Monitoring: drift, performance with delayed labels, concept drift, health, alerts.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

Ref = Annotated[
    str, typer.Argument(help="Model reference, e.g. models:/churn@production.", show_default=False)
]
Window = Annotated[str, typer.Option("--window", "-w", help="Window length: 30m, 1h, 1d, 7d.")]
Rules = Annotated[
    Path | None,
    typer.Option("--rules", "-r", help="Alert rules (YAML).", exists=True, dir_okay=False),
]


@app.command()
def check(
    ref: Ref,
    window: Window = "1d",
    last: Annotated[
        int | None, typer.Option(min=1, help="Judge the last N predictions instead of a window.")
    ] = None,
    rules: Rules = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    home: HomeOption = None,
) -> None:
    """Judge the last WINDOW of traffic; exit 1 when an alert is firing (for cron and CI)."""
    with open_workspace(home) as ws:
        result = ws.monitor.check(ref, window, last=last, rules=str(rules) if rules else None)
    if as_json:
        typer.echo(json.dumps(_as_dict(result), default=str))
    else:
        _print_window(result)
    if result.firing:
        raise typer.Exit(1)


@app.command()
def run(
    ref: Ref,
    window: Window = "1h",
    rules: Rules = None,
    catch_up: Annotated[int, typer.Option(min=1, help="Missed windows to evaluate.")] = 24,
    poll: Annotated[float, typer.Option(min=0.1, help="Seconds between checks.")] = 5.0,
    max_windows: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many windows.")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Evaluate aligned windows as they close, until stopped (SIGINT/SIGTERM).

    Restart-safe: a cursor in the metadata store remembers the last finished window,
    under a lease, so a restart neither skips nor repeats a window and two monitors
    never judge the same one.
    """
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    with open_workspace(home) as ws:
        done = ws.monitor.run(
            ref,
            window,
            rules=str(rules) if rules else None,
            catch_up=catch_up,
            poll_seconds=poll,
            max_windows=max_windows,
            on_window=_print_window,
            stop=stopping.is_set,
            sleep=stopping.wait,
        )
    console().print(f"Stopped after {done} window(s).")


@app.command()
def report(
    ref: Ref,
    window: Window = "1d",
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write.")] = Path(
        "monitoring-report.html"
    ),
    history: Annotated[str, typer.Option(help="How far back the series go.")] = "30d",
    home: HomeOption = None,
) -> None:
    """Write a self-contained HTML report: drift of the last WINDOW, series over time."""
    with open_workspace(home) as ws:
        path = ws.monitor.report(ref, window, out, history=history)
    size = path.stat().st_size
    console().print(f"Wrote {path} ({size / 1e6:.1f} MB); open it in a browser, offline.")


@app.command()
def alerts(
    model: Annotated[str | None, typer.Argument(help="Model name (default: all).")] = None,
    state: Annotated[str | None, typer.Option(help="firing or resolved.")] = None,
    home: HomeOption = None,
) -> None:
    """List alerts, newest first."""
    with open_workspace(home) as ws:
        found = ws.monitor.alerts(model, state)
    out = console()
    if not found:
        out.print("No alerts.")
        return
    table = Table(title="Alerts", title_justify="left", header_style="bold")
    for column in ("id", "model", "rule", "severity", "state", "value", "fired", "resolved"):
        table.add_column(column, justify="right" if column in ("id", "value") else "left")
    for alert in found:
        table.add_row(
            str(alert.alert_id),
            escape(alert.model),
            escape(alert.rule),
            _severity(alert.severity),
            "[red]firing[/]" if alert.state == "firing" else "[green]resolved[/]",
            format_number(alert.value),
            local_time(alert.fired_at),
            local_time(alert.resolved_at),
        )
    out.print(table)


def _severity(severity: str) -> str:
    style = {"critical": "bold red", "warning": "yellow"}.get(severity, "")
    return f"[{style}]{severity}[/]" if style else severity


def _print_window(result: WindowResult) -> None:
    out = console()
    out.print(
        f"[bold]{escape(result.model)}[/] v{result.version}  "
        f"{local_time(result.start)} .. {local_time(result.end)}  {result.rows:,} predictions"
    )
    for note in result.notes:
        out.print(f"[dim]{escape(note)}[/]")
    if result.drift is not None:
        frame = result.drift.to_frame()
        table = Table(title="Drift", title_justify="left", header_style="bold")
        for column in ("feature", "test", "statistic", "threshold", "p-value", "drifted"):
            table.add_column(column, justify="left" if column in ("feature", "test") else "right")
        for row in frame.itertuples(index=False):
            drifted = bool(row.drifted)
            table.add_row(
                escape(str(row.feature)),
                escape(str(row.test)),
                format_number(row.statistic),
                format_number(row.threshold),
                "" if _missing(row.p_value) else f"{row.p_value:.2g}",
                "[bold red]yes[/]" if drifted else "no",
            )
        out.print(table)
        share = result.drift.share
        out.print(
            f"Drifted: {', '.join(result.drift.drifted_features) or 'none'} "
            f"({share:.0%} of features)"
        )
    if result.performance is not None:
        for window in result.performance.windows:
            metrics = ", ".join(
                f"{name} {value:.3f}" for name, value in window.metrics.items() if _finite(value)
            )
            state = "complete" if window.complete else "incomplete"
            out.print(
                f"Performance: {metrics or 'no labels yet'} "
                f"(labels {window.labelled:,}/{window.rows:,}, {state})"
            )
    for point in result.concept:
        out.print(f"[yellow]Concept drift[/]: {point.name} at {point.detail.get('time', '')}")
    for change in result.alerts:
        colour = {"fired": "bold red", "firing": "red", "resolved": "green"}.get(change.status)
        label = f"[{colour}]{change.status}[/]" if colour else change.status
        out.print(f"Alert {escape(change.rule)}: {label}  {escape(change.message)}")


def _as_dict(result: WindowResult) -> dict[str, Any]:
    return {
        "model": result.model,
        "version": result.version,
        "start": result.start.isoformat(),
        "end": result.end.isoformat(),
        "rows": result.rows,
        "notes": result.notes,
        "drift": None
        if result.drift is None
        else {
            "drifted_features": result.drift.drifted_features,
            "share": result.drift.share,
            "tests": json.loads(result.drift.to_frame().to_json(orient="records")),
        },
        "prediction_drift": None
        if result.prediction_drift is None
        else result.prediction_drift.drifted_features,
        "performance": None
        if result.performance is None
        else json.loads(result.performance.to_frame().to_json(orient="records", date_format="iso")),
        "concept": [point.name for point in result.concept],
        "alerts": [change.as_dict() for change in result.alerts],
        "firing": bool(result.firing),
    }


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
