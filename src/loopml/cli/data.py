"""``loopml data ingest|validate|list|versions|show|diff|profile|contract``: over ``ws.data``.

Every command opens the workspace, makes one or two ``ws.data`` calls and prints the
result; the rendering lives in :mod:`loopml.cli._data_output`. The module is one file
past the usual size only because of the Typer option declarations.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from loopml.cli._data_output import (
    datasets_table,
    frame_table,
    ingest_progress,
    print_diff,
    print_report,
    profile_table,
    runs_table,
    schema_table,
    version_panel,
    version_record,
    version_summary,
    versions_table,
)
from loopml.cli._output import HomeOption, console, error_console, open_workspace
from loopml.errors import NotFoundError, ValidationError

if TYPE_CHECKING:
    import pandas as pd

    from loopml.data.catalog import DatasetVersion, DataValidationError
    from loopml.workspace import Workspace

__all__ = ["app", "contract_app"]

app = typer.Typer(
    help="Ingest, validate, version, inspect, compare and profile datasets.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
contract_app = typer.Typer(
    help="Write a contract from data, or show a stored one.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
app.add_typer(contract_app, name="contract")


class OnInvalid(StrEnum):
    fail = "fail"
    quarantine = "quarantine"
    warn = "warn"


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


SourceArgument = Annotated[
    str,
    typer.Argument(
        metavar="SOURCE",
        help="A CSV, Parquet or JSON Lines file, a quoted glob, a folder of Parquet files, "
        "or a SQL query with --sql-url.",
        show_default=False,
    ),
]
SqlUrlOption = Annotated[
    str | None,
    typer.Option(
        "--sql-url", metavar="URL", help="SQLAlchemy URL of the database SOURCE is a query on."
    ),
]
ContractOption = Annotated[
    Path | None,
    typer.Option(
        "--contract", "-c", metavar="FILE", help="Data contract (YAML or JSON).", dir_okay=False
    ),
]
FormatOption = Annotated[OutputFormat, typer.Option("--format", help="Output format.")]


# -- ingest and validate ---------------------------------------------------------------
@app.command("ingest")
def ingest(
    source: SourceArgument,
    name: Annotated[
        str, typer.Option("--name", "-n", metavar="NAME", help="Dataset name.", show_default=False)
    ],
    contract: ContractOption = None,
    on_invalid: Annotated[
        OnInvalid,
        typer.Option(
            "--on-invalid",
            help="Rows failing the contract: fail stores nothing, quarantine stores the valid "
            "rows and sets the rest aside in NAME.quarantine, warn stores every row.",
        ),
    ] = OnInvalid.fail,
    sql_url: SqlUrlOption = None,
    home: HomeOption = None,
) -> None:
    """Read, validate and store SOURCE as a new version of dataset NAME.

    Without --contract the newest contract stored for NAME (if any) is used.
    Identical content gives back the existing version.
    """
    from loopml.data.catalog import DataValidationError

    out = console()
    with open_workspace(home) as ws:
        started = time.monotonic()
        try:
            with ingest_progress(error_console(), f"Ingesting {name}") as on_progress:
                version = ws.data.ingest(
                    source,
                    name=name,
                    contract=_existing(contract) if contract is not None else None,
                    on_invalid=on_invalid.value,
                    sql_url=sql_url,
                    on_progress=on_progress,
                )
        except DataValidationError as error:
            if not error.report.structural:  # else the message names the columns
                print_report(out, error.report)
            raise _refused(error) from None
        out.print(version_summary(version, version.created, time.monotonic() - started))
        if version.report is not None:
            print_report(out, version.report)


@app.command("validate")
def validate(
    source: SourceArgument,
    contract: ContractOption = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name", "-n", metavar="NAME", help="Use the newest contract stored for NAME."
        ),
    ] = None,
    sql_url: SqlUrlOption = None,
    output_format: FormatOption = OutputFormat.table,
    home: HomeOption = None,
) -> None:
    """Check SOURCE against a contract without storing anything; exit 1 when it fails."""
    with open_workspace(home) as ws:
        if (contract is None) == (name is None):
            raise ValidationError("Give either --contract FILE or --name NAME (not both).")
        rules = _existing(contract) if contract is not None else ws.data.contract(str(name))
        report = ws.data.validate(source, rules, sql_url=sql_url)
    if output_format is OutputFormat.json:
        typer.echo(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        print_report(console(), report)
    if not report.passed:
        raise typer.Exit(1)


# -- versions ------------------------------------------------------------------------
@app.command("list")
def list_datasets(
    output_format: FormatOption = OutputFormat.table,
    home: HomeOption = None,
) -> None:
    """List datasets with their number of versions and newest version."""
    with open_workspace(home) as ws:
        rows = [
            (name, count, ws.data.version(name, newest) if newest is not None else None)
            for name, count, newest in ws.data.datasets()
        ]
    if output_format is OutputFormat.json:
        records = [
            {"name": name, "versions": count, "latest": _record_or_none(latest)}
            for name, count, latest in rows
        ]
        typer.echo(json.dumps(records, indent=2))
        return
    if not rows:
        console().print("No datasets yet. `loopml data ingest FILE --name NAME` adds one.")
        return
    console().print(datasets_table(rows))


@app.command("versions")
def list_versions(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Dataset name.")],
    output_format: FormatOption = OutputFormat.table,
    home: HomeOption = None,
) -> None:
    """List the versions of a dataset, oldest first."""
    with open_workspace(home) as ws:
        counts = {known: count for known, count, _ in ws.data.datasets()}
        # an unknown name goes to the API, whose NotFoundError lists the known datasets
        versions = ws.data.versions(name) if counts.get(name, 1) else []
    if output_format is OutputFormat.json:
        typer.echo(json.dumps([version_record(v) for v in versions], indent=2))
        return
    if not versions:
        console().print(
            f"{escape(name)} has no versions yet: no ingest of it has been stored "
            "(a failed one stores nothing)."
        )
        return
    out = console()
    out.print(versions_table(name, versions, out.width))


@app.command("show")
def show(
    ref: Annotated[
        str,
        typer.Argument(
            metavar="REF", help="NAME (newest), NAME@VERSION or NAME@HASH_PREFIX (8+ characters)."
        ),
    ],
    rows: Annotated[
        int, typer.Option("--rows", "-r", min=0, metavar="N", help="Rows to preview.")
    ] = 10,
    home: HomeOption = None,
) -> None:
    """Show a version: metadata, schema, validation report, the runs that read it, first rows."""
    out = console()
    with open_workspace(home) as ws:
        version = ws.data.version(ref)
        used_by = [(run_id, role, _run_name(ws, run_id)) for run_id, role in
                   ws.data.runs_using(version)]  # fmt: skip
        preview = _head(ws, version, rows) if rows and version.rows else None
    out.print(version_panel(version))
    out.print(schema_table(version.schema))
    if version.report is not None:
        print_report(out, version.report)
    if used_by:
        out.print(runs_table(used_by))
    else:
        out.print("[dim]No run has logged this version as an input yet.[/]")
    if preview is not None:
        shown = f"First {len(preview):,} of {version.rows:,} rows"
        out.print(frame_table(preview, shown, out.width, index="#"))


# -- diff and profile ------------------------------------------------------------------
@app.command("diff")
def diff(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Dataset name.")],
    old: Annotated[str, typer.Argument(metavar="OLD", help="Old version: number or hash prefix.")],
    new: Annotated[str, typer.Argument(metavar="NEW", help="New version: number or hash prefix.")],
    key: Annotated[
        list[str] | None,
        typer.Option(
            "--key",
            "-k",
            metavar="COLUMN",
            help="Key column to match rows by (repeatable; default: the contract's key).",
        ),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Compare two versions: schema, row counts, rows added/removed/changed, column stats."""
    with open_workspace(home) as ws:
        change = ws.data.diff(name, _version_of(name, old), _version_of(name, new), key=key)
    print_diff(console(), change)


@app.command("profile")
def profile(
    ref: Annotated[str, typer.Argument(metavar="REF", help="NAME, NAME@VERSION or NAME@HASH.")],
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            metavar="FILE",
            help="Also write a self-contained HTML report here.",
            dir_okay=False,
        ),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Per-column statistics of a version; --out writes the HTML report with charts."""
    out = console()
    with open_workspace(home) as ws:
        version = ws.data.version(ref)
        result = ws.data.profile(version)
        if out_path is not None:
            _write(out_path, lambda: result.save_html(out_path))
    title = f"Profile of {version.ref} ({version.rows:,} rows, {version.columns} columns)"
    out.print(profile_table(result.to_frame(), title, out.width))
    if out_path is not None:
        out.print(f"[green]✓[/] Wrote the HTML report to [bold]{escape(str(out_path))}[/]")


# -- contracts -------------------------------------------------------------------------
@contract_app.command("infer")
def infer_contract(
    source: SourceArgument,
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            metavar="FILE",
            help="Write the contract here instead of printing it.",
            dir_okay=False,
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing --out file.")
    ] = False,
    sql_url: SqlUrlOption = None,
    home: HomeOption = None,
) -> None:
    """Write a contract describing SOURCE (types, ranges, categories) for you to review."""
    with open_workspace(home) as ws:
        if out_path is not None and out_path.exists() and not force:
            raise ValidationError(
                f"{out_path} exists; pass --force to overwrite it (it may hold your edits)."
            )
        inferred = ws.data.infer_contract(source, sql_url=sql_url)
        text = inferred.to_yaml()
        if out_path is not None:
            _write(out_path, lambda: out_path.write_text(text, encoding="utf-8"))
    if out_path is None:
        typer.echo(text, nl=not text.endswith("\n"))
        return
    out = console()
    out.print(
        f"[green]✓[/] Wrote a contract for {len(inferred.columns)} columns to "
        f"[bold]{escape(str(out_path))}[/]. Review it, then:"
    )
    command = f"loopml data ingest {shlex.quote(source)} --name NAME --contract {out_path}"
    out.print(f"  [dim]{escape(command)}[/]")


@contract_app.command("show")
def show_contract(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Dataset name.")],
    version: Annotated[
        int | None,
        typer.Option(
            "--version", "-v", min=1, metavar="N", help="Contract version (default: newest)."
        ),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Print the contract stored for a dataset, as YAML."""
    with open_workspace(home) as ws:
        text = ws.data.contract(name, version).to_yaml()
    typer.echo(text, nl=not text.endswith("\n"))


# -- helpers ---------------------------------------------------------------------------
def _existing(path: Path) -> Path:
    """A contract path, refused early (exit 1, not a traceback) when it does not exist."""
    if not path.is_file():
        raise NotFoundError(f"Contract file {path} does not exist; check the path.")
    return path


def _refused(error: DataValidationError) -> typer.Exit:
    """Prints a DataValidationError without the report text the table already showed."""
    report = str(error.report)
    message = str(error).replace(f":\n{report}\n", ". ").replace(f"\n{report}", "").strip()
    message = message.replace("on_invalid='quarantine'", "--on-invalid quarantine")
    error_console().print(f"[bold red]{escape(error.headline)}:[/] {escape(message)}")
    return typer.Exit(1)


def _version_of(name: str, text: str) -> int | str:
    """``3`` → 3, ``churn@3`` stays, a hash prefix becomes ``NAME@prefix``."""
    text = text.strip()
    if text.isdigit() and len(text) < 8:
        return int(text)
    return text if "@" in text else f"{name}@{text}"


def _head(ws: Workspace, version: DatasetVersion, rows: int) -> pd.DataFrame | None:
    for batch in ws.data.batches(version, batch_rows=rows):
        frame: pd.DataFrame = batch.to_pandas()
        return frame
    return None


def _run_name(ws: Workspace, run_id: str) -> str:
    try:
        return str(ws.get_run(run_id).info.name)
    except NotFoundError:
        return ""


def _record_or_none(version: DatasetVersion | None) -> dict[str, Any] | None:
    return version_record(version) if version is not None else None


def _write(path: Path, write: Callable[[], object]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write()
    except OSError as error:
        raise ValidationError(f"Cannot write {path}: {error.strerror or error}.") from None
