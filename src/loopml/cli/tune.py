"""``loopml tune --config train.yaml``: the file's ``search:`` section, over ``ws.tune``."""

from __future__ import annotations

import dataclasses
import math
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from loopml.cli._output import HomeOption, console, fail, format_number, open_workspace, short_id
from loopml.errors import LoopmlError, ValidationError
from loopml.training import load_train_config

if TYPE_CHECKING:
    from loopml.training import TuneResult

__all__ = ["tune"]


class Executor(StrEnum):
    local = "local"
    ray = "ray"


def tune(
    config: Annotated[
        Path,
        typer.Option(
            "--config",
            "-c",
            metavar="FILE",
            help="A training YAML file with a search: section (n_trials, space, metric, "
            "executor, sampler, ...); see loopml train --help.",
            show_default=False,
            dir_okay=False,
        ),
    ],
    n_trials: Annotated[
        int | None,
        typer.Option(
            "--n-trials",
            "-n",
            min=1,
            help="Finished trials the study should hold (overrides search.n_trials).",
        ),
    ] = None,
    executor: Annotated[
        Executor | None,
        typer.Option("--executor", help="Where trials run (overrides search.executor)."),
    ] = None,
    experiment: Annotated[
        str | None,
        typer.Option("--experiment", "-e", help="Experiment of the runs (overrides the file)."),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Search hyperparameters as a YAML file's search: section says; prints every trial.

    Running the same command again continues the stored study: finished trials are
    kept, and only the missing ones (up to --n-trials) run.
    """
    try:
        settings = load_train_config(config)
        if settings.search is None:
            example = "search: {n_trials: 20, space: {max_depth: {type: int, low: 2, high: 8}}}"
            raise ValidationError(
                f"{config} has no search: section, so there is nothing to tune. Add one, "
                f"e.g. {example}; or train once with `loopml train --config {config}`."
            )
    except LoopmlError as error:
        raise fail(error) from None
    overrides = {"n_trials": n_trials, "executor": executor and executor.value}
    search = {**settings.search, **{k: v for k, v in overrides.items() if v is not None}}
    settings = dataclasses.replace(
        settings, search=search, experiment=experiment or settings.experiment
    )
    out = console()
    searching = f"Searching {escape(settings.model)} on {escape(settings.data)}"
    with open_workspace(home) as ws, out.status(searching):
        result = settings.tune(ws)
    out.print(_trials_table(result))
    total = int(result.trials["state"].isin(("COMPLETE", "PRUNED", "FAIL")).sum())
    out.print(
        f"study {escape(result.study_name)}: {total} finished trial(s), "
        f"{result.earlier_trials} already done before this command"
    )
    shown = ", ".join(f"{k}={_value(v)}" for k, v in result.best_params.items())
    score = format_number(result.best_metrics.get(result.metric))
    out.print(
        f"best: trial {result.best_trial}, {escape(result.metric)} [bold]{score}[/] "
        f"({result.direction}), params {escape(shown)}"
    )
    where = escape(result.run.experiment)
    out.print(f"parent run id: [cyan]{result.run.id}[/]  experiment: {where}")
    home_flag = f" --home {home}" if home is not None else ""
    out.print(f"Next: loopml runs show {short_id(result.run.id)}{escape(home_flag)}")


def _trials_table(result: TuneResult) -> Table:
    """Every trial, complete ones best first, then pruned, then failed."""
    trials = result.trials
    params = [c for c in trials.columns if c.startswith("params.")]
    order = {"COMPLETE": 0, "PRUNED": 1, "FAIL": 2}
    ascending = result.direction == "minimize"
    ranked = trials.assign(
        _group=trials["state"].map(order).fillna(3),
        _score=trials["value"].astype("float64") * (1 if ascending else -1),
    ).sort_values(["_group", "_score", "number"], na_position="last")
    table = Table(
        title=f"Trials, best {escape(result.metric)} first",
        title_justify="left",
        header_style="bold",
    )
    table.add_column("trial", justify="right")
    table.add_column("state")
    for column in params:
        table.add_column(escape(column.removeprefix("params.")), justify="right")
    table.add_column(escape(result.metric), justify="right", style="bold")
    table.add_column("run id", style="cyan")
    for _, trial in ranked.iterrows():
        table.add_row(
            str(trial["number"]),
            str(trial["state"]),
            *(escape(_value(trial[column])) for column in params),
            format_number(trial["value"]) if trial["state"] == "COMPLETE" else "",
            short_id(str(trial["run_id"] or "")),
            style="green" if trial["number"] == result.best_trial else None,
        )
    return table


def _value(value: Any) -> str:
    """A param as it reads best: numbers shortened, a param a trial did not sample empty."""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return str(value)
