"""``loopml evaluate`` and ``loopml gate``: over ``ws.evaluate`` and ``ws.gate``.

Exit codes of ``loopml gate``: 0 the gate passed; 1 a loopml error (bad policy, unknown
model or dataset, ...); 2 a command-line usage error (Click's own code, e.g. a missing
option); 3 the gate ran and failed. A distinct code for "failed" lets CI tell a model
that is not good enough from a gate that could not run.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from loopml.cli._output import HomeOption, console, format_number, open_workspace, short_id

if TYPE_CHECKING:
    from loopml.evaluation import Evaluation
    from loopml.evaluation.gate import GateResult

__all__ = ["GATE_FAILED", "evaluate", "gate"]

GATE_FAILED = 3

ModelArgument = Annotated[
    str,
    typer.Argument(
        metavar="MODEL",
        help="A run id (a prefix of 6+ characters is enough) or runs:/<run id>/<path>.",
        show_default=False,
    ),
]
DataOption = Annotated[
    str | None,
    typer.Option(
        "--data", "-d", metavar="REF", help="A dataset reference: name, name@3 or name@<hash>."
    ),
]
TargetOption = Annotated[
    str | None, typer.Option("--target", "-t", metavar="COL", help="The column of true labels.")
]


def evaluate(
    model: ModelArgument,
    data: Annotated[
        str,
        typer.Option(
            "--data", "-d", metavar="REF", help="A dataset reference: name, name@3 or name@<hash>."
        ),
    ],
    target: Annotated[
        str, typer.Option("--target", "-t", metavar="COL", help="The column of true labels.")
    ],
    slices: Annotated[
        list[str] | None,
        typer.Option("--slice", "-s", metavar="COL", help="Slice metrics by this column (repeat)."),
    ] = None,
    sensitive: Annotated[
        str | None,
        typer.Option("--sensitive", metavar="COL", help="A column for fairness differences."),
    ] = None,
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", min=0, help="Resamples for the 95% intervals.")
    ] = 200,
    robustness: Annotated[
        bool,
        typer.Option("--robustness/--no-robustness", help="Score the model on perturbed inputs."),
    ] = True,
    home: HomeOption = None,
) -> None:
    """Evaluate a run's model on a dataset: metrics with intervals, worst slices, fairness."""
    out = console()
    with open_workspace(home) as ws:
        with out.status(f"Evaluating {escape(model)} on {escape(data)}"):
            result = ws.evaluate(
                model,
                data,
                target,
                slices=slices or None,
                sensitive=sensitive,
                bootstrap=bootstrap,
                robustness=robustness,
            )
        out.print(_metrics_heading(result, model))
        out.print(_metrics_table(result))
        if result.worst_slice:
            out.print(_worst_slices_table(result))
        if result.fairness:
            out.print(_fairness_table(result.fairness))
        if result.robustness:
            out.print(_robustness_table(result.robustness))
        where = f"  logged to run [cyan]{short_id(result.run_id)}[/]" if result.run_id else ""
        out.print(f"evaluation id: {result.evaluation_id}{where}")


def gate(
    candidate: Annotated[
        str,
        typer.Argument(
            metavar="CANDIDATE",
            help="The candidate model: a run id (or 6+ character prefix) or runs:/<id>/<path>.",
            show_default=False,
        ),
    ],
    policy: Annotated[
        Path,
        typer.Option(
            "--policy",
            "-p",
            metavar="FILE",
            help="The gate policy, a YAML file with `checks:`.",
            show_default=False,
            dir_okay=False,
        ),
    ],
    champion: Annotated[
        str | None,
        typer.Option("--champion", "-c", metavar="MODEL", help="The model to compare with."),
    ] = None,
    data: DataOption = None,
    target: TargetOption = None,
    home: HomeOption = None,
) -> None:
    """Pass or fail a candidate model on a gate policy; exits 3 when the gate fails."""
    out = console()
    with open_workspace(home) as ws:
        with out.status(f"Gating {escape(candidate)}"):
            result = ws.gate(candidate, str(policy), champion=champion, data=data, target=target)
        out.print(_checks_heading(result, candidate))
        out.print(_checks_table(result))
        failed = len(result.failed_checks)
        if result.passed:
            out.print(
                f"[bold green]Gate passed[/]: {len(result.checks)} check(s).  "
                f"gate id: {result.gate_id}"
            )
        else:
            out.print(
                f"[bold red]Gate failed[/]: {failed} of {len(result.checks)} check(s) "
                f"failed.  gate id: {result.gate_id}"
            )
    if not result.passed:
        raise typer.Exit(GATE_FAILED)


# -- tables ------------------------------------------------------------------------------
def _table(title: str) -> Table:
    return Table(title=title, title_justify="left", header_style="bold")


def _metrics_heading(result: Evaluation, model: str) -> str:
    where = f" on {result.dataset}" if result.dataset else ""
    return escape(f"{result.task.capitalize()} metrics of {model}{where} ({result.n_rows:,} rows)")


def _metrics_table(result: Evaluation) -> Table:
    table = Table(header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right", style="bold")
    table.add_column("95% interval", justify="right")
    for name, value in result.metrics.items():
        interval = result.intervals.get(name)
        shown = ""
        if interval is not None and all(math.isfinite(v) for v in interval):
            shown = f"[{format_number(interval[0])}, {format_number(interval[1])}]"
        table.add_row(escape(name), format_number(value), shown)
    return table


def _worst_slices_table(result: Evaluation) -> Table:
    table = _table("Worst slice per metric")
    table.add_column("metric")
    table.add_column("slice")
    table.add_column("rows", justify="right")
    table.add_column("value", justify="right", style="bold")
    table.add_column("overall", justify="right")
    for metric, worst in result.worst_slice.items():
        table.add_row(
            escape(metric),
            escape(f"{worst['column']}={worst['value']}"),
            format_number(worst["n"]),
            format_number(worst[metric]),
            format_number(result.metrics.get(metric)),
        )
    return table


def _fairness_table(fairness: dict[str, Any]) -> Table:
    table = _table(f"Fairness by {fairness['column']}")
    table.add_column("measure")
    table.add_column("value", justify="right", style="bold")
    for key, value in fairness.items():
        if key.endswith("_difference"):
            table.add_row(escape(key), format_number(value))
    return table


def _robustness_table(records: list[dict[str, Any]]) -> Table:
    table = _table("Robustness (degradation: positive is worse)")
    for column in ("perturbation", "metric", "baseline", "perturbed", "degradation"):
        table.add_column(
            column, justify="left" if column in ("perturbation", "metric") else "right"
        )
    for record in records:
        table.add_row(
            escape(record["perturbation"]),
            escape(record["metric"]),
            format_number(record.get("baseline")),
            format_number(record.get("value")) if record.get("error") is None else "",
            format_number(record.get("degradation"))
            if record.get("error") is None
            else Text(str(record["error"]), style="yellow"),
        )
    return table


def _checks_heading(result: GateResult, candidate: str) -> str:
    title = f"Gate {result.name + ' ' if result.name else ''}checks of {candidate}"
    if result.dataset:
        title += f" on {result.dataset}"
    return escape(title)


def _checks_table(result: GateResult) -> Table:
    table = Table(header_style="bold")
    table.add_column("check")
    table.add_column("value", justify="right")
    table.add_column("threshold", justify="right")
    table.add_column("verdict")
    table.add_column("note", overflow="fold")
    for check in result.checks:
        verdict = Text("PASS", style="bold green") if check.passed else Text("FAIL", "bold red")
        table.add_row(
            escape(check.expression),
            format_number(check.value),
            format_number(check.threshold),
            verdict,
            escape(check.note),
        )
    return table
