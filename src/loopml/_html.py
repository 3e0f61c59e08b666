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
# The base of loopml's offline report pages (the data profile, the monitoring report);
# each page adds its own rules after it.
REPORT_CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f4f6f9; color: #1f2933; font: 14px/1.5 FONT; }
.page { max-width: 1240px; margin: 0 auto; padding: 28px 24px 40px; }
h2 { font-size: 17px; margin: 0 0 12px; }
.section { margin-top: 28px; }
.muted { color: #64707d; }
.small { font-size: 12.5px; margin: 4px 0 8px; }
.tile { background: #fff; border: 1px solid #e2e6ec; border-radius: 10px; padding: 12px 18px;
  min-width: 140px; }
.tile-value { font-size: 22px; font-weight: 650; font-variant-numeric: tabular-nums; }
.tile-label { color: #64707d; font-size: 12px; text-transform: uppercase;
  letter-spacing: 0.05em; }
.badge { display: inline-block; border-radius: 999px; padding: 1px 9px; font-size: 11.5px;
  font-weight: 600; white-space: nowrap; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { padding: 7px 12px; text-align: left; border-bottom: 1px solid #eef1f4;
  white-space: nowrap; }
tbody tr:last-child td { border-bottom: none; }
tbody tr:hover { background: #f8fafc; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr));
  gap: 16px; }
.card { background: #fff; border: 1px solid #e2e6ec; border-radius: 10px; padding: 14px 16px;
  min-width: 0; }
.card-head { display: flex; align-items: center; justify-content: space-between; gap: 8px; }
.chart { width: 100%; min-height: 120px; }
.empty { color: #7a8591; background: #f8f9fb; border-radius: 8px; padding: 18px;
  text-align: center; font-size: 13px; }
.footer { margin-top: 32px; color: #8a949f; font-size: 12px; text-align: center; }
""".replace("FONT", FONT)
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
