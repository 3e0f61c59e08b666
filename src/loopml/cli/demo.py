"""``loopml demo``: the whole loop on a bundled dataset, from tracked training to a
retrained, canaried, promoted version, every figure read back from the workspace."""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Annotated

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
    DemoGate,
    DemoResult,
    demo_frames,
    demo_models,
    run_demo,
    tune_and_gate,
)
from loopml.demo_loop import (
    DEMO_SHIFT,
    ClosedLoop,
    DemoServer,
    accuracy,
    run_closed_loop,
    write_loop_report,
    write_project,
)

if TYPE_CHECKING:
    from rich.console import Console

    from loopml.registry import AliasEvent


def demo(
    experiment: Annotated[
        str, typer.Option("--experiment", "-e", help="Experiment to log the runs into.")
    ] = DEMO_EXPERIMENT,
    home: HomeOption = None,
) -> None:
    """The closed loop in about a minute: train, tune, gate, register, serve, monitor a
    shift, retrain on the alert through the continuous-training pipeline, canary, promote."""
    out = console()
    models = demo_models()
    # The demo prints alerts and stopped pipelines itself; without a handler of the
    # user's, Python would also print loopml's warnings about them, out of order.
    logging.getLogger("loopml").addHandler(logging.NullHandler())
    with open_workspace(home, create=True) as ws:
        out.print(
            f"Training {len(models)} models on 70% of scikit-learn's breast cancer dataset "
            "(the rest plays live traffic later), "
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
        _print_gate(out, gated)
        _, live = demo_frames()
        project = write_project(ws.settings.home, ws.settings.home / "incoming")
        out.print(
            f"Wrote the continuous-training project [bold]{escape(str(project))}[/] "
            "(retrain with a search, gate, canary, promote)"
        )
        with out.status(
            f"Serving {DEMO_MODEL}@production over HTTP; sending {len(live)} live rows as "
            "they come, then shifted; monitoring; retraining on the alert"
        ):
            with DemoServer(ws) as server:
                loop = run_closed_loop(ws, server, live)
            production = f"models:/{DEMO_MODEL}@production"
            monitoring = ws.monitor.report(
                production, "1h", ws.settings.home / "monitoring-report.html"
            )
            summary = write_loop_report(ws, loop, ws.settings.home / "loop-report.html")
        _print_loop(out, loop)
        out.print(f"Monitoring report: {escape(str(monitoring))}")
        out.print(f"Summary of the loop: [bold]{escape(str(summary))}[/]")
    home_flag = f" --home {home}" if home is not None else ""
    out.print("Next:")
    out.print(
        f"  loopml runs list --experiment {escape(experiment)}"
        f' --order-by "metrics.roc_auc desc"{escape(home_flag)}'
    )
    best = max(results, key=lambda r: r.metrics["roc_auc"])
    out.print(f"  loopml runs show {short_id(best.run_id)}{escape(home_flag)}")
    out.print(f"  loopml models history {DEMO_MODEL}{escape(home_flag)}")
    if loop.pipeline is not None:
        out.print(f"  loopml pipeline show {short_id(loop.pipeline.run_id)}{escape(home_flag)}")
    out.print(f"  loopml monitor alerts --model {DEMO_MODEL}{escape(home_flag)}")
    out.print(f"  loopml serve models:/{DEMO_MODEL}@production{escape(home_flag)}")
    if len(results) > 1:
        ids = " ".join(short_id(r.run_id) for r in results[:2])
        out.print(f"  loopml runs compare {ids}{escape(home_flag)}")


def _print_gate(out: Console, gated: DemoGate) -> None:
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
    _print_events(out, gated.events)


def _print_events(out: Console, events: list[AliasEvent]) -> None:
    for event in events:
        moved = f"{event.from_version} → " if event.from_version else ""
        out.print(
            f"  {escape(event.action)} @{escape(event.alias)}: version {moved}{event.to_version} "
            f"[dim]({escape(event.reason or '')})[/]"
        )


def _print_loop(out: Console, loop: ClosedLoop) -> None:
    stable, served = loop.stable, loop.served_version
    out.print(
        f"Served version {served}: {stable.ok} of {stable.sent} requests answered (p50 "
        f"{stable.percentile(50):.1f} ms, p99 {stable.percentile(99):.1f} ms), "
        f"{stable.refused} malformed ones refused with 422; {loop.logged_rows} predictions "
        f"in the log in all, {loop.labelled} labels sent back later as feedback."
    )
    out.print(_monitoring_table(loop))
    if loop.alert is None:
        out.print("[bold]No alert fired[/]: nothing to retrain on.")
        return
    out.print(f"[bold red]Alert #{loop.alert.alert_id}[/] {escape(loop.alert.message)}")
    run = loop.pipeline
    if run is None:
        out.print("The alert's action started no pipeline run.")
        return
    title = f"pipeline ct run {short_id(run.run_id)} ({run.status}), reason: {run.reason or ''}"
    from loopml.pipelines.render import to_tree  # pipelines load only when shown

    out.print(to_tree(run.graph, run.steps, escape(title)))
    if run.error:
        out.print(f"[bold red]Stopped[/]: {escape(run.error)}")
    canary = [e for e in loop.events if e.action.startswith("canary")]
    if canary or loop.events:
        out.print("Releases:")
        _print_events(out, loop.events)
    before, after = accuracy(loop.watched["shifted"]), accuracy(loop.watched["after"])
    if loop.new_version is not None:
        out.print(
            f"Accuracy on shifted traffic: version {served} {format_number(before)} → "
            f"version {loop.new_version} {format_number(after)} (rows neither model trained on"
            " for the latter)"
        )
    if loop.lineage is not None:  # its parent's own lineage is in the HTML summary
        parent = loop.lineage.parent
        out.print(f"Lineage of version {loop.new_version}, back to the alert:")
        out.print(dataclasses.replace(loop.lineage, parent=None).to_tree())
        if parent is not None:
            out.print(f"  retrained from {escape(parent.model['uri'])}")


def _monitoring_table(loop: ClosedLoop) -> Table:
    shift = ", ".join(f"{name} x{factor}" for name, factor in DEMO_SHIFT.items())
    table = Table(
        title=f"Monitoring: the live rows as they came, then with {shift}",
        title_justify="left",
        header_style="bold",
    )
    for column in ("window", "version", "rows", "drifted features", "share", "accuracy",
                   "alerts"):  # fmt: skip
        numeric = column in ("version", "rows", "share", "accuracy")
        table.add_column(column, justify="right" if numeric else "left")
    windows = [
        ("as it came", loop.served_version, loop.watched["stable"]),
        ("shifted", loop.served_version, loop.watched["shifted"]),
        ("shifted, after", loop.new_version or loop.served_version, loop.watched["after"]),
    ]
    for label, version, result in windows:
        drift = result.drift
        drifted = ", ".join(drift.drifted_features) if drift is not None else ""
        fired = ", ".join(c.rule for c in result.firing)
        table.add_row(
            label,
            str(version),
            f"{result.rows:,}",
            escape(drifted or "none"),
            f"{drift.share:.0%}" if drift is not None else "",
            format_number(accuracy(result)),
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
