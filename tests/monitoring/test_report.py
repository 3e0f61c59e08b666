"""The monitoring report: a small, offline HTML page whose charts draw in headless Chromium,
built from a real drift report of 25 features over 1M rows and a day of monitored series."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopml.errors import ValidationError
from loopml.monitoring.report import render_report, write_report
from loopml.monitoring.series import COLUMNS
from loopml.store.repositories.monitoring import AlertRecord
from tests.browser import chromium_page

START = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)
WINDOW = (START, START + dt.timedelta(days=1))
FEATURES = [f"feature_{index:02d}" for index in range(25)]
DRIFTING = {"feature_00", "feature_01", "feature_02"}
HEALTH_MINUTES = 5


def _row(
    version: int | None,
    start: dt.datetime,
    minutes: float,
    kind: str,
    name: str,
    value: float,
    test: str = "",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "model": "churn",
        "version": version,
        "start": start,
        "end": start + dt.timedelta(minutes=minutes),
        "kind": kind,
        "name": name,
        "test": test,
        "value": value,
        "p_value": extra.get("p_value"),
        "threshold": extra.get("threshold"),
        "flagged": extra.get("flagged"),
        "detail": extra.get("detail", {}),
    }


def sample_series(seed: int = 0) -> pd.DataFrame:
    """A day of points: hourly drift (3 features drift from 12:00) and performance, and
    5-minute health windows from two instances serving versions 1 and 2."""
    rng = np.random.default_rng(seed)
    rows = []
    for hour in range(24):
        start = START + dt.timedelta(hours=hour)
        drifted = hour >= 12
        for feature in FEATURES:
            for test, threshold in (("ks", 0.1), ("psi", 0.2), ("jensenshannon", 0.1)):
                flagged = drifted and feature in DRIFTING and (test != "psi" or hour >= 18)
                value = threshold * (3 if flagged else rng.uniform(0.05, 0.5))
                rows.append(
                    _row(
                        1,
                        start,
                        60,
                        "drift",
                        feature,
                        value,
                        test,
                        threshold=threshold,
                        flagged=flagged,
                    )
                )
        share = 3 / 25 if drifted else 0.0
        rows.append(_row(1, start, 60, "drift", "share", share, threshold=0.3, flagged=False))
        coverage = min(1.0, 0.2 + hour / 20)
        counts = {"n": 1000, "labelled": int(1000 * coverage), "complete": coverage >= 0.5}
        rows.append(_row(1, start, 60, "performance", "coverage", coverage, detail=counts))
        for metric, level in (("roc_auc", 0.85), ("accuracy", 0.8), ("log_loss", 0.4)):
            value = level - (0.1 if drifted and metric != "log_loss" else 0) + rng.normal(0, 0.01)
            detail = {"low": value - 0.03, "high": value + 0.03, "coverage": coverage, **counts}
            rows.append(_row(1, start, 60, "performance", metric, value, detail=detail))
    for instance in ("host-a:101", "host-b:202"):
        offset = 0 if instance.endswith("101") else 2  # the instances' windows do not line up
        for index in range(24 * 60 // HEALTH_MINUTES):
            start = START + dt.timedelta(minutes=index * HEALTH_MINUTES + offset)
            per_version = {1: int(rng.integers(800, 1200)), 2: int(rng.integers(80, 120))}
            for version, requests in [*per_version.items(), (0, sum(per_version.values()))]:
                values = {
                    "requests": requests,
                    "throughput_rps": requests / (HEALTH_MINUTES * 60),
                    "error_rate": 0.002,
                    "client_error_rate": 0.01,
                    "p50_ms": 4.0,
                    "p95_ms": 9.0,
                    "p99_ms": 15.0 + rng.uniform(0, 5),
                    "queue_depth": float(rng.integers(0, 4)),
                }
                if version == 0:
                    values.update(log_dropped=0.0, log_backlog=float(rng.integers(0, 50)))
                for name, value in values.items():
                    rows.append(
                        _row(
                            version or None,
                            start,
                            HEALTH_MINUTES,
                            "health",
                            name,
                            value,
                            instance,
                            detail={"requests": requests},
                        )
                    )
    frame = pd.DataFrame(rows, columns=COLUMNS)
    for column in ("start", "end"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def sample_alerts() -> list[AlertRecord]:
    hour = 3_600_000
    at = int(START.timestamp() * 1000)
    return [
        AlertRecord(
            2,
            "feature-drift",
            "churn",
            "drift.share",
            "warning",
            "firing",
            0.12,
            0.1,
            "drift.share > 0.1 for 2 windows: 0.12 <b>&",
            at + 14 * hour,
            at + 14 * hour,
            None,
            at + 14 * hour + 500,
            1,
            None,
            {"kind": "command", "exit": 0},
        ),
        AlertRecord(
            1,
            "latency",
            "churn",
            "health.p99_ms",
            "critical",
            "resolved",
            240.0,
            200.0,
            "health.p99_ms > 200: 240",
            at + 3 * hour,
            at + 3 * hour,
            at + 4 * hour,
            None,
            3,
            "webhook: connection refused",
            None,
        ),
    ]


def figures_of(page: str) -> dict[str, dict[str, Any]]:
    found = re.search(r'<script type="application/json" id="loopml-figures">(.*?)</script>', page)
    assert found is not None
    return {figure["id"]: figure for figure in json.loads(found.group(1))}


def test_series_sections_chart_what_the_points_say() -> None:
    series = sample_series()
    page = render_report(
        title="churn <prod>",
        model="churn",
        version=1,
        window=WINDOW,
        drift=None,
        series=series,
        alerts=sample_alerts(),
    )
    figures = figures_of(page)
    assert "<title>churn &lt;prod&gt;</title>" in page and "<b>&" not in page
    # Drift share: one point per hour, as recorded.
    (share,) = figures["chart-drift-share"]["data"]
    assert share["y"] == pytest.approx([0.0] * 12 + [0.12] * 12)
    # Per feature: the share of a feature's three tests that flagged, per window.
    (heatmap,) = figures["chart-drift-features"]["data"]
    assert len(heatmap["y"]) == 25 and len(heatmap["x"]) == 24
    z = np.array(heatmap["z"], dtype=float)
    assert np.all(z[3:] == 0) and np.all(z[:3, :12] == 0)
    assert z[:3, 12:18] == pytest.approx(2 / 3, abs=1e-4) and np.all(z[:3, 18:] == 1)
    # Performance: the interval band around each metric, and the coverage line.
    performance = [figures[key] for key in figures if key.startswith("chart-performance-")]
    assert len(performance) == 4  # roc_auc, accuracy, log_loss, then coverage
    high, low, _auc = performance[0]["data"]
    assert low["fill"] == "tonexty" and np.allclose(np.subtract(high["y"], low["y"]), 0.06, 1e-3)
    coverage = performance[3]["data"][0]
    assert coverage["marker"]["symbol"][:2] == ["circle-open"] * 2
    assert coverage["marker"]["symbol"][-1] == "circle"
    # Health: two instances' unaligned 5-minute windows on one grid, requests summed.
    health = series[series["kind"] == "health"]
    throughput = figures["chart-health-1"]["data"]
    everything = next(t for t in throughput if t["name"] == "throughput_rps · all versions")
    requests = health[(health["name"] == "requests") & health["version"].isna()]["value"].sum()
    # Each bucket divides its requests by the time one instance covers: the mean over the
    # day is the day's requests per second.
    assert np.nanmean(everything["y"]) == pytest.approx(requests / 86_400, rel=0.02)
    latency = figures["chart-health-0"]["data"]
    p99 = next(t for t in latency if t["name"] == "p99_ms · version 1")
    assert min(p99["y"]) >= 15 and max(p99["y"]) <= 20
    errors = next(t for t in figures["chart-health-2"]["data"] if t["name"].startswith("error"))
    assert errors["y"] == pytest.approx([0.002] * len(errors["y"]))
    # Alerts: escaped, with their notification outcome.
    assert "drift.share &gt; 0.1 for 2 windows: 0.12 &lt;b&gt;&amp;" in page
    assert "failed: webhook: connection refused" in page and "firing" in page


def test_empty_series_and_no_drift_say_what_is_missing(tmp_path: Path) -> None:
    empty = pd.DataFrame(columns=COLUMNS)
    page = render_report(
        title="t", model="churn", version=None, window=WINDOW, drift=None, series=empty, alerts=[]
    )
    assert figures_of(page) == {}
    for message in (
        "No drift report",
        "No drift points",
        "No performance points",
        "No health points",
        "No alerts",
    ):
        assert message in page
    path = write_report(tmp_path / "deep" / "report.html", page)
    assert path.read_text(encoding="utf-8") == page


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValidationError, match="lacks column"):
        render_report(
            title="t",
            model="m",
            version=None,
            window=WINDOW,
            drift=None,
            series=pd.DataFrame({"value": [1.0]}),
            alerts=[],
        )
    with pytest.raises(ValidationError, match="must end after"):
        render_report(
            title="t",
            model="m",
            version=None,
            window=(WINDOW[1], WINDOW[0]),
            drift=None,
            series=pd.DataFrame(columns=COLUMNS),
            alerts=[],
        )


def drift_frame(rows: int, seed: int, shifted: bool = False) -> pd.DataFrame:
    """20 numeric and 5 categorical features; shifted: 3 means move, a category mix
    changes, a new category appears and a feature loses 10% of its values."""
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for index, name in enumerate(FEATURES[:20]):
        values = rng.normal(0, 1, rows)
        if shifted and index < 3:
            values += 0.5 * (index + 1)
        if shifted and index == 5:
            values[rng.random(rows) < 0.1] = np.nan
        columns[name] = values
    categories = ["north", "south", "east", "west", "moon"]
    for index, name in enumerate(FEATURES[20:]):
        shares = [0.5, 0.3, 0.15, 0.05, 0.0]
        if shifted and index == 0:
            shares = [0.2, 0.3, 0.15, 0.35, 0.0]
        if shifted and index == 1:  # a category the reference never saw
            shares = [0.47, 0.3, 0.15, 0.05, 0.03]
        codes = rng.choice(len(categories), rows, p=shares)
        columns[name] = pd.Categorical.from_codes(codes, categories)
    return pd.DataFrame(columns)


@pytest.fixture(scope="module")
def drift_report() -> Any:
    from loopml.monitoring.drift import drift

    rows = 1_000_000
    return drift(drift_frame(rows, 0), drift_frame(rows, 1, shifted=True))


@pytest.fixture(scope="module")
def full_page(drift_report: Any) -> str:
    return render_report(
        title="churn monitoring",
        model="churn",
        version=1,
        window=WINDOW,
        drift=drift_report,
        series=sample_series(),
        alerts=sample_alerts(),
    )


def test_drift_section_lists_every_test_and_draws_each_feature(
    drift_report: Any, full_page: str
) -> None:
    assert drift_report.reference.rows == drift_report.current.rows == 1_000_000
    drifted = set(drift_report.drifted_features)
    assert drifted == {
        "feature_00",
        "feature_01",
        "feature_02",
        "feature_05",
        "feature_20",
        "feature_21",
    }
    figures = figures_of(full_page)
    distributions = [figures[key] for key in figures if key.startswith("chart-distribution-")]
    assert len(distributions) == 25
    # Drifted features come first, and their cards say so.
    first = re.findall(
        r'<article class="card"><header class="card-head"><h3 title="([^"]+)"', full_page
    )[: len(drifted)]
    assert set(first) == drifted
    # The table has one row per test, with statistic and threshold as the report has them.
    table = drift_report.to_frame()
    assert full_page.count('<tr><td class="name"') == len(table)
    # Reference-vs-current shares come from the summaries: the mix change of feature_20,
    # the new category of feature_21.
    order = sorted(drifted, key=FEATURES.index)
    mix, new = (
        {
            trace["name"]: trace
            for trace in figures[f"chart-distribution-{order.index(name)}"]["data"]
        }
        for name in ("feature_20", "feature_21")
    )
    north = list(drift_report.reference["feature_20"].categories).index("north")
    assert mix["reference"]["y"][north] == pytest.approx(0.5, abs=0.002)
    assert mix["current"]["y"][north] == pytest.approx(0.2, abs=0.002)
    moon = new["current"]["x"].index("moon (new)")
    assert new["current"]["y"][moon] == pytest.approx(0.03, abs=0.002)
    assert new["reference"]["y"][moon] == 0
    assert "new: moon" in full_page


def test_report_is_small_and_every_chart_draws_offline_in_chromium(
    full_page: str, tmp_path: Path
) -> None:
    size = len(full_page.encode("utf-8"))
    assert size < 5 * 1024 * 1024, f"{size / 1e6:.2f} MB"
    # Nothing to fetch: every src and href is inline data or an anchor.
    assert re.findall(r'(?:src|href)="(?!data:|#)[^"]*"', full_page) == []
    figures = figures_of(full_page)
    assert len(figures) == 25 + 2 + 4 + 4  # distributions, drift over time, performance, health
    path = write_report(tmp_path / "report.html", full_page)
    with chromium_page() as session:
        session.open(path)
        session.page.wait_for_function("document.body.dataset.charts !== 'pending'", timeout=60_000)
        assert session.page.evaluate("document.body.dataset.charts") == "drawn", session.errors()
        drawn = session.page.evaluate(
            """() => Array.from(document.querySelectorAll('.js-plotly-plot'))
                .filter((plot) => plot._fullLayout && plot.querySelector('.main-svg'))
                .map((plot) => [plot.id,
                    plot.querySelectorAll('.point path, .hm image, .scatterlayer path.js-line')
                        .length])"""
        )
        session.page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        assert sorted(element for element, _ in drawn) == sorted(figures)
        assert all(marks > 0 for _, marks in drawn), drawn  # bars, cells or lines in each
        assert session.errors() == []
        assert session.remote_requests() == []
