"""``loopml pipeline run|list|show|resume``: a thin layer over ``loopml.pipelines``."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from loopml.cli._output import (
    HomeOption,
    console,
    error_console,
    fail,
    format_duration,
    local_time,
    open_workspace,
)
from loopml.errors import ValidationError

if TYPE_CHECKING:
    from loopml.pipelines import PipelineRun
    from loopml.pipelines._driver import OnUpdate

__all__ = ["app"]

app = typer.Typer(
    help="Pipelines: DAGs of steps with caching, retries and resume.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

Target = Annotated[
    str,
    typer.Argument(
        help="module:function, path/to/file.py:function, or a YAML pipeline.",
        show_default=False,
    ),
]
RunId = Annotated[str, typer.Argument(help="Pipeline run id (or 6+ first characters).")]
Executor = Annotated[
    str, typer.Option("--executor", "-e", help="local, process (parallel) or ray.")
]
NoCache = Annotated[
    bool, typer.Option("--no-cache", help="Execute every step, even with a cache hit.")
]
AsJson = Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")]


def _importable_cwd() -> None:
    """Lets ``module:function`` name a module of the current folder, as ``python -m``
    does (the console script's own folder is on sys.path instead)."""
    import os

    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())


def _params(pairs: list[str], file: Path | None) -> dict[str, Any]:
    import yaml

    params: dict[str, Any] = {}
    if file is not None:
        loaded = yaml.safe_load(file.read_text())
        if not isinstance(loaded, dict):
            raise ValidationError(f"--params-file {file} must hold a mapping of name to value.")
        params.update(loaded)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValidationError(f"--param {pair!r}: write it as NAME=VALUE, e.g. n=10.")
        params[key] = yaml.safe_load(value) if value else ""
    return params


class _LiveSteps:
    """The live table of step states, redrawn on each change (no refresh thread, so
    nothing is drawn while a step's output is being captured)."""

    def __init__(self, out: Console, names: list[str]) -> None:
        from rich.live import Live

        self.rows: dict[str, dict[str, Any]] = {n: {"status": "PENDING"} for n in names}
        self.live = Live(self._table(), console=out, auto_refresh=False)

    def _table(self) -> Table:
        from loopml.pipelines.render import STATUS_STYLES

        table = Table(box=None, pad_edge=False)
        for column in ("step", "status", "seconds", "cache key", "note"):
            table.add_column(column)
        for name, row in self.rows.items():
            status = row["status"]
            seconds = ""
            if row.get("ended_at") and row.get("started_at") and status != "CACHED":
                seconds = f"{(row['ended_at'] - row['started_at']) / 1000:.2f}"
            note = row.get("error") or ""
            if status == "CACHED":
                note = f"cached from step run {row.get('cached_from')}"
            table.add_row(
                escape(name),
                f"[{STATUS_STYLES.get(status, '')}]{status}[/]",
                seconds,
                (row.get("cache_key") or "")[:12],
                escape(str(note).splitlines()[0][:80]) if note else "",
            )
        return table

    def update(self, step: str, status: str, detail: dict[str, Any]) -> None:
        row = self.rows.setdefault(step, {})
        row.update({k: v for k, v in detail.items() if k != "outputs"}, status=status)
        self.live.update(self._table(), refresh=True)


@contextmanager
def _live_steps(out: Console, names: list[str], as_json: bool) -> Iterator[OnUpdate | None]:
    """The steps' states drawn live while the block runs (nothing for ``--json``); yields
    the ``on_update`` callback for the run."""
    if as_json:
        yield None
        return
    view = _LiveSteps(out, names)
    with view.live:
        yield view.update


def _report(run: PipelineRun, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(_run_dict(run), default=str))
    else:
        from loopml.pipelines.render import STATUS_STYLES

        out = console()
        style = STATUS_STYLES.get(run.status, "")
        out.print(
            f"Pipeline [bold]{escape(run.pipeline)}[/] run [cyan]{run.run_id[:8]}[/] "
            f"[{style}]{run.status}[/] in {format_duration(run.seconds)} "
            f"({run.cache_hits} of {len(run.steps)} steps cached)"
        )
        if run.status == "FAILED":
            error_console().print(f"[bold red]error:[/] {escape(run.error or '')}")
            out.print(
                f"See `loopml pipeline show {run.run_id[:8]} --logs`; "
                f"`loopml pipeline resume {run.run_id[:8]}` re-runs what failed."
            )
        elif run.status == "WAITING":
            out.print(f"[bold yellow]waiting:[/] {escape(run.error or '')}")
            command = f"loopml pipeline resume {run.run_id[:8]}"
            if command not in (run.error or ""):  # the step's message may name it already
                out.print(f"`{command}` continues it once that is done.")
    if run.status not in ("SUCCEEDED", "WAITING"):  # waiting is no error: exit 0
        raise typer.Exit(1)


@app.command()
def run(
    target: Target,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="A param as NAME=VALUE (YAML value); repeatable."),
    ] = None,
    params_file: Annotated[
        Path | None,
        typer.Option("--params-file", help="YAML mapping of params.", exists=True, dir_okay=False),
    ] = None,
    executor: Executor = "local",
    workers: Annotated[
        int | None, typer.Option(min=1, help="Steps at once (process and ray executors).")
    ] = None,
    no_cache: NoCache = False,
    reason: Annotated[str | None, typer.Option(help="Why it runs, kept on the run.")] = None,
    as_json: AsJson = False,
    home: HomeOption = None,
) -> None:
    """Run a pipeline, showing each step's state live; exit 1 when it fails."""
    from loopml.pipelines import run_pipeline
    from loopml.pipelines.dag import load_pipeline

    _importable_cwd()
    out = Console(file=sys.stdout, highlight=False, soft_wrap=False)
    with open_workspace(home, create=True) as ws:
        params = _params(param or [], params_file)
        pipeline = load_pipeline(target)
        names = [n.name for n in pipeline.graph(params).nodes]
        with _live_steps(out, names, as_json) as on_update:
            result = run_pipeline(
                ws,
                pipeline,
                params,
                executor=executor,
                cache=not no_cache,
                reason=reason,
                trigger="manual",
                workers=workers,
                on_update=on_update,
            )
    _report(result, as_json)


@app.command()
def resume(
    run_id: RunId,
    executor: Annotated[
        str | None, typer.Option("--executor", "-e", help="Default: the failed run's.")
    ] = None,
    no_cache: NoCache = False,
    as_json: AsJson = False,
    home: HomeOption = None,
) -> None:
    """Continue a failed or waiting run: re-run what failed or waited and what depends on
    it; reuse the rest."""
    from loopml.pipelines import get_run
    from loopml.pipelines import resume as resume_run

    _importable_cwd()
    out = Console(file=sys.stdout, highlight=False, soft_wrap=False)
    with open_workspace(home) as ws:
        old = get_run(ws, run_id)
        names = [step["name"] for step in old.graph.get("steps", [])]
        with _live_steps(out, names, as_json) as on_update:
            result = resume_run(
                ws, old.run_id, executor=executor, cache=not no_cache, on_update=on_update
            )
    _report(result, as_json)


@app.command("list")
def list_(
    pipeline: Annotated[str | None, typer.Option(help="Only runs of this pipeline.")] = None,
    status: Annotated[str | None, typer.Option(help="Only runs in this state.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many runs, newest first.")] = 50,
    as_json: AsJson = False,
    home: HomeOption = None,
) -> None:
    """List pipeline runs, newest first (runs whose process died are marked FAILED)."""
    from loopml.pipelines import list_runs
    from loopml.pipelines.render import STATUS_STYLES

    with open_workspace(home) as ws:
        runs = list_runs(ws, pipeline, status, limit)
    if as_json:
        typer.echo(json.dumps([_run_dict(r, steps=False) for r in runs], default=str))
        return
    table = Table(box=None, pad_edge=False)
    for column in ("run", "pipeline", "status", "steps", "cached", "started", "took", "trigger"):
        table.add_column(column)
    for found in runs:
        table.add_row(
            found.run_id[:8],
            escape(found.pipeline),
            f"[{STATUS_STYLES.get(found.status, '')}]{found.status}[/]",
            str(len(found.steps)),
            str(found.cache_hits),
            local_time(found.started_at),
            format_duration(found.seconds),
            escape(found.trigger or ""),
        )
    if not runs:
        console().print("No pipeline runs yet; start one with `loopml pipeline run TARGET`.")
        return
    console().print(table)


@app.command()
def show(
    run_or_target: Annotated[
        str,
        typer.Argument(
            help="A pipeline run id, or a pipeline (module:function, file.py:function, "
            "YAML) to draw without running it.",
            show_default=False,
        ),
    ],
    format: Annotated[
        str, typer.Option("--format", "-f", help="tree, mermaid, html or json.")
    ] = "tree",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write to this file instead of stdout.")
    ] = None,
    logs: Annotated[bool, typer.Option("--logs", help="Print each step's captured logs.")] = False,
    home: HomeOption = None,
) -> None:
    """Draw a run's DAG with each step's state (or a pipeline's DAG before it runs)."""
    from loopml.pipelines import get_run
    from loopml.pipelines.render import to_html, to_mermaid, to_tree

    if format not in ("tree", "mermaid", "html", "json"):
        raise fail(ValidationError(f"--format {format!r}: use tree, mermaid, html or json."))
    _importable_cwd()
    found: PipelineRun | None = None
    with open_workspace(home) as ws:
        if ":" in run_or_target or run_or_target.endswith((".yaml", ".yml")):
            from loopml.pipelines.dag import load_pipeline

            graph = load_pipeline(run_or_target).graph().to_dict()
            steps: list[Any] = []
            title = graph["name"]
        else:
            found = get_run(ws, run_or_target)
            graph, steps = found.graph, found.steps
            title = f"{found.pipeline} run {found.run_id[:8]} ({found.status})"
    if format == "json":
        text = json.dumps(_run_dict(found) if found else graph, default=str, indent=2)
    elif format == "mermaid":
        text = to_mermaid(graph, steps)
    elif format == "html":
        text = to_html(graph, steps, title)
    else:
        text = ""
    if out is not None:
        out.write_text(text or "")
        console().print(f"Wrote {out}")
        return
    if format != "tree":
        typer.echo(text, nl=False)
        return
    printer = console()
    printer.print(to_tree(graph, steps, title))
    if found is not None:
        printer.print(
            f"started {local_time(found.started_at)} by {escape(found.user or '?')}, "
            f"executor {found.executor}, took {format_duration(found.seconds)}"
            + (f", trigger {escape(found.trigger)}" if found.trigger else "")
            + (f", reason: {escape(found.reason)}" if found.reason else "")
            + (f", resumed from {found.resumed_from[:8]}" if found.resumed_from else "")
        )
        if found.params:
            printer.print("params: " + escape(json.dumps(found.params, default=str)))
        if found.error:
            label = "[bold yellow]waiting:" if found.status == "WAITING" else "[bold red]error:"
            printer.print(f"{label}[/] {escape(found.error)}")
        for step in found.steps:
            if step.tracking_runs:
                printer.print(
                    f"{escape(step.step)} started tracking runs: "
                    + ", ".join(r[:8] for r in step.tracking_runs)
                )
            if logs and (step.logs or step.traceback):
                printer.rule(escape(step.step))
                if step.logs:
                    printer.print(escape(step.logs.rstrip()))
                if step.traceback:
                    printer.print(escape(step.traceback.rstrip()))


def _run_dict(found: PipelineRun | None, steps: bool = True) -> dict[str, Any]:
    if found is None:
        return {}
    data: dict[str, Any] = {
        key: getattr(found, key)
        for key in (
            "run_id",
            "pipeline",
            "target",
            "status",
            "executor",
            "params",
            "reason",
            "trigger",
            "resumed_from",
            "user",
            "error",
            "started_at",
            "ended_at",
        )
    }
    data["seconds"] = found.seconds
    data["cache_hits"] = found.cache_hits
    if steps:
        data["steps"] = [
            {
                "step": s.step,
                "status": s.status,
                "cache_key": s.cache_key,
                "cached_from": s.cached_from,
                "attempts": s.attempts,
                "seconds": s.seconds,
                "inputs": s.inputs,
                "outputs": s.outputs,
                "error": s.error,
                "tracking_runs": s.tracking_runs,
            }
            for s in found.steps
        ]
    return data
