"""The ``loopml`` command line: Typer commands, each a thin layer over the Python API.

    loopml init [PATH]            create a workspace and show where it is
    loopml demo                   train a few tracked models on a bundled dataset
    loopml runs list|show|compare|delete|restore
    loopml experiments list|delete|restore
    loopml gc                     remove deleted runs and experiments for good
    loopml train --config FILE    train a model as a YAML file describes it, tracked

Every command takes ``--home PATH``; otherwise ``$LOOPML_HOME`` or ``./.loopml``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from loopml.cli import ct, data, experiments, models, monitor, pipeline, runs
from loopml.cli import scheduler as scheduler_cli
from loopml.cli._output import fail
from loopml.cli.demo import demo
from loopml.cli.deploy import deploy
from loopml.cli.evaluate import evaluate, gate
from loopml.cli.predict import predict
from loopml.cli.serve import serve
from loopml.cli.train import train
from loopml.cli.tune import tune
from loopml.cli.workspace import gc, init
from loopml.errors import LoopmlError

__all__ = ["app", "main"]

app = typer.Typer(
    name="loopml",
    help="loopml: the machine-learning lifecycle as one closed loop.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


def _show_version(value: bool) -> None:
    if value:
        from loopml import __version__

        typer.echo(f"loopml {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """loopml: the machine-learning lifecycle as one closed loop."""


app.command("init")(init)
app.command("demo")(demo)
app.command("gc")(gc)
app.command("train")(train)
app.command("tune")(tune)
app.command("evaluate")(evaluate)
app.command("gate")(gate)
app.command("predict")(predict)
app.command("serve")(serve)
app.command("deploy")(deploy)
app.add_typer(runs.app, name="runs")
app.add_typer(experiments.app, name="experiments")
app.add_typer(data.app, name="data")
app.add_typer(models.app, name="models")
app.add_typer(monitor.app, name="monitor")
app.add_typer(pipeline.app, name="pipeline")
app.add_typer(ct.app, name="ct")
app.command("scheduler")(scheduler_cli.scheduler)
app.add_typer(scheduler_cli.schedule_app, name="schedule")
app.add_typer(scheduler_cli.trigger_app, name="trigger")


def main() -> None:
    """The ``loopml`` console script."""
    try:
        app()
    except LoopmlError as error:  # a command that did not go through open_workspace
        raise SystemExit(fail(error).exit_code) from None
