"""How ``loopml runs list`` lays runs out: a table that fits the terminal, JSON or CSV."""

from __future__ import annotations

import csv
import io
import math
import re
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from loopml.cli._output import (
    duration_seconds,
    format_duration,
    format_number,
    is_missing,
    local_time,
    short_id,
    status_text,
)
from loopml.store.search import Field

if TYPE_CHECKING:
    import pandas as pd  # only in hints: `loopml serve` should not pay for pandas

_CELL_PADDING = 3  # a border and a space either side
_MAX_PARAM_WIDTH = 24
_START_WIDTH = 19
_MIN_METRIC_COLUMNS = 2
# Of every five extra columns, metrics get three and params two.
_COLUMN_PATTERN = ("metrics", "metrics", "params", "metrics", "params")


def priority_keys(
    ordering: list[tuple[Field, bool]], filter_text: str | None
) -> tuple[list[str], list[str]]:
    """Metric and param keys the user asked about: sorted by first, then filtered on."""
    metrics = [field.key for field, _ in ordering if field.kind == "metrics"]
    params = [field.key for field, _ in ordering if field.kind == "params"]
    if filter_text:
        metrics += _mentioned(filter_text, "metrics?")
        params += _mentioned(filter_text, "params?")
    return metrics, params


def runs_table(
    frame: pd.DataFrame,
    deleted: set[str],
    experiment: list[str] | None,
    width: int,
    priority_metrics: list[str],
    priority_params: list[str],
    more: bool,
) -> Table:
    """The runs as a table with as many metric and param columns as ``width`` allows."""
    metric_keys = _keys(frame, "metrics.")
    param_keys = _keys(frame, "params.")
    ranked_metrics = _pick_columns(frame, "metrics.", metric_keys, priority_metrics, False)
    ranked_params = _pick_columns(frame, "params.", param_keys, priority_params, True)
    show_experiment = not experiment or len(experiment) > 1
    show_start = True
    # On narrow terminals give up the start time, then the experiment, for two metrics.
    wanted = sum(
        _column_width(frame, "metrics", key) + _CELL_PADDING
        for key in ranked_metrics[:_MIN_METRIC_COLUMNS]
    )
    base = _base_width(frame, show_experiment, bool(deleted))
    if width - base < wanted:
        show_start = False
        base -= _START_WIDTH + _CELL_PADDING
    if width - base < wanted and show_experiment:
        base = _base_width(frame, False, bool(deleted)) - _START_WIDTH - _CELL_PADDING
        show_experiment = False
    metrics, params = _fit_columns(frame, width - base, ranked_metrics, ranked_params)
    sort_key = priority_metrics[0] if priority_metrics else None

    title = f"Runs in {', '.join(experiment)}" if experiment and len(experiment) == 1 else "Runs"
    table = Table(title=escape(title), title_justify="left", header_style="bold")
    table.add_column("run id", style="cyan", no_wrap=True)
    table.add_column("name", overflow="fold", min_width=8)
    if show_experiment:
        table.add_column("experiment")
    table.add_column("status", no_wrap=True)
    if show_start:
        table.add_column("start", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    for key in metrics:
        table.add_column(escape(key), justify="right", style="bold" if key == sort_key else "")
    for key in params:
        table.add_column(escape(key), style="magenta", overflow="fold")
    for _, row in frame.iterrows():
        cells: list[Any] = [short_id(row["run_id"]), escape(str(row["run_name"]))]
        if show_experiment:
            cells.append(escape(str(row["experiment"])))
        cells.append(status_text(row["status"], row["run_id"] in deleted))
        if show_start:
            cells.append(local_time(row["start_time"]))
        cells.append(format_duration(duration_seconds(row["start_time"], row["end_time"])))
        cells += [_cell(row.get(f"metrics.{key}"), numeric=True) for key in metrics]
        cells += [_cell(row.get(f"params.{key}")) for key in params]
        table.add_row(*cells, style="dim" if row["run_id"] in deleted else None)
    notes = [f"{len(frame)} run{'s' if len(frame) != 1 else ''}"]
    if more:
        notes.append("more match: raise --max")
    hidden = []
    if len(metrics) < len(metric_keys):
        hidden.append(f"{len(metrics)} of {len(metric_keys)} metrics")
    if len(params) < len(param_keys):
        hidden.append(f"{len(params)} of {len(param_keys)} params")
    if hidden:
        notes.append(f"showing {' and '.join(hidden)}; --format json has all")
    table.caption = " · ".join(notes)
    table.caption_justify = "left"
    return table


def _keys(frame: pd.DataFrame, prefix: str) -> list[str]:
    return [column[len(prefix) :] for column in frame.columns if column.startswith(prefix)]


def _pick_columns(
    frame: pd.DataFrame, prefix: str, keys: list[str], priority: list[str], prefer_varying: bool
) -> list[str]:
    """Keys in the order worth showing: the ones asked about, then well-filled ones.

    Params that differ between the listed runs come before constant ones; metrics that
    look like timings (``fit_seconds``) come after quality metrics.
    """

    def rank(key: str) -> tuple[int, int, int, int, str]:
        column = frame[f"{prefix}{key}"]
        asked = priority.index(key) if key in priority else len(priority)
        constant = prefer_varying and column.dropna().astype(str).nunique() <= 1
        timing = not prefer_varying and bool(re.search(r"time|seconds|duration", key, re.I))
        return (asked, int(constant), int(timing), -int(column.notna().sum()), key)

    return sorted(keys, key=rank)


def _base_width(frame: pd.DataFrame, show_experiment: bool, any_deleted: bool) -> int:
    """Width taken by the fixed columns (id, name, experiment, status, start, duration)."""
    widths = [8, max(4, int(frame["run_name"].astype(str).str.len().max()))]
    if show_experiment:
        widths.append(max(10, int(frame["experiment"].astype(str).str.len().max())))
    widths += [8 + (10 if any_deleted else 0), _START_WIDTH, 8]
    return sum(w + _CELL_PADDING for w in widths) + 1


def _fit_columns(
    frame: pd.DataFrame, room: int, metrics: list[str], params: list[str]
) -> tuple[list[str], list[str]]:
    """As many metric and param columns as fit in ``room`` characters, best ones first."""
    queues = {"metrics": list(metrics), "params": list(params)}
    chosen: dict[str, list[str]] = {"metrics": [], "params": []}
    pattern = 0
    while queues["metrics"] or queues["params"]:
        kind = _COLUMN_PATTERN[pattern % len(_COLUMN_PATTERN)]
        pattern += 1
        if not queues[kind]:
            kind = "params" if kind == "metrics" else "metrics"
        key = queues[kind].pop(0)
        needed = _column_width(frame, kind, key) + _CELL_PADDING
        if needed <= room:
            chosen[kind].append(key)
            room -= needed
    return chosen["metrics"], chosen["params"]


def _column_width(frame: pd.DataFrame, kind: str, key: str) -> int:
    values = frame[f"{kind}.{key}"].dropna()
    render = format_number if kind == "metrics" else str
    longest = max((len(render(value)) for value in values), default=0)
    return max(len(key), longest if kind == "metrics" else min(_MAX_PARAM_WIDTH, longest))


def _mentioned(filter_text: str, kind: str) -> list[str]:
    pattern = rf"\b{kind}\.(?:`([^`]+)`|\"([^\"]+)\"|([A-Za-z_][\w\-/.:]*))"
    return [next(g for g in match if g) for match in re.findall(pattern, filter_text, re.I)]


def _cell(value: Any, numeric: bool = False) -> str:
    if is_missing(value):
        return ""
    return format_number(value) if numeric else escape(str(value))


def run_record(row: pd.Series) -> dict[str, Any]:
    def section(prefix: str) -> dict[str, Any]:
        return {
            str(key)[len(prefix) :]: _plain(value)
            for key, value in row.items()
            if str(key).startswith(prefix) and not is_missing(value)
        }

    return {
        "run_id": row["run_id"],
        "run_name": row["run_name"],
        "experiment": row["experiment"],
        "status": row["status"],
        "deleted": bool(row["deleted"]),
        "start_time": _iso(row["start_time"]),
        "end_time": _iso(row["end_time"]),
        "duration_seconds": duration_seconds(row["start_time"], row["end_time"]),
        "parent_run_id": None if is_missing(row["parent_run_id"]) else row["parent_run_id"],
        "user": None if is_missing(row["user"]) else row["user"],
        "git_commit": None if is_missing(row["git_commit"]) else row["git_commit"],
        "metrics": {k: v for k, v in section("metrics.").items() if _finite(v)},
        "params": section("params."),
        "tags": section("tags."),
    }


def runs_csv(frame: pd.DataFrame) -> str:
    table = frame.copy()
    for column in ("start_time", "end_time"):
        table[column] = [_iso(value) for value in table[column]]
    buffer = io.StringIO()
    table.to_csv(buffer, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    return buffer.getvalue()


def _iso(value: Any) -> str | None:
    if is_missing(value):
        return None
    return str(value.isoformat()) if hasattr(value, "isoformat") else str(value)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _finite(value: Any) -> bool:
    return not isinstance(value, float) or math.isfinite(value)
