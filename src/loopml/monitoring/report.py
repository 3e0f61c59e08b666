"""The monitoring report: one self-contained, offline HTML page about a model in a window.

``loopml monitor report models:/churn@production --window 1d --out report.html`` writes
it. The page holds drift per feature (a table and reference-vs-current distributions,
from the drift report's pre-binned summaries), drift share and per-feature drift over
time, performance over time with its bootstrap intervals and label coverage, service
health (latency percentiles, throughput, error rates, queue depth, prediction-log drops)
and the alerts. It never holds raw rows, so it stays small (under 5 MB for 25 features
at 1M rows, Plotly included).

The drawing (page shell, embedded Plotly, figures) is in
:mod:`loopml.monitoring._report_html`; this module shapes each section's data. It stays
one module past ~400 lines because the sections read one frame of points and change
together.

Example:
    >>> html = render_report(title="churn", model="churn", version=3, window=(start, end),
    ...                      drift=ws.monitor.drift(reference, current),
    ...                      series=series(ws, "churn", since=start, until=end),
    ...                      alerts=MonitorRepository(ws.db).alerts("churn"))
    >>> write_report("report.html", html)
"""

from __future__ import annotations

import datetime as dt
import html
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.errors import ValidationError
from loopml.monitoring import _report_html as page
from loopml.monitoring.series import COLUMNS

if TYPE_CHECKING:
    import pandas as pd

    from loopml.monitoring.drift import DriftReport, DriftTest
    from loopml.store.repositories.monitoring import AlertRecord

__all__ = ["render_report", "write_report"]

Figure = dict[str, Any]

_HEALTH_BUCKETS = 240  # at most this many points per health line, whatever the windows
_X_FORMAT = "%Y-%m-%d %H:%M:%S"  # window ends on the charts' time axes (UTC)


def render_report(
    *,
    title: str,
    model: str,
    version: int | None,
    window: tuple[dt.datetime, dt.datetime],
    drift: DriftReport | None,
    series: pd.DataFrame,
    alerts: Sequence[AlertRecord],
) -> str:
    """The report as one HTML document (Plotly embedded, no external URL).

    Args:
        title: The page's heading.
        model: The registered model's name.
        version: The model version the report is about; None for all versions.
        window: The reported window ``(start, end)``.
        drift: The window's drift report (reference vs current), or None when there is
            none (the per-feature section then says so).
        series: Monitored points, as :func:`loopml.monitoring.series.series` returns them
            (columns :data:`~loopml.monitoring.series.COLUMNS`); all are drawn, so pass
            the window's (``since=start, until=end``). Every version in it gets its own
            lines; health charts show all versions and ``version``, the others one click
            away in their legends.
        alerts: The model's alerts to list.

    Raises:
        ValidationError: ``series`` lacks a column, or the window ends before it starts.
    """
    missing = [column for column in COLUMNS if column not in series.columns]
    if missing:
        raise ValidationError(
            f"The series frame lacks column(s) {', '.join(missing)}; pass what "
            "loopml.monitoring.series.series(ws, model, since=..., until=...) returns."
        )
    start, end = window
    if end <= start:
        raise ValidationError(
            f"The report's window must end after it starts; got {start} .. {end}."
        )
    frame = _prepared(series)
    figures: list[Figure] = []
    sections = [
        _header(title, model, version, window, drift, frame, alerts),
        _drift(drift, figures),
        _drift_over_time(frame, figures),
        _performance(frame, figures),
        _health(frame, version, figures),
        _alerts(alerts),
    ]
    return page.page(title, "\n".join(sections), figures)


def write_report(path: str | os.PathLike[str], html_text: str) -> Path:
    """Writes a rendered report to ``path`` (folders created) and returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(html_text, encoding="utf-8")
    return target


# -- data -----------------------------------------------------------------------------------
def _prepared(series: pd.DataFrame) -> pd.DataFrame:
    """The points with UTC times, versions as numbers (0: all) and labels, and the
    window's end as the x position charts use."""
    import pandas as pd

    frame = series[COLUMNS].copy()
    for column in ("start", "end"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    versions = pd.to_numeric(frame["version"], errors="coerce").fillna(0).astype(int)
    frame["version"] = versions
    frame["label"] = versions.map({v: _version_label(v) for v in versions.unique().tolist()})
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype(float)
    # Formatting a month of one-minute health windows would take seconds: health charts
    # format their buckets instead.
    drawn = frame["kind"] != "health"
    frame["x"] = ""
    frame.loc[drawn, "x"] = frame.loc[drawn, "end"].dt.strftime(_X_FORMAT)
    details = [value if isinstance(value, dict) else {} for value in frame["detail"]]
    frame["detail"] = pd.Series(details, index=frame.index, dtype=object)
    return frame.sort_values(["end", "version"], kind="stable").reset_index(drop=True)


def _version_label(version: int) -> str:
    return "all versions" if version == 0 else f"version {version}"


def _color(index: int) -> str:
    return page.COLORS[index % len(page.COLORS)]


def _values(points: pd.DataFrame) -> list[float | None]:
    return [page.plot_number(value) for value in points["value"].tolist()]


def _chart(element: str, label: str, height: int = 240) -> str:
    return (
        f'<div class="chart" id="{element}" role="img" aria-label="{html.escape(label)}" '
        f'style="min-height:{height}px"></div>'
    )


def _card(heading: str, body: str, note: str = "") -> str:
    note_html = f'<p class="muted small">{note}</p>' if note else ""
    return (
        f'<article class="card"><header class="card-head"><h3>{html.escape(heading)}</h3>'
        f"</header>{note_html}{body}</article>"
    )


def _section(heading: str, body: str, anchor: str) -> str:
    return f'<section class="section" id="{anchor}"><h2>{heading}</h2>{body}</section>'


def _empty(message: str) -> str:
    return f'<p class="empty">{html.escape(message)}</p>'


# -- header ---------------------------------------------------------------------------------
def _header(
    title: str,
    model: str,
    version: int | None,
    window: tuple[dt.datetime, dt.datetime],
    drift: DriftReport | None,
    frame: pd.DataFrame,
    alerts: Sequence[AlertRecord],
) -> str:
    import pandas as pd

    start, end = window
    what = f"model <b>{html.escape(model)}</b>"
    if version is not None:
        what += f" · version <b>{version}</b>"
    subtitle = f"{what} · window {page.moment(start)} {page.DASH} {page.moment(end)} UTC"
    firing = sum(alert.state == "firing" for alert in alerts)
    tiles: list[tuple[str, str, bool]] = []
    if drift is not None:
        drifted = len(drift.drifted_features)
        tiles.append((f"{drifted} of {len(drift.features)}", "drifted features", drifted > 0))
        tiles.append((page.percent(drift.share), "drift share", drifted > 0))
    health = frame[(frame["kind"] == "health") & (frame["version"] == 0)]
    by_name = {name: rows for name, rows in health.groupby("name")}
    if "requests" in by_name:
        tiles.append((page.number(float(by_name["requests"]["value"].sum())), "requests", False))
    if "error_rate" in by_name:
        rows = by_name["error_rate"]
        weights = pd.Series([detail.get("requests", 0) for detail in rows["detail"]], dtype=float)
        if weights.sum() > 0:
            rate = float((rows["value"].to_numpy() * weights.to_numpy()).sum() / weights.sum())
            tiles.append((page.percent(rate), "server errors", rate > 0.01))
    if "p99_ms" in by_name and by_name["p99_ms"]["value"].notna().any():
        worst = float(by_name["p99_ms"]["value"].max())
        tiles.append((f"{page.number(worst)} ms", "worst p99 latency", False))
    tiles.append((f"{firing:,}", "firing alerts", firing > 0))
    tile_html = "".join(
        f'<div class="tile{" bad" if bad else ""}"><div class="tile-value">{value}</div>'
        f'<div class="tile-label">{label}</div></div>'
        for value, label, bad in tiles
    )
    return (
        f'<header class="page-header"><h1>{html.escape(title)}</h1>'
        f'<p class="muted">{subtitle}</p><div class="tiles">{tile_html}</div></header>'
    )


# -- drift per feature ---------------------------------------------------------------------
def _drift(drift: DriftReport | None, figures: list[Figure]) -> str:
    if drift is None:
        return _section(
            "Drift per feature",
            _empty("No drift report for this window: there was no current data to compare."),
            "drift",
        )
    tests = list(drift.tests)
    drifted = {test.feature for test in tests if test.drifted}
    columns = [*drift.features, *drift.predictions]
    order = sorted(columns, key=lambda name: (name not in drifted, columns.index(name)))
    position = {name: index for index, name in enumerate(order)}
    tests.sort(key=lambda test: (position.get(test.feature, len(order)), test.role))
    rows = "".join(_drift_row(test) for test in tests)
    table = (
        '<div class="table-wrap"><table><thead><tr><th>Feature</th><th>Kind</th><th>Test</th>'
        "<th>Statistic</th><th>p-value</th><th>Threshold</th><th>Drifted</th><th>Missing</th>"
        f"<th>Detail</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )
    notes = [
        f"{drift.reference.rows:,} reference rows against {drift.current.rows:,} current rows; "
        f"{len(drift.drifted_features)} of {len(drift.features)} features drifted."
    ]
    if drift.absent_columns:
        notes.append(
            "Absent from the current data: " + html.escape(", ".join(drift.absent_columns)) + "."
        )
    cards = []
    for name in order:
        if name not in drift.reference or name not in drift.current:
            continue
        element = f"chart-distribution-{position[name]}"
        figure = page.distribution_figure(element, drift.figure(name))
        own = [test for test in tests if test.feature == name]
        summary = " · ".join(_test_summary(test) for test in own)
        if figure["data"]:
            figures.append(figure)
            body = _chart(element, f"Reference and current distributions of {name}", 230)
        else:
            body = _empty("No values to draw in the reference.")
        badge = (
            '<span class="badge badge-bad">drifted</span>'
            if name in drifted
            else '<span class="badge badge-good">stable</span>'
        )
        role = "prediction · " if name in drift.predictions else ""
        cards.append(
            f'<article class="card"><header class="card-head"><h3 title="{html.escape(name)}">'
            f"{html.escape(name)}</h3>{badge}</header>"
            f'<p class="muted small">{role}{summary}</p>{body}</article>'
        )
    body = (
        f'<p class="muted small">{" ".join(notes)}</p>{table}'
        f'<h2 class="subheading">Reference and current distributions</h2>'
        f'<div class="cards">{"".join(cards)}</div>'
    )
    return _section("Drift per feature", body, "drift")


def _test_summary(test: DriftTest) -> str:
    """``ks 0.12 (drifted)``; for ``missing`` the two shares."""
    if test.test == "missing":
        text = (
            f"missing {page.percent(test.missing_reference)} \u2192 "
            f"{page.percent(test.missing_current)}"
        )
    else:
        text = f"{html.escape(test.test)} {page.number(test.statistic)}"
    return text + (" (drifted)" if test.drifted else "")


def _drift_row(test: DriftTest) -> str:
    detail = "; ".join(
        f"{key}: {', '.join(map(str, value[:10])) if isinstance(value, list) else value}"
        for key, value in test.detail.items()
        if value not in ([], None, "")
    )
    flag = (
        '<span class="badge badge-bad">drifted</span>'
        if test.drifted
        else '<span class="badge badge-neutral">no</span>'
    )
    role = "" if test.role == "feature" else f' <span class="muted">({test.role})</span>'
    return (
        f'<tr><td class="name" title="{html.escape(test.feature)}">{html.escape(test.feature)}'
        f"{role}</td><td>{html.escape(test.kind)}</td><td>{html.escape(test.test)}</td>"
        f'<td class="num">{page.number(test.statistic)}</td>'
        f'<td class="num">{page.number(test.p_value)}</td>'
        f'<td class="num">{page.number(test.threshold)}</td><td>{flag}</td>'
        f'<td class="num">{page.percent(test.missing_reference)} \u2192 '
        f"{page.percent(test.missing_current)}</td>"
        f'<td class="text">{html.escape(detail)}</td></tr>'
    )


# -- drift over time ------------------------------------------------------------------------
def _drift_over_time(frame: pd.DataFrame, figures: list[Figure]) -> str:
    drift = frame[frame["kind"] == "drift"]
    share = drift[drift["name"] == "share"]
    features = drift[drift["name"] != "share"]
    cards = []
    if len(share):
        traces = [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": label,
                "x": points["x"].tolist(),
                "y": _values(points),
                "line": {"color": _color(index), "width": 2},
                "marker": {"size": 5},
                "hovertemplate": "%{x}<br>%{y:.1%} of features drifted"
                "<extra>%{fullData.name}</extra>",
            }
            for index, (label, points) in enumerate(share.groupby("label", sort=True))
        ]
        figures.append(
            page.line_figure(
                "chart-drift-share",
                traces,
                yaxis={"tickformat": ".0%", "rangemode": "tozero"},
            )
        )
        cards.append(
            _card(
                "Drift share",
                _chart("chart-drift-share", "Share of drifted features over time"),
                "The share of features that drifted in each window.",
            )
        )
    if len(features):
        flagged = features.assign(flagged=features["flagged"].fillna(False).astype(bool))
        shares = flagged.groupby(["name", "x"], sort=False)["flagged"].mean().unstack("x")
        names = (
            flagged[flagged["flagged"]]
            .groupby(["name", "x"], sort=False)["test"]
            .agg(lambda found: ", ".join(sorted(set(found))))
            .unstack("x")
        )
        order = list(dict.fromkeys(features["name"].tolist()))
        windows = sorted(shares.columns)
        shares = shares.reindex(index=order, columns=windows)
        names = names.reindex(index=order, columns=windows)
        text = [
            [value if isinstance(value, str) else "" for value in row]
            for row in names.to_numpy().tolist()
        ]
        figure, height = page.drift_heatmap(
            "chart-drift-features", order, windows, shares.to_numpy().tolist(), text
        )
        figures.append(figure)
        cards.append(
            _card(
                "Drift per feature",
                _chart("chart-drift-features", "Drift per feature over time", height),
                "Per window, the share of a feature's tests that flagged drift.",
            )
        )
    if not cards:
        body = _empty("No drift points in this window: run monitoring (loopml monitor run).")
    else:
        body = '<div class="cards wide">' + "".join(cards) + "</div>"
    return _section("Drift over time", body, "drift-over-time")


# -- performance ----------------------------------------------------------------------------
def _performance(frame: pd.DataFrame, figures: list[Figure]) -> str:
    points = frame[frame["kind"] == "performance"]
    if not len(points):
        return _section(
            "Performance",
            _empty(
                "No performance points in this window: labels have not arrived yet, or "
                "monitoring has not evaluated it."
            ),
            "performance",
        )
    names = list(dict.fromkeys(points["name"].tolist()))
    if "coverage" in names:  # the labels' coverage last, after the metrics it qualifies
        names = [name for name in names if name != "coverage"] + ["coverage"]
    cards = []
    for index, name in enumerate(names):
        element = f"chart-performance-{index}"
        versions = [
            (label, rows["x"].tolist(), rows["value"].tolist(), rows["detail"].tolist())
            for label, rows in points[points["name"] == name].groupby("label", sort=True)
        ]
        figures.append(page.performance_figure(element, name, versions))
        if name == "coverage":
            heading = "Label coverage"
            note = (
                "Labelled share of each window's predictions; hollow markers: incomplete "
                "windows (coverage below the set share)."
            )
        else:
            heading = name
            note = (
                "The metric on each window's labelled predictions, with its bootstrap "
                "interval; hollow markers: incomplete windows."
            )
        cards.append(_card(heading, _chart(element, f"{heading} over time"), note))
    return _section("Performance", '<div class="cards">' + "".join(cards) + "</div>", "performance")


# -- health ---------------------------------------------------------------------------------
_HEALTH_CHARTS = (
    ("Latency", ("p50_ms", "p95_ms", "p99_ms"), "ms", "Request latency percentiles per window "
     "(the worst instance when several serve)."),
    ("Throughput", ("throughput_rps",), "requests/s", "Prediction requests per second."),
    ("Error rate", ("error_rate", "client_error_rate"), "share", "Server errors (5xx, solid) "
     "and refused requests (4xx, dotted) as a share of requests."),
    ("Queue and prediction log", ("queue_depth", "log_backlog", "log_dropped"), "rows",
     "Rows waiting for a batch, rows waiting to be logged, and rows the log dropped."),
)  # fmt: skip
_DASHES = {"p50_ms": "dot", "p95_ms": "dash", "client_error_rate": "dot", "log_backlog": "dash",
           "log_dropped": "dot"}  # fmt: skip


def _health(frame: pd.DataFrame, version: int | None, figures: list[Figure]) -> str:
    points = frame[frame["kind"] == "health"]
    if not len(points):
        return _section(
            "Service health",
            _empty(
                "No health points in this window: serve the model from a workspace with "
                "health_interval above 0."
            ),
            "health",
        )
    table = _health_buckets(points)
    shown = {"all versions", "" if version is None else _version_label(version)}
    if table["label"].nunique() == 1:
        shown = set(table["label"])
    cards = []
    for index, (heading, names, unit, note) in enumerate(_HEALTH_CHARTS):
        present = [name for name in names if name in table.columns and table[name].notna().any()]
        if not present:
            continue
        element = f"chart-health-{index}"
        traces = []
        for version_index, (label, rows) in enumerate(table.groupby("label", sort=True)):
            for name in present:
                traces.append(
                    {
                        "type": "scatter",
                        "mode": "lines",
                        "name": f"{name} · {label}",
                        "x": rows["x"].tolist(),
                        "y": page.plot_numbers(rows[name].tolist()),
                        "line": {
                            "color": _color(version_index),
                            "width": 1.6,
                            "dash": _DASHES.get(name, "solid"),
                        },
                        # Other versions are one click away in the legend.
                        "visible": True if label in shown else "legendonly",
                        "hovertemplate": f"%{{x}}<br>{name}: %{{y:.4g}}<extra>{label}</extra>",
                    }
                )
        yaxis: dict[str, Any] = {"rangemode": "tozero", "title": {"text": unit}}
        if unit == "share":
            yaxis["tickformat"] = ".1%"
        figures.append(page.line_figure(element, traces, height=260, yaxis=yaxis))
        cards.append(_card(heading, _chart(element, f"{heading} over time", 260), note))
    body = '<div class="cards wide">' + "".join(cards) + "</div>"
    return _section("Service health", body, "health")


def _health_buckets(points: pd.DataFrame) -> pd.DataFrame:
    """Health points on a common time grid, one row per version and bucket.

    The instances of a server (``test``) write their own windows, which need not line up:
    each bucket sums requests and drops, weighs error rates by requests, takes the worst
    percentile and queue, and divides requests by the time the instances covered.
    """
    import numpy as np
    import pandas as pd

    seconds = (points["end"] - points["start"]).dt.total_seconds()
    first, last = points["start"].min(), points["end"].max()
    span = (last - first).total_seconds()
    step = max(float(seconds.median()), span / _HEALTH_BUCKETS, 1e-3)
    # A window belongs to the bucket its (exclusive) end falls in.
    index = np.ceil((points["end"] - first).dt.total_seconds().to_numpy() / step) - 1
    bucket_end = pd.Series(
        first + pd.to_timedelta(np.maximum(index, 0) * step + step, unit="s"), index=points.index
    )
    weights = [float(detail.get("requests", 0) or 0) for detail in points["detail"]]
    work = pd.DataFrame(
        {
            "version": points["version"],
            "label": points["label"],
            "bucket": bucket_end,
            "test": points["test"],
            "name": points["name"],
            "value": points["value"],
            "weight": weights,
            "seconds": seconds,
        },
        index=points.index,
    )
    work["weighted"] = work["value"] * work["weight"]
    keys = ["version", "label", "bucket"]
    by_name = work.groupby([*keys, "name"], sort=True).agg(
        total=("value", "sum"),
        worst=("value", "max"),
        weighted=("weighted", "sum"),
        weight=("weight", "sum"),
    )
    worst, total = by_name["worst"].unstack("name"), by_name["total"].unstack("name")
    rates = (by_name["weighted"] / by_name["weight"].where(by_name["weight"] > 0)).unstack("name")
    requests = (
        work[work["name"] == "requests"]
        .groupby(keys, sort=True)
        .agg(requests=("value", "sum"), seconds=("seconds", "sum"), instances=("test", "nunique"))
    )
    table = pd.DataFrame(index=worst.index)
    if len(requests):
        covered = requests["seconds"] / requests["instances"]
        table["requests"] = requests["requests"]
        table["throughput_rps"] = requests["requests"] / covered.where(covered > 0)
    for name in ("error_rate", "client_error_rate"):
        if name in rates.columns:
            table[name] = rates[name]
    for name in ("p50_ms", "p95_ms", "p99_ms", "queue_depth", "log_backlog"):
        if name in worst.columns:
            table[name] = worst[name]
    if "log_dropped" in total.columns:
        table["log_dropped"] = total["log_dropped"]
    table = table.reset_index()
    table["x"] = pd.to_datetime(table["bucket"], utc=True).dt.strftime(_X_FORMAT)
    return table


# -- alerts ---------------------------------------------------------------------------------
def _alerts(alerts: Sequence[AlertRecord]) -> str:
    if not alerts:
        return _section("Alerts", _empty("No alerts fired in this window."), "alerts")
    rows = []
    for alert in alerts:
        state = (
            '<span class="badge badge-bad">firing</span>'
            if alert.state == "firing"
            else f'<span class="badge badge-good">{html.escape(alert.state)}</span>'
        )
        notified = (
            page.moment(alert.notified_at)
            if alert.notified_at is not None
            else ("failed: " + html.escape(alert.notify_error) if alert.notify_error else page.DASH)
        )
        action = page.DASH
        if alert.action:
            action = html.escape(
                ", ".join(f"{key}: {value}" for key, value in alert.action.items())
            )
        rows.append(
            "<tr>"
            f"<td>{state}</td>"
            f'<td><span class="badge badge-neutral">{html.escape(alert.severity)}</span></td>'
            f'<td class="name">{html.escape(alert.rule)}</td>'
            f"<td>{html.escape(alert.series)}</td>"
            f'<td class="num">{page.number(alert.value)}</td>'
            f'<td class="num">{page.number(alert.threshold)}</td>'
            f"<td>{page.moment(alert.fired_at)}</td>"
            f"<td>{page.moment(alert.resolved_at)}</td>"
            f"<td>{notified}</td>"
            f'<td class="text">{html.escape(alert.message)}</td>'
            f'<td class="text">{action}</td>'
            "</tr>"
        )
    table = (
        '<div class="table-wrap"><table><thead><tr><th>State</th><th>Severity</th>'
        "<th>Rule</th><th>Series</th><th>Value</th><th>Threshold</th><th>Fired</th>"
        "<th>Resolved</th><th>Notified</th><th>Message</th><th>Action</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )
    return _section("Alerts", table, "alerts")
