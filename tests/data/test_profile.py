"""Dataset profiles: statistics against pandas/numpy, chunked merging, and the offline report."""

from __future__ import annotations

import json
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from loopml.data.profile import QUANTILES, DatasetProfile, profile
from loopml.errors import NotFoundError, ValidationError
from tests.browser import chromium_page

SENTINEL = "zz-only-in-one-row-7f3a9c"


def mixed_frame(rows: int = 1_000, seed: int = 7) -> pd.DataFrame:
    """Numbers, categories, datetimes and booleans, with missing values in most columns."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 12, rows).round(1),
            "income": rng.lognormal(10, 0.6, rows),
            "visits": rng.poisson(3, rows),
            "signup": pd.Timestamp("2024-01-01")
            + pd.to_timedelta(rng.integers(0, 365 * 86_400, rows), unit="s"),
            "plan": rng.choice(
                ["free", "basic", "pro", "enterprise"], rows, p=[0.5, 0.3, 0.15, 0.05]
            ),
            "churned": rng.random(rows) < 0.2,
        }
    )
    frame.loc[rng.random(rows) < 0.1, "income"] = np.nan
    frame.loc[rng.random(rows) < 0.05, "signup"] = pd.NaT
    frame["plan"] = frame["plan"].astype(object)
    frame.loc[rng.random(rows) < 0.03, "plan"] = None
    return frame


def batches(frame: pd.DataFrame, size: int) -> Iterator[pa.RecordBatch]:
    """The frame as a one-shot stream of record batches, like a reader yields them."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    yield from table.to_batches(max_chunksize=size)


# -- statistics ----------------------------------------------------------------------------


def test_numeric_stats_match_pandas_and_numpy() -> None:
    frame = mixed_frame()
    result = profile(frame, bins=20)
    for name in ("age", "income", "visits"):
        column = result.column(name)
        series = frame[name]
        values = series.dropna().to_numpy(dtype=float)
        assert column.type == "numeric"
        assert column.count == series.count()
        assert column.missing == series.isna().sum()
        assert column.distinct == series.nunique()
        assert column.mean == pytest.approx(series.mean(), rel=1e-12)
        assert column.std == pytest.approx(series.std(), rel=1e-12)
        assert column.min == series.min()
        assert column.max == series.max()
        for q in QUANTILES:
            assert column.quantiles[q] == pytest.approx(np.quantile(values, q), rel=1e-12)
            assert column.quantiles[q] == pytest.approx(series.quantile(q), rel=1e-12)
        assert column.approximate == []
    income = result.column("income")
    assert income.histogram is not None
    expected, edges = np.histogram(frame["income"].dropna(), bins=20)
    assert income.histogram.counts == expected.tolist()
    assert income.histogram.edges == pytest.approx(edges.tolist())


def test_integer_column_in_a_short_range_gets_one_bin_per_value() -> None:
    result = profile(pd.DataFrame({"stars": [1, 2, 2, 3, 3, 3, 5]}), bins=30)
    histogram = result.column("stars").histogram
    assert histogram is not None
    assert histogram.edges == [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]
    assert histogram.counts == [1, 2, 3, 0, 1]


def test_missing_values_are_counted_in_every_kind_of_column() -> None:
    frame = pd.DataFrame(
        {
            "number": [1.0, np.nan, 3.0, None, 5.0],
            "nullable_int": pd.array([1, None, 3, None, None], dtype="Int64"),
            "text": ["a", None, "b", "a", None],
            "moment": pd.DatetimeIndex(["2024-01-01", "NaT", "2024-01-03", "2024-01-04", "NaT"]),
            "flag": pd.array([True, None, False, True, True], dtype="boolean"),
        }
    )
    result = profile(frame)
    expected_missing = {"number": 2, "nullable_int": 3, "text": 2, "moment": 2, "flag": 1}
    for name, missing in expected_missing.items():
        column = result.column(name)
        assert column.missing == missing, name
        assert column.count == 5 - missing, name
        assert column.missing_share == pytest.approx(missing / 5), name


def test_top_categories_are_most_frequent_first_and_skip_values_seen_once() -> None:
    values = ["b"] * 5 + ["a"] * 5 + ["c"] * 3 + ["d"] * 2 + ["once"]
    result = profile(pd.DataFrame({"letter": values}), top=3)
    column = result.column("letter")
    assert column.type == "categorical"
    assert column.top == [("a", 5), ("b", 5), ("c", 3)]  # ties broken by value
    assert column.distinct == 5
    everything = profile(pd.DataFrame({"letter": values}), top=10).column("letter")
    assert ("once", 1) not in everything.top
    assert [value for value, _ in everything.top] == ["a", "b", "c", "d"]


def test_bool_column_reports_share_of_true_and_both_counts() -> None:
    column = profile(pd.DataFrame({"flag": [True, False, True, True]})).column("flag")
    assert column.type == "bool"
    assert column.mean == pytest.approx(0.75)
    assert column.top == [(True, 3), (False, 1)]  # both values are known up front
    assert column.distinct == 2


def test_string_column_with_mostly_unique_values_is_text() -> None:
    frame = pd.DataFrame(
        {
            "comment": [f"comment number {i}" for i in range(200)],
            "size": ["S", "M", "L", "XL"] * 50,
            "declared": pd.Categorical([f"level {i}" for i in range(200)]),
        }
    )
    result = profile(frame)
    assert result.column("comment").type == "text"
    assert result.column("comment").top == []
    assert result.column("size").type == "categorical"
    assert result.column("declared").type == "categorical"  # a pandas category stays one


def test_datetime_columns_give_iso_statistics_and_a_histogram() -> None:
    moments = pd.DatetimeIndex(["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-05", "NaT"])
    frame = pd.DataFrame(
        {
            "naive": moments,
            "aware": moments.tz_localize("UTC").tz_convert("Europe/Paris"),
            "day": pa.array([19723, 19724, 19725, 19727, None], pa.date32()).to_pandas(
                types_mapper=pd.ArrowDtype
            ),
            "nanoseconds": moments.as_unit("ns") + pd.Timedelta(1, "ns"),
        }
    )
    result = profile(frame, bins=4)
    naive = result.column("naive")
    assert naive.type == "datetime"
    assert (naive.count, naive.missing, naive.distinct) == (4, 1, 4)
    assert naive.min == "2024-01-01T00:00:00"
    assert naive.max == "2024-01-05T00:00:00"
    assert naive.mean == "2024-01-02T18:00:00"
    assert naive.quantiles[0.5] == "2024-01-02T12:00:00"
    seconds = (moments.dropna() - pd.Timestamp("1970-01-01")).total_seconds()
    assert naive.std == pytest.approx(float(np.std(seconds, ddof=1)))
    assert naive.histogram is not None
    assert naive.histogram.edges[0] == "2024-01-01T00:00:00"
    assert naive.histogram.edges[-1] == "2024-01-05T00:00:00"
    assert naive.histogram.counts == [1, 1, 1, 1]  # one-day bins; the last includes its end
    aware = result.column("aware")
    assert aware.min == "2024-01-01T01:00:00+01:00"
    day = result.column("day")
    assert day.type == "datetime"
    assert (day.min, day.max) == ("2024-01-01T00:00:00", "2024-01-05T00:00:00")
    precise = result.column("nanoseconds")  # epoch nanoseconds exceed float64's 2**53
    assert (precise.min, precise.max) == ("2024-01-01T00:00:00", "2024-01-05T00:00:00")


def test_infinite_numbers_are_counted_apart_from_the_moments() -> None:
    column = profile(pd.DataFrame({"x": [1.0, 2.0, np.inf, -np.inf, np.nan]})).column("x")
    assert (column.count, column.missing, column.infinite) == (4, 1, 2)
    assert (column.mean, column.min, column.max) == (1.5, 1.0, 2.0)
    json.dumps(profile(pd.DataFrame({"x": [np.inf]})).to_dict(), allow_nan=False)
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, np.inf], "y": [2.0, 4.0, 6.0, 1.0]})
    assert profile(frame).correlations.matrix[0][1] == pytest.approx(1.0)  # inf left out


def test_correlations_are_pearson_over_numeric_columns() -> None:
    frame = mixed_frame()
    frame["double_age"] = frame["age"] * 2 + 1
    result = profile(frame)
    numeric = ["age", "income", "visits", "double_age"]
    assert result.correlations.columns == numeric
    assert result.correlations.rows == len(frame)
    expected = frame[numeric].corr()
    pd.testing.assert_frame_equal(result.correlations.to_frame(), expected, rtol=1e-9)


def test_correlations_use_a_sample_when_asked() -> None:
    frame = mixed_frame(rows=5_000)
    frame["double_age"] = frame["age"] * 2 + 1
    sampled = profile(frame, sample_for_correlation=1_000).correlations
    assert sampled.rows == 1_000
    assert sampled.to_frame().loc["age", "double_age"] == pytest.approx(1.0)
    assert profile(frame, sample_for_correlation=0).correlations.columns == []


# -- chunked input ---------------------------------------------------------------------------


def test_chunked_profile_of_few_distinct_values_equals_the_in_memory_one() -> None:
    frame = mixed_frame(rows=300_000)  # several chunks of merged batches
    frame["income"] = frame["income"].round(-1)
    frame["signup"] = frame["signup"].dt.floor("h")  # few distinct values: lossless sketches
    exact = profile(frame)
    chunked = profile(batches(frame, size=7_000))
    assert chunked.rows == exact.rows
    for whole, merged in zip(exact.columns, chunked.columns, strict=True):
        assert merged.approximate == []
        assert merged.count == whole.count and merged.missing == whole.missing
        assert merged.distinct == whole.distinct
        assert merged.top == whole.top
        for field in ("mean", "std", "min", "max"):
            if isinstance(getattr(whole, field), float):
                assert getattr(merged, field) == pytest.approx(getattr(whole, field), rel=1e-9)
            else:
                assert getattr(merged, field) == getattr(whole, field)
        if merged.type == "numeric":
            assert merged.quantiles == pytest.approx(whole.quantiles, rel=1e-12)
        else:
            assert merged.quantiles == whole.quantiles
        assert merged.histogram == whole.histogram


def test_chunked_profile_of_large_data_is_exact_for_moments_and_close_for_quantiles() -> None:
    rows = 400_000
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "normal": rng.normal(0, 1, rows),
            "skewed": rng.lognormal(0, 2, rows),
            "seen": pd.Timestamp("2020-01-01")
            + pd.to_timedelta(rng.integers(0, 10**9, rows), unit="s"),
            "group": rng.choice([f"g{i}" for i in range(300)], rows),
        }
    )
    exact = profile(frame, bins=20)
    chunked = profile(batches(frame, size=30_000), bins=20)
    assert chunked.rows == rows
    for name in ("normal", "skewed"):
        whole, merged = exact.column(name), chunked.column(name)
        assert {"quantiles", "histogram", "distinct"} <= set(merged.approximate)
        assert merged.count == whole.count == rows
        for field in ("mean", "std", "min", "max"):
            assert getattr(merged, field) == pytest.approx(getattr(whole, field), rel=1e-9)
        ordered = np.sort(frame[name].to_numpy())
        for q in QUANTILES:  # the estimate sits within 0.5 % of rows of the true rank
            rank = np.searchsorted(ordered, merged.quantiles[q]) / rows
            assert rank == pytest.approx(q, abs=0.005)
        assert merged.histogram is not None and whole.histogram is not None
        assert sum(merged.histogram.counts) == rows
        difference = np.abs(np.subtract(merged.histogram.counts, whole.histogram.counts))
        assert difference.max() <= 0.005 * rows
        assert merged.distinct == pytest.approx(rows, rel=0.03)
    seen = chunked.column("seen")
    assert seen.mean == exact.column("seen").mean
    assert (seen.min, seen.max) == (exact.column("seen").min, exact.column("seen").max)
    assert chunked.column("group").top == exact.column("group").top
    assert chunked.column("group").distinct == 300


def test_chunks_may_be_tables_or_data_frames() -> None:
    frame = mixed_frame(rows=400)
    pieces = [frame.iloc[:150], pa.Table.from_pandas(frame.iloc[150:], preserve_index=False)]
    result = profile(iter(pieces))
    assert result.rows == 400
    assert result.column("age").mean == pytest.approx(frame["age"].mean(), rel=1e-12)


def test_chunks_with_different_columns_are_refused() -> None:
    first = pa.RecordBatch.from_pydict({"a": [1, 2]})
    second = pa.RecordBatch.from_pydict({"b": [1, 2]})
    with pytest.raises(ValidationError, match="same columns"):
        profile(iter([first, second]))


def test_bad_arguments_are_refused_with_the_parameter_name() -> None:
    frame = pd.DataFrame({"a": [1]})
    with pytest.raises(ValidationError, match="'bins' parameter"):
        profile(frame, bins=0)
    with pytest.raises(ValidationError, match="'top' parameter"):
        profile(frame, top=-1)
    with pytest.raises(ValidationError, match="DataFrame"):
        profile(42)
    with pytest.raises(NotFoundError, match="'b'"):
        profile(frame).column("b")


# -- edge cases ------------------------------------------------------------------------------


def test_empty_frame_and_empty_stream_do_not_crash() -> None:
    frame = pd.DataFrame({"x": pd.Series([], dtype=float), "s": pd.Series([], dtype=object)})
    result = profile(frame)
    assert result.rows == 0
    assert [column.count for column in result.columns] == [0, 0]
    assert result.column("x").mean is None and result.column("x").histogram is None
    assert "<html" in result.to_html()
    json.dumps(result.to_dict(), allow_nan=False)
    nothing = profile(iter([]))
    assert (nothing.rows, nothing.columns) == (0, [])
    assert "<html" in nothing.to_html()


def test_all_null_columns_are_all_missing() -> None:
    frame = pd.DataFrame({"x": [np.nan] * 4, "s": [None] * 4, "ok": [1, 2, 3, 4]})
    result = profile(frame)
    for name in ("x", "s"):
        column = result.column(name)
        assert (column.count, column.missing, column.missing_share) == (0, 4, 1.0)
        assert column.mean is None and column.top == [] and column.histogram is None
    assert result.correlations.columns == []  # one usable numeric column only
    assert "every row is missing" in result.to_html()


def test_mixed_object_column_is_profiled_as_strings() -> None:
    frame = pd.DataFrame({"mixed": [1, "a", 2.5, "a", None]})
    column = profile(frame).column("mixed")
    assert (column.count, column.missing) == (4, 1)
    assert column.top == [("a", 2)]


def test_to_dict_round_trips_through_json() -> None:
    original = profile(mixed_frame(rows=300))
    stored = json.loads(json.dumps(original.to_dict(), allow_nan=False))
    assert DatasetProfile.from_dict(stored) == original


def test_from_dict_refuses_an_unknown_format() -> None:
    stored = profile(pd.DataFrame({"a": [1, 2]})).to_dict()
    stored["format"] = 99
    with pytest.raises(ValidationError, match="format"):
        DatasetProfile.from_dict(stored)


def test_to_frame_has_one_row_per_column() -> None:
    frame = mixed_frame(rows=200)
    table = profile(frame).to_frame()
    assert list(table.index) == list(frame.columns)
    assert table.loc["visits", "count"] == 200
    assert table.loc["age", "50%"] == pytest.approx(frame["age"].median())


# -- the HTML report -------------------------------------------------------------------------


class _Attributes(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str, str]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "data", "poster", "action") and value:
                self.links.append((tag, name, value))


def test_html_fetches_nothing_from_the_network() -> None:
    page = profile(mixed_frame()).to_html()
    parser = _Attributes()
    parser.feed(page)
    remote = [
        link
        for link in parser.links
        if link[2].strip().lower().startswith(("http:", "https:", "//"))
    ]
    assert remote == []
    assert all(value.startswith(("#", "data:")) for _, _, value in parser.links)
    assert parser.tags.count("script") == 4  # figures, config, Plotly itself, drawing
    assert page.count("plotly.js v") == 1  # Plotly's banner: the library is inlined once
    assert "mathjax" not in page.lower().split("plotly.js v")[0]


def test_html_holds_no_raw_rows() -> None:
    frame = mixed_frame()
    frame.loc[500, "plan"] = SENTINEL
    frame["note"] = [f"row note {i}" for i in range(len(frame))]
    frame.loc[17, "age"] = 41.23456789  # inside the range, so neither min nor max
    page = profile(frame).to_html()
    assert SENTINEL not in page
    assert "row note 3" not in page
    assert "41.23456789" not in page


def test_column_names_cannot_inject_markup() -> None:
    name = "</script><script>alert(1)</script>"
    page = profile(pd.DataFrame({name: [1.0, 2.0, 3.0]})).to_html()
    assert name not in page
    assert "&lt;/script&gt;" in page


def test_save_html_writes_the_page(tmp_path: Path) -> None:
    result = profile(mixed_frame(rows=100))
    path = result.save_html(tmp_path / "profile.html", title="Churn data")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "<title>Churn data</title>" in text


# The charts the mixed frame's report draws: histograms for age, income, visits and signup,
# bars for plan and churned, and the correlation heatmap.
EXPECTED_CHARTS = 7


def test_report_draws_every_chart_in_headless_chromium_offline(tmp_path: Path) -> None:
    path = profile(mixed_frame()).save_html(tmp_path / "profile.html")
    with chromium_page() as session:
        session.open(path)
        session.page.wait_for_function("document.body.dataset.charts !== 'pending'", timeout=30_000)
        assert session.page.evaluate("document.body.dataset.charts") == "drawn", session.errors()
        drawn = session.page.evaluate(
            """() => Array.from(document.querySelectorAll('.js-plotly-plot'))
                .filter((plot) => plot.querySelector('.main-svg'))
                .map((plot) => plot.querySelectorAll('.point path, .hm image').length)"""
        )
        session.page.screenshot(path=str(tmp_path / "profile.png"), full_page=True)
        assert len(drawn) == EXPECTED_CHARTS
        assert all(marks > 0 for marks in drawn), drawn  # every chart has bars or cells
        assert session.errors() == []
        assert session.remote_requests() == []
        assert all(url.startswith("file:") for url in session.requests), session.requests
