"""``loopml ct run|init``: continuous training as ``loopml.yaml`` declares it, a thin
layer over :mod:`loopml.pipelines.ct`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from loopml.cli._output import HomeOption, console, fail, open_workspace
from loopml.cli.pipeline import AsJson, Executor, NoCache, _LiveSteps, _report
from loopml.errors import ConflictError, LoopmlError

if TYPE_CHECKING:
    from loopml.pipelines import PipelineRun
    from loopml.pipelines._driver import OnUpdate

__all__ = ["app"]

app = typer.Typer(
    help="Continuous training: ingest, train, gate, register and promote as loopml.yaml says.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

Project = Annotated[Path, typer.Option("--project", "-f", help="The project file.", dir_okay=False)]


@app.command()
def run(
    project: Project = Path("loopml.yaml"),
    data: Annotated[
        str | None,
        typer.Option(help="A dataset version to train on (default: data.source, else newest)."),
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why it runs, kept on the run.")] = None,
    executor: Executor = "local",
    no_cache: NoCache = False,
    as_json: AsJson = False,
    home: HomeOption = None,
) -> None:
    """Run the continuous-training pipeline once, each step live; exit 1 when it stops
    (a failed gate, a rolled-back canary), 0 when it succeeds or waits for an approval
    (WAITING); the message says what next."""
    from loopml.pipelines.ct import ContinuousTraining, run_ct

    try:
        config = ContinuousTraining(project).config
    except LoopmlError as error:
        raise fail(error) from None
    out = Console(file=sys.stdout, highlight=False, soft_wrap=False)
    with open_workspace(home, create=True) as ws:

        def start(on_update: OnUpdate | None = None) -> PipelineRun:
            return run_ct(
                ws,
                config,
                reason=reason,
                data=data,
                executor=executor,
                cache=not no_cache,
                on_update=on_update,
            )

        if as_json:
            result = start()
        else:
            names = [node.name for node in ContinuousTraining(config).graph({"data": data}).nodes]
            view = _LiveSteps(out, names)
            with view.live:
                result = start(view.update)
    _report(result, as_json)


@app.command()
def init(
    project: Project = Path("loopml.yaml"),
    model: Annotated[str, typer.Option(help="The registered model's name.")] = (
        "breast-cancer-classifier"
    ),
    dataset: Annotated[str, typer.Option(help="The dataset to train on.")] = "breast-cancer",
    target: Annotated[str, typer.Option(help="The label column.")] = "target",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented starter loopml.yaml (its defaults fit the data of `loopml demo`)."""
    from loopml.pipelines.project import starter_project

    if project.exists() and not force:
        raise fail(
            ConflictError(f"{project} exists already; edit it, or pass --force to replace it.")
        )
    project.write_text(starter_project(model, dataset, target), encoding="utf-8")
    console().print(f"Wrote {project}; edit it, then run `loopml ct run --project {project}`.")
