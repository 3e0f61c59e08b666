"""``loopml models ...``: the model registry, a thin layer over ``ws.registry``."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from loopml.cli._output import HomeOption, console, local_time, open_workspace, short_id

app = typer.Typer(
    help="Registered models: versions, aliases, promotion with gates and approvals, lineage.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

Name = Annotated[str, typer.Argument(help="Registered model name.", show_default=False)]
Version = Annotated[int, typer.Argument(help="Version number.", show_default=False)]
Alias = Annotated[str, typer.Option("--alias", "-a", help="Alias to move.")]
Reason = Annotated[
    str | None, typer.Option("--reason", "-r", help="Why: kept in the alias history.")
]


class LineageFormat(StrEnum):
    tree = "tree"
    json = "json"
    dot = "dot"


@app.command("list")
def list_models(home: HomeOption = None) -> None:
    """List registered models with their latest version and aliases."""
    out = console()
    with open_workspace(home) as ws:
        models = ws.registry.models()
    if not models:
        out.print("No registered models yet. ws.registry.register(run, name=...) adds one.")
        return
    table = Table(title="Registered models", title_justify="left", header_style="bold")
    for column in ("name", "versions", "latest", "aliases", "updated", "description"):
        table.add_column(column, justify="right" if column in ("versions", "latest") else "left")
    for model in models:
        table.add_row(
            f"[bold]{escape(model.name)}[/]",
            f"{model.versions:,}",
            str(model.latest_version or "-"),
            escape(", ".join(f"@{a} → {v}" for a, v in model.aliases.items())),
            local_time(model.updated),
            escape(model.description or ""),
        )
    out.print(table)


@app.command("show")
def show(name: Name, home: HomeOption = None) -> None:
    """Show a model's versions, each with its run, flavor and aliases."""
    out = console()
    with open_workspace(home) as ws:
        model = ws.registry.model(name)
        versions = ws.registry.versions(name)
        rows = [(v, v.run.metrics) for v in versions]
    holders: dict[int, list[str]] = {}
    for alias, number in model.aliases.items():
        holders.setdefault(number, []).append(alias)
    title = f"{model.name}" + (f": {model.description}" if model.description else "")
    table = Table(title=escape(title), title_justify="left", header_style="bold")
    for column in ("version", "aliases", "flavor", "run", "metrics", "registered", "by", "source"):
        table.add_column(column, justify="right" if column == "version" else "left")
    for version, metrics in rows:
        headline = ", ".join(f"{k}={v:.4g}" for k, v in list(metrics.items())[:3])
        table.add_row(
            str(version.version),
            "[green]"
            + escape(", ".join(f"@{a}" for a in holders.get(version.version, [])))
            + "[/]",
            version.flavor,
            short_id(version.run_id),
            escape(headline),
            local_time(version.created),
            escape(version.created_by or ""),
            escape(version.source),
        )
    out.print(table)


@app.command("lineage")
def lineage(
    name: Name,
    version: Annotated[str, typer.Argument(help="Version number or alias (e.g. 7 or production).")],
    output: Annotated[
        LineageFormat, typer.Option("--format", "-f", help="tree, json or dot (Graphviz).")
    ] = LineageFormat.tree,
    home: HomeOption = None,
) -> None:
    """Show where a version came from: run, data, code, environment, evaluations, gates."""
    reference = f"models:/{name}/{version}" if version.isdigit() else f"models:/{name}@{version}"
    with open_workspace(home) as ws:
        found = ws.registry.lineage(reference)
    if output is LineageFormat.json:
        typer.echo(found.to_json())
    elif output is LineageFormat.dot:
        typer.echo(found.to_dot())
    else:
        console().print(found.to_tree())


@app.command("history")
def history(
    name: Name,
    alias: Annotated[str | None, typer.Option("--alias", "-a", help="Only this alias.")] = None,
    home: HomeOption = None,
) -> None:
    """Show every alias move: who, when, from which version to which, and why."""
    out = console()
    with open_workspace(home) as ws:
        events = ws.registry.history(name, alias)
    if not events:
        out.print(f"No alias of {escape(name)} has moved yet.")
        return
    table = Table(
        title=f"Alias history of {escape(name)}", title_justify="left", header_style="bold"
    )
    for column in ("when", "alias", "action", "from", "to", "by", "grounds", "reason"):
        table.add_column(column)
    for event in events:
        if event.forced:
            grounds = "[red]forced[/]"
        elif event.gate_id:
            grounds = f"gate {event.gate_id[:8]}"
            if event.approvals:
                grounds += f", approved by {', '.join(event.approvals)}"
        else:
            grounds = ""
        table.add_row(
            local_time(event.time),
            f"@{escape(event.alias)}",
            event.action,
            str(event.from_version or "-"),
            str(event.to_version or "-"),
            escape(event.user or ""),
            escape(grounds) if not event.forced else grounds,
            escape(event.reason or ""),
        )
    out.print(table)


@app.command("promote")
def promote(
    name: Name,
    version: Version,
    alias: Alias = "production",
    reason: Reason = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Override the gate and approvals of a protected alias (needs --reason)."
        ),
    ] = False,
    home: HomeOption = None,
) -> None:
    """Point an alias at a version (a protected alias needs a passing gate and approvals)."""
    with open_workspace(home) as ws:
        event = ws.registry.promote(name, version, alias, reason=reason, force=force)
    out = console()
    if event is None:
        out.print(f"{escape(name)}@{escape(alias)} already points at version {version}.")
        return
    moved = f"from version {event.from_version}" if event.from_version else "(new alias)"
    out.print(
        f"[green]{escape(name)}@{escape(alias)}[/] → version {version} {moved}"
        + (" [red](forced)[/]" if event.forced else "")
    )


@app.command("rollback")
def rollback(
    name: Name,
    alias: Alias = "production",
    reason: Reason = None,
    home: HomeOption = None,
) -> None:
    """Move an alias back to the version that held it before the current one."""
    with open_workspace(home) as ws:
        event = ws.registry.rollback(name, alias, reason=reason)
    console().print(
        f"[yellow]{escape(name)}@{escape(alias)}[/] rolled back: version {event.from_version} "
        f"→ {event.to_version}"
    )


@app.command("approve")
def approve(
    name: Name,
    version: Version,
    alias: Alias = "production",
    comment: Annotated[str | None, typer.Option("--comment", "-m", help="A note.")] = None,
    home: HomeOption = None,
) -> None:
    """Approve a version for an alias as the current user ($LOOPML_USER or the login);
    say which waiting continuous-training run to resume once it has enough approvals."""
    from loopml.pipelines.ct import awaiting_approval

    with open_workspace(home) as ws:
        added = ws.registry.approve(name, version, alias, comment)
        approvers = ws.registry.approvals(name, version, alias)
        needed = ws.settings.required_approvals
        waiting = awaiting_approval(ws, name, version, alias)
    state = "Approved" if added else "Already approved"
    console().print(
        f"{state}: {escape(name)} version {version} for @{escape(alias)} "
        f"({len(approvers)} of {needed} needed: {escape(', '.join(approvers))})."
    )
    for run, wanted in waiting:
        if len(approvers) >= wanted:
            console().print(
                f"CT run [cyan]{run.run_id[:8]}[/] waits for this approval: continue it with "
                f"`loopml pipeline resume {run.run_id[:8]}`."
            )


@app.command("delete")
def delete(name: Name, version: Version, home: HomeOption = None) -> None:
    """Delete a version (refused while an alias points at it); `loopml gc` frees its files."""
    with open_workspace(home) as ws:
        ws.registry.delete_version(name, version)
    console().print(f"Deleted version {version} of {escape(name)}.")


class ExportFormat(StrEnum):
    onnx = "onnx"
    mlflow = "mlflow"
    bundle = "bundle"
    docker = "docker"


@app.command("export")
def export(
    name: Name,
    version: Version,
    output: Annotated[
        ExportFormat, typer.Option("--format", "-f", help="onnx, mlflow, bundle or docker.")
    ] = ExportFormat.bundle,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Where to write it (a folder; a .tar.gz for a bundle archive; a .onnx file). "
            "ONNX exports are also stored with the version.",
        ),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="Held-out rows for the ONNX parity check (e.g. churn@4); "
            "by default the data the version's run read.",
        ),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Export a version: ONNX (parity-checked), an MLflow model, a bundle, a build context."""
    out_console = console()
    status = out_console.status(f"Exporting {escape(name)} version {version} as {output}")
    with open_workspace(home) as ws, status:
        result = ws.registry.export(f"models:/{name}/{version}", output.value, out, data)
    out_console.print(
        f"[green]Exported[/] {escape(name)} version {version} as {output}: "
        f"{escape(str(result.path))}"
    )
    if result.parity:
        out_console.print(f"Parity with the model: {escape(result.parity)}")


@app.command("import")
def import_model(
    folder: Annotated[
        Path, typer.Argument(help="An MLflow model directory (sklearn flavor).", show_default=False)
    ],
    name: Annotated[str, typer.Option("--name", "-n", help="Register it under this model name.")],
    description: Annotated[
        str | None, typer.Option("--description", help="Version description.")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Register an MLflow scikit-learn model directory as a new version."""
    with open_workspace(home) as ws:
        version = ws.registry.import_mlflow(folder, name, description=description)
    console().print(
        f"Imported {escape(str(folder))} as [bold]{escape(version.uri)}[/] "
        f"(run {short_id(version.run_id)})."
    )


@app.command("card")
def card(
    name: Name,
    version: Version,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for <name>-v<version>.md and .html.")
    ] = Path("."),
    home: HomeOption = None,
) -> None:
    """Write a model card (Markdown and HTML) from lineage, evaluations, slices, fairness
    and the owner's fields (the model's card.* tags: `loopml models tag`)."""
    with open_workspace(home) as ws:
        markdown, html = ws.registry.card(f"models:/{name}/{version}", out)
    console().print(f"Wrote {escape(str(markdown))} and {escape(str(html))}.")


@app.command("tag")
def tag(
    name: Name,
    tags: Annotated[
        list[str],
        typer.Argument(
            help="KEY=VALUE pairs, e.g. card.intended_use='Monthly churn outreach'.",
            show_default=False,
        ),
    ],
    version: Annotated[
        int | None, typer.Option("--version", "-v", help="Tag this version, not the model.")
    ] = None,
    description: Annotated[
        str | None, typer.Option("--description", "-d", help="Also set the description.")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Set tags (and the description) of a model or one version."""
    pairs = {}
    for item in tags:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE.", param_hint="TAGS")
        pairs[key.strip()] = value
    with open_workspace(home) as ws:
        ws.registry.set_tags(name, pairs, version=version)
        if description is not None:
            ws.registry.set_description(name, description, version=version)
    target = f"version {version} of {name}" if version else name
    console().print(f"Tagged {escape(target)}: {escape(', '.join(pairs))}.")
