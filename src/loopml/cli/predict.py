"""``loopml predict``: batch scoring, a thin layer over :func:`loopml.serving.batch.score`."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from loopml.cli._output import HomeOption, console, open_workspace

__all__ = ["predict"]


class Runtime(StrEnum):
    pickle = "pickle"
    onnx = "onnx"


def predict(
    reference: Annotated[
        str,
        typer.Argument(
            metavar="MODEL",
            help="models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/model or a bundle path.",
            show_default=False,
        ),
    ],
    input: Annotated[
        str,
        typer.Option(
            "--input",
            "-i",
            metavar="PATH|REF",
            help="A Parquet file or folder, a CSV file, or a dataset reference (churn@3).",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", metavar="PATH", help="The Parquet file to write.", show_default=False
        ),
    ],
    runtime: Annotated[
        Runtime, typer.Option(help="pickle (the model itself) or onnx (its ONNX export).")
    ] = Runtime.pickle,
    chunk_rows: Annotated[int, typer.Option(min=1, help="Rows per chunk.")] = 100_000,
    ray: Annotated[bool, typer.Option("--ray", help="Score the chunks as Ray tasks.")] = False,
    no_log: Annotated[
        bool, typer.Option("--no-log", help="Do not write predictions to the prediction log.")
    ] = False,
    keep: Annotated[
        list[str] | None,
        typer.Option(
            "--keep", metavar="COL", help="Copy this input column to the output (repeat)."
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace the output file if it exists.")
    ] = False,
    home: HomeOption = None,
) -> None:
    """Score a file or dataset with a model, in chunks, into a Parquet file."""
    from loopml.serving.batch import score

    out = console()
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[amount]}"),
        TimeElapsedColumn(),
        console=out,
        transient=True,
        disable=not out.is_terminal,
    )
    task = progress.add_task(f"Scoring with {escape(reference)}", total=None, amount="")

    def advance(done: int, total: int | None) -> None:
        amount = f"{done:,}" + (f" / {total:,}" if total else "") + " rows"
        progress.update(task, completed=done, total=total, amount=amount)

    with open_workspace(home) as ws, progress:
        result = score(
            ws,
            reference,
            input,
            output,
            chunk_rows=chunk_rows,
            runtime=runtime.value,
            log=not no_log,
            ray=ray,
            on_progress=advance,
            keep=keep or (),
            overwrite=overwrite,
        )
    logged = "" if no_log else f"; logged as request {result.request_id}"
    if not no_log and result.logged_rows < result.rows:
        logged += f" (only {result.logged_rows:,} rows reached the prediction log)"
    out.print(
        f"[green]✓[/] Scored {result.rows:,} rows with {escape(result.model)} version "
        f"{result.version} in {result.seconds:.1f} s ({result.rows_per_second:,.0f} rows/s) "
        f"→ {escape(str(result.output))}{escape(logged)}"
    )
