"""Shared CLI plumbing: the --home option, opening a workspace, clean errors, formatting.

Not public: the commands in :mod:`loopml.cli` are the interface.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from loopml.errors import LoopmlError
from loopml.workspace import Workspace

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        metavar="PATH",
        help="Workspace folder (default: $LOOPML_HOME, else ./.loopml).",
        show_default=False,
        file_okay=False,
    ),
]

STATUS_STYLES = {
    "FINISHED": "green",
    "RUNNING": "cyan",
    "FAILED": "bold red",
    "KILLED": "yellow",
}
_SPARKS = "▁▂▃▄▅▆▇█"
_LOWER_IS_BETTER = re.compile(r"(loss|error|err$|mse|rmse|mae|mape|deviance|time|seconds|latency)")


def console() -> Console:
    """The stdout console, made per command so tests' COLUMNS and output capture apply."""
    return Console(highlight=False, soft_wrap=False)


def error_console() -> Console:
    return Console(stderr=True, highlight=False)


def fail(error: LoopmlError) -> typer.Exit:
    """Prints a loopml error as a red headline plus its message; returns Exit(1) to raise."""
    error_console().print(f"[bold red]{escape(error.headline)}:[/] {escape(str(error))}")
    return typer.Exit(1)


@contextmanager
def open_workspace(home: Path | None, create: bool = False) -> Iterator[Workspace]:
    """Opens the workspace for one command; any LoopmlError inside ends it cleanly (exit 1).

    Unless ``create``, a workspace that does not exist yet is an error rather than
    a new empty one, so a mistyped ``--home`` does not silently start afresh.
    """
    workspace: Workspace | None = None
    try:
        workspace = Workspace.open(home, create=create)
        yield workspace
    except LoopmlError as error:
        raise fail(error) from None
    finally:
        if workspace is not None:
            workspace.close()


# -- formatting -----------------------------------------------------------------
def short_id(run_id: str) -> str:
    return run_id[:8]


def status_text(status: str, deleted: bool = False) -> Text:
    text = Text(status, style=STATUS_STYLES.get(status, ""))
    if deleted:
        text.append(" (deleted)", style="dim")
    return text


def local_time(value: Any) -> str:
    """A timestamp (epoch ms, datetime or pandas Timestamp) as local ``YYYY-MM-DD HH:MM:SS``."""
    moment = to_datetime(value)
    return "" if moment is None else moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def to_datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        if isinstance(value, float) and math.isnan(value):
            return None
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    if hasattr(value, "to_pydatetime"):
        try:
            if value != value:  # NaT
                return None
        except (TypeError, ValueError):
            pass
        moment: datetime = value.to_pydatetime()
        return moment
    if isinstance(value, datetime):
        return value
    return None


def duration_seconds(start: Any, end: Any) -> float | None:
    began, ended = to_datetime(start), to_datetime(end)
    if began is None:
        return None
    if ended is None:
        return None
    return (ended - began).total_seconds()


def format_duration(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def format_number(value: Any) -> str:
    """Metric values: 4 significant decimals for small numbers, thousands for big ones."""
    if value is None:
        return ""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    if number.is_integer() and abs(number) < 1e15:
        return f"{int(number):,}"
    if abs(number) >= 1000:
        return f"{number:,.1f}"
    if abs(number) >= 1e-3:
        return f"{number:.4f}"
    return f"{number:.3g}"


def human_bytes(size: float) -> str:
    """``1536`` → ``1.5 KiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def sparkline(values: Sequence[float], width: int = 24) -> str:
    """A one-line chart of ``values`` (resampled to ``width`` points)."""
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if len(finite) < 2:
        return ""
    if len(finite) > width:
        step = len(finite) / width
        finite = [finite[min(len(finite) - 1, int(i * step))] for i in range(width - 1)] + [
            finite[-1]
        ]
    low, high = min(finite), max(finite)
    if high == low:
        return _SPARKS[0] * len(finite)
    scale = (len(_SPARKS) - 1) / (high - low)
    return "".join(_SPARKS[round((v - low) * scale)] for v in finite)


def lower_is_better(metric: str) -> bool:
    """Whether smaller is better for a metric, judged by its name (loss, error, time, ...)."""
    return bool(_LOWER_IS_BETTER.search(metric.lower()))


def is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, NaT
    except (TypeError, ValueError):
        return False
