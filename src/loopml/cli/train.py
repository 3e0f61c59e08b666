"""``loopml train --config train.yaml``: one tracked training run, over ``ws.train``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from loopml.cli._output import HomeOption, console, fail, format_number, open_workspace, short_id
from loopml.errors import LoopmlError

if TYPE_CHECKING:
    from loopml.training import TrainResult

__all__ = ["train"]


def train(
    config: Annotated[
        Path,
        typer.Option(
            "--config",
            "-c",
            metavar="FILE",
            help="A YAML file: model (import path), params, data, target, and optionally "
            "features, split, cv, metrics, experiment, run_name, preprocess, task, and "
            "search (a hyperparameter search: n_trials, space, metric, executor, ...).",
            show_default=False,
            dir_okay=False,
        ),
    ],
    experiment: Annotated[
        str | None,
        typer.Option("--experiment", "-e", help="Experiment of the run (overrides the file)."),
    ] = None,
    run_name: Annotated[
        str | None, typer.Option("--run-name", help="Name of the run (overrides the file).")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Train a model as a YAML file describes it, tracked as a run; prints its metrics."""
    try:
        from loopml.training import TrainResult, load_train_config

        settings = load_train_config(config)
    except LoopmlError as error:
        raise fail(error) from None
    overrides: dict[str, Any] = {"experiment": experiment, "run_name": run_name}
    settings = dataclasses.replace(settings, **{k: v for k, v in overrides.items() if v})
    out = console()
    with open_workspace(home) as ws:
        if settings.search is not None:
            with out.status(f"Searching {escape(settings.model)} on {escape(settings.data)}"):
                tuned = settings.tune(ws)
            out.print(f"best params (trial {tuned.best_trial}): {escape(repr(tuned.best_params))}")
            result: Any = TrainResult(tuned.run, tuned.best_model, tuned.best_metrics, "search")
        else:
            with out.status(f"Training {escape(settings.model)} on {escape(settings.data)}"):
                result = settings.run(ws)
        out.print(_metrics_table(result))
        out.print(f"run id: [cyan]{result.run.id}[/]  experiment: {escape(result.run.experiment)}")
        home_flag = f" --home {home}" if home is not None else ""
        out.print(f"Next: loopml runs show {short_id(result.run.id)}{escape(home_flag)}")


def _metrics_table(result: TrainResult) -> Table:
    table = Table(
        title=f"{result.task.capitalize()} metrics of run {short_id(result.run.id)}",
        title_justify="left",
        header_style="bold",
    )
    table.add_column("metric")
    table.add_column("value", justify="right", style="bold")
    for name, value in result.metrics.items():
        table.add_row(escape(name), format_number(value))
    return table
