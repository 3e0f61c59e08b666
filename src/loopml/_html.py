"""What loopml's offline HTML pages (the data profile, the monitoring report) draw with
alike: the Plotly figure layout and config, JSON inside script elements, cell values and
axis labels.

Internal: each page's own module (``loopml.data._profile_html``,
``loopml.monitoring._report_html``) holds its markup, styles and script.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

__all__ = [
    "DASH",
    "FONT",
    "PLOT_CONFIG",
    "layout",
    "number",
    "percent",
    "script_json",
    "short_labels",
]

DASH = "\u2013"  # shown for values that do not exist
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
PLOT_CONFIG = {
    "displaylogo": False,
    "responsive": True,
    "typesetMath": False,
    "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"],
}
_LABEL_CHARACTERS = 28


def script_json(value: object) -> str:
    """JSON that can sit inside a <script> element whatever strings it holds."""
    text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def layout(height: int, **extra: Any) -> dict[str, Any]:
    """A figure layout in the pages' style; ``extra`` keys update it (dicts merge)."""
    axis = {
        "gridcolor": "#edf0f4",
        "zeroline": False,
        "automargin": True,
        "linecolor": "#cfd6df",
        "tickfont": {"size": 10},
    }
    result: dict[str, Any] = {
        "height": height,
        "margin": {"l": 8, "r": 12, "t": 8, "b": 8},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "font": {"family": FONT, "size": 11, "color": "#46505c"},
        "showlegend": False,
        "legend": {
            "orientation": "h",
            "x": 0,
            "y": 1.02,
            "yanchor": "bottom",
            "font": {"size": 10},
        },
        "hoverlabel": {"font": {"family": FONT, "size": 12}},
        "xaxis": dict(axis, showline=True),
        "yaxis": dict(axis),
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = {**result[key], **value}
        else:
            result[key] = value
    return result


def number(value: float | None) -> str:
    """A value for a table cell."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if math.isinf(value):
        return "∞" if value > 0 else "\u2212∞"
    magnitude = abs(value)
    if value == int(value) and magnitude < 1e15:
        return f"{int(value):,}"
    if magnitude >= 1e15 or magnitude < 1e-3:
        return f"{value:.3e}"
    if magnitude >= 1000:
        return f"{value:,.1f}"
    return f"{value:.4g}"


def percent(share: float | None) -> str:
    """A share (0 to 1) for a table cell, as HTML: ``12.5%``, ``<0.1%`` when tiny."""
    if share is None or math.isnan(share):
        return DASH
    if 0 < share < 0.001:
        return "&lt;0.1%"
    return f"{share * 100:.1f}%"


def short_labels(texts: Sequence[str]) -> list[str]:
    """Axis labels: long texts keep their start and end, and equal labels stay apart."""
    head = _LABEL_CHARACTERS * 3 // 5
    tail = _LABEL_CHARACTERS - head - 1
    labels: list[str] = []
    for text in texts:
        label = text if len(text) <= _LABEL_CHARACTERS else f"{text[:head]}…{text[-tail:]}"
        while label in labels:  # a category axis would merge equal labels into one bar
            label += "\u200b"
        labels.append(label)
    return labels
