"""``loopml demo``: train a few models on a bundled dataset, tracked, with a progress bar."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from loopml.cli._output import HomeOption, console, format_number, open_workspace, short_id
from loopml.cli.evaluate import _checks_heading, _checks_table
from loopml.demo import (
    DEMO_EXPERIMENT,
    DEMO_MODEL,
    DEMO_SHIFT,
    DemoMonitoring,
    DemoResult,
    demo_models,
    monitor_traffic,
    run_demo,
    serve_and_send,
    tune_and_gate,
)


def demo(
    experiment: Annotated[
        str, typer.Option("--experiment", "-e", help="Experiment to log the runs into.")
    ] = DEMO_EXPERIMENT,
    home: HomeOption = None,
) -> None:
    """Version a dataset, train a few tracked models on it, tune one and gate it."""
    out = console()
    models = demo_models()
    with open_workspace(home, create=True) as ws:
        out.print(
            f"Training {len(models)} models on scikit-learn's breast cancer dataset, "
            f"tracked in experiment [bold]{escape(experiment)}[/]"
        )
        out.print(
            "[dim]split once: 60% to fit, 20% to compare (validation), 20% held out for the gate[/]"
        )
        out.print(f"[dim]workspace: {escape(str(ws.settings.home))}[/]")
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}", style="bold"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=out,
        ) as progress:
            task = progress.add_task("starting", total=len(models))

            def update(name: str, done: int, total: int) -> None:
                label = "done" if done == total else f"training {name}"
                progress.update(task, description=label, completed=done, total=total)

            results = run_demo(ws, experiment, models=models, on_progress=update)
        out.print(_ranking(results, experiment))
        with out.status(
            "Registering the best model, searching C for a logistic regression "
            "(6 trials), then gating it against production"
        ):
            gated = tune_and_gate(ws, results, experiment)
            lineage = ws.registry.lineage(f"models:/{DEMO_MODEL}@production")
        with out.status(f"Serving {DEMO_MODEL}@production over HTTP and sending it traffic"):
            traffic = serve_and_send(ws, requests=200, shifted=200)
        with out.status("Monitoring both windows of traffic against the training data"):
            watched = monitor_traffic(ws, traffic, ws.settings.home / "monitoring-report.html")
    search = gated.search
    out.print(
        f"Best of the search: C={search.best_params['C']:.4g}, "
        f"validation roc_auc {format_number(search.best_metrics['roc_auc'])} "
        f"(run {short_id(search.run.id)})"
    )
    candidate = (
        f"logreg-search ({short_id(search.run.id)}) on {gated.held_out_rows} held-out rows "
        f"of {gated.dataset}"
    )
    out.print(_checks_heading(gated.verdict, candidate))
    out.print(_checks_table(gated.verdict))
    out.print(f"Registered [bold]{escape(DEMO_MODEL)}[/]:")
    for event in gated.events:
        moved = f"{event.from_version} → " if event.from_version else ""
        out.print(
            f"  @{escape(event.alias)}: version {moved}{event.to_version} "
            f"[dim]({escape(event.reason or '')})[/]"
        )
    out.print(lineage.to_tree())
    out.print(
        f"Served version {traffic.version} at {traffic.url}: {traffic.ok} of "
        f"{traffic.requests} requests answered (p50 {traffic.p50_ms:.1f} ms, p99 "
        f"{traffic.p99_ms:.1f} ms), {traffic.refused} malformed ones refused with 422, "
        f"{traffic.logged_rows} predictions in the log (ws.predictions), "
        f"{traffic.labelled} labels sent back as feedback."
    )
    out.print(_monitoring_table(watched))
    for change in watched.shifted.alerts:
        out.print(f"[bold red]Alert[/] {escape(change.message)}")
    out.print(f"Monitoring report: {escape(str(watched.report))}")
    home_flag = f" --home {home}" if home is not None else ""
    out.print("Next:")
    out.print(
        f"  loopml runs list --experiment {escape(experiment)}"
        f' --order-by "metrics.roc_auc desc"{escape(home_flag)}'
    )
    best = max(results, key=lambda r: r.metrics["roc_auc"])
    out.print(f"  loopml runs show {short_id(best.run_id)}{escape(home_flag)}")
    out.print(f"  loopml models history {DEMO_MODEL}{escape(home_flag)}")
    out.print(f"  loopml serve models:/{DEMO_MODEL}@production{escape(home_flag)}")
    out.print(
        f"  loopml monitor check models:/{DEMO_MODEL}@production --window 1h{escape(home_flag)}"
    )
    if len(results) > 1:
        ids = " ".join(short_id(r.run_id) for r in results[:2])
        out.print(f"  loopml runs compare {ids}{escape(home_flag)}")


def _monitoring_table(watched: DemoMonitoring) -> Table:
    shift = ", ".join(f"{name} x{factor}" for name, factor in DEMO_SHIFT.items())
    table = Table(
        title=f"Monitoring: the traffic as it came, then with {shift}",
        title_justify="left",
        header_style="bold",
    )
    for column in ("window", "predictions", "drifted features", "share", "accuracy", "alerts"):
        table.add_column(column, justify="right" if column in ("predictions", "share") else "left")
    for label, result in (("as it came", watched.stable), ("shifted", watched.shifted)):
        drift = result.drift
        drifted = ", ".join(drift.drifted_features) if drift is not None else ""
        accuracy = ""
        if result.performance is not None and result.performance.windows:
            accuracy = format_number(result.performance.windows[0].metrics.get("accuracy"))
        fired = ", ".join(c.rule for c in result.firing)
        table.add_row(
            label,
            f"{result.rows:,}",
            escape(drifted or "none"),
            f"{drift.share:.0%}" if drift is not None else "",
            accuracy,
            f"[bold red]{escape(fired)}[/]" if fired else "none",
        )
    return table


def _ranking(results: list[DemoResult], experiment: str) -> Table:
    ranked = sorted(results, key=lambda r: r.metrics["roc_auc"], reverse=True)
    table = Table(
        title=f"Runs in {escape(experiment)}, ranked by validation roc_auc",
        title_justify="left",
        header_style="bold",
    )
    table.add_column("#", justify="right")
    table.add_column("run id", style="cyan")
    table.add_column("name")
    table.add_column("roc_auc", justify="right", style="bold")
    for metric in ("accuracy", "f1", "log_loss"):
        table.add_column(metric, justify="right")
    for rank, result in enumerate(ranked, start=1):
        table.add_row(
            str(rank),
            short_id(result.run_id),
            escape(result.run_name),
            *(format_number(result.metrics[m]) for m in ("roc_auc", "accuracy", "f1", "log_loss")),
            style="green" if rank == 1 else None,
        )
    return table
