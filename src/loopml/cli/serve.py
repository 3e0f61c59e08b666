"""``loopml serve``: the model server, a thin layer over :func:`loopml.serving.serve`."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.markup import escape

from loopml.cli._output import HomeOption, console, fail, open_workspace
from loopml.errors import LoopmlError


class Runtime(StrEnum):
    pickle = "pickle"
    onnx = "onnx"


def serve(
    reference: Annotated[
        str,
        typer.Argument(
            help="models:/NAME@ALIAS (followed: hot swap on promote or rollback), "
            "models:/NAME/VERSION, runs:/RUN_ID/model, or a bundle path.",
            show_default=False,
        ),
    ],
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes; each loads the model.")
    ] = 1,
    runtime: Annotated[
        Runtime, typer.Option(help="pickle (the model itself) or onnx (its ONNX export).")
    ] = Runtime.pickle,
    max_batch_size: Annotated[
        int, typer.Option(min=1, help="Rows per model call at most when batching.")
    ] = 64,
    max_latency_ms: Annotated[
        float,
        typer.Option(
            min=0,
            help="The longest a request waits for others to batch with (only while fewer "
            "wait than the last model call held).",
        ),
    ] = 2.0,
    no_batching: Annotated[
        bool, typer.Option("--no-batching", help="One model call per request.")
    ] = False,
    no_log: Annotated[
        bool, typer.Option("--no-log", help="Do not write predictions to the prediction log.")
    ] = False,
    max_body_mb: Annotated[
        float, typer.Option(min=0.001, help="Larger request bodies get 413.")
    ] = 8.0,
    poll_seconds: Annotated[
        float, typer.Option(min=0, help="How often an alias is re-resolved; 0: never.")
    ] = 2.0,
    health_interval: Annotated[
        float,
        typer.Option(
            min=0, help="Seconds between service-health points in the monitored series; 0: off."
        ),
    ] = 60.0,
    home: HomeOption = None,
) -> None:
    """Serve a model over HTTP: simple JSON, Open Inference Protocol v2, health, metrics."""
    from loopml.serving import serve as run_server

    if reference.startswith(("models:/", "runs:/")):
        # Fail here, with a clean message, rather than in the server's startup.
        with open_workspace(home) as ws:
            if reference.startswith("models:/"):
                version = ws.registry.get(reference)
                if runtime is Runtime.onnx:
                    ws.registry.local_bundle(version.uri, flavor="onnx")
                target = f"{version.uri}" + (f" ({reference})" if "@" in reference else "")
            else:
                target = reference
    else:
        target = reference
    console().print(
        f"Serving [bold]{escape(target)}[/] on http://{escape(host)}:{port} "
        f"({runtime.value}, {'no batching' if no_batching else f'batches of {max_batch_size}'}"
        f", {workers} worker{'s' if workers > 1 else ''}); docs at /docs, metrics at /metrics."
    )
    try:
        run_server(
            reference,
            home,
            host=host,
            port=port,
            workers=workers,
            runtime=runtime.value,
            batching=not no_batching,
            max_batch_size=max_batch_size,
            max_latency_ms=max_latency_ms,
            log_predictions=not no_log,
            max_body_mb=max_body_mb,
            poll_seconds=poll_seconds,
            health_interval=health_interval,
        )
    except LoopmlError as error:
        raise fail(error) from None
