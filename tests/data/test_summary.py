"""Mergeable binned summaries: exact counts, reference binning, merging, JSON round trips."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from loopml.data.summary import FrameSummary, summarize, summarize_chunks
from loopml.errors import ValidationError


def _frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    numbers = rng.normal(10.0, 3.0, rows)
    numbers[rng.random(rows) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "number": numbers,
            "heavy": rng.lognormal(0.0, 2.0, rows),
            "count": rng.integers(0, 7, rows),
            "colour": rng.choice(["red", "green", "blue"], rows, p=[0.5, 0.3, 0.2]),
            "flag": rng.random(rows) < 0.3,
        }
    )


def _searched(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    present = values[~np.isnan(values)]
    return np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)


def test_numeric_summary_counts_every_value_in_its_bin() -> None:
    frame = _frame(50_000)
    summary = summarize(frame)
    for name in ("number", "heavy", "count"):
        column = summary[name]
        values = frame[name].to_numpy(np.float64)
        assert column.kind == "numeric"
        assert np.array_equal(column.counts, _searched(values, column.edges))
        present = values[~np.isnan(values)]
        assert column.rows == 50_000
        assert column.missing == int(np.isnan(values).sum())
        assert column.mean == pytest.approx(present.mean(), rel=1e-12)
        assert column.std == pytest.approx(present.std(), rel=1e-9)
        assert (column.min, column.max) == (present.min(), present.max())
        # The reference never under- or overflows its own edges.
        assert column.counts[0] == 0 and column.counts[-1] == 0


def test_edges_follow_the_reference_quantiles() -> None:
    frame = _frame(50_000)
    column = summarize(frame, bins=100)["number"]
    assert len(column.edges) <= 101 and np.all(np.diff(column.edges) > 0)
    interior = column.counts[1:-1] / column.present
    # Quantile bins: every bin holds about 1 % of the values (edges are rounded a little).
    assert interior.max() < 0.02 and interior.min() > 0.005


def test_few_distinct_values_get_one_bin_each_and_a_constant_one_bin() -> None:
    frame = pd.DataFrame({"count": [0, 1, 1, 2, 2, 2, 5] * 100, "constant": [3.5] * 700})
    summary = summarize(frame)
    assert list(summary["count"].counts) == [0, 100, 200, 300, 100, 0]
    assert summary["count"].edges[:4].tolist() == [0.0, 1.0, 2.0, 5.0]
    constant = summary["constant"]
    assert constant.edges.tolist() == [3.5, math.nextafter(3.5, math.inf)]
    assert constant.counts.tolist() == [0, 700, 0]
    assert constant.std == 0.0


def test_tricky_values_are_binned_exactly() -> None:
    rng = np.random.default_rng(3)
    offset = 1e6 + rng.random(20_000)  # a tiny spread far from zero
    heavy = rng.pareto(1.0, 20_000)  # most values in a sliver of the range
    ties = np.repeat(rng.normal(size=50), 400)  # values exactly on edges
    frame = pd.DataFrame({"offset": offset, "heavy": heavy, "ties": ties})
    reference = summarize(frame)
    current = pd.DataFrame(
        {
            "offset": offset + 0.3,
            "heavy": heavy * 3.0,
            "ties": np.concatenate([ties[:10_000], [np.inf, -np.inf, np.nan] * 3_333, [0.0]]),
        }
    )
    summary = summarize(current, like=reference)
    for name in frame.columns:
        assert len(reference[name].edges) > 20, name
        values = current[name].to_numpy(np.float64)
        assert np.array_equal(summary[name].counts, _searched(values, reference[name].edges))
    assert summary["ties"].missing == 3_333


def test_current_window_is_binned_on_the_reference() -> None:
    reference = summarize(pd.DataFrame({"x": np.arange(100.0)}))
    window = summarize(
        pd.DataFrame({"x": [-5.0, 0.0, 50.0, 99.0, 100.0, 1e9, None]}), like=reference
    )
    column = window["x"]
    assert np.array_equal(column.edges, reference["x"].edges)
    assert column.counts[0] == 1  # -5: below the reference's min
    assert column.counts[-1] == 2  # 100 and 1e9: above its max
    assert column.counts.sum() == 6 and column.missing == 1


def test_categories_keep_the_top_values_and_count_the_rest_as_other() -> None:
    frame = pd.DataFrame({"c": ["a"] * 50 + ["b"] * 30 + ["c"] * 15 + ["d"] * 5 + [None] * 3})
    column = summarize(frame, top=2)["c"]
    assert column.categories == ("a", "b")
    assert column.counts.tolist() == [50, 30, 20]
    assert column.missing == 3 and not column.complete
    window = summarize(pd.DataFrame({"c": ["b", "z", "z", "c", None]}), like=summarize(frame))
    assert window["c"].counts.tolist() == [0, 1, 1, 0, 2]  # a, b, c, d, other
    assert window["c"].unseen == {"z": 2}
    assert window["c"].missing == 1


def test_bools_categoricals_and_named_integer_columns_are_categorical() -> None:
    frame = pd.DataFrame(
        {
            "flag": [True, False, True, True],
            "code": [1, 2, 2, 2],
            "tier": pd.Categorical(["gold", "gold", "basic", None]),
        }
    )
    summary = summarize(frame, categorical=["code"])
    assert summary["flag"].kind == "categorical"
    assert dict(zip(summary["flag"].categories, summary["flag"].counts.tolist(), strict=False)) == {
        "true": 3,
        "false": 1,
    }
    assert summary["code"].categories == ("2", "1")
    assert summary["tier"].categories == ("gold", "basic") and summary["tier"].missing == 1
    # A window with the codes as text compares with them.
    window = summarize(pd.DataFrame({"code": ["2", "3"]}), ["code"], like=summary)
    assert window["code"].counts.tolist() == [1, 0, 1] and window["code"].unseen == {"3": 1}


def test_arrow_tables_and_frames_summarise_alike() -> None:
    frame = _frame(5_000)
    from_frame = summarize(frame)
    from_table = summarize(pa.Table.from_pandas(frame, preserve_index=False))
    for name in frame.columns:
        assert np.array_equal(from_frame[name].counts, from_table[name].counts), name
        assert from_frame[name].missing == from_table[name].missing


def test_windows_merge_into_the_summary_of_their_rows() -> None:
    reference = summarize(_frame(20_000))
    first, second = _frame(3_000, seed=1), _frame(5_000, seed=2)
    merged = summarize(first, like=reference).merge(summarize(second, like=reference))
    whole = summarize(pd.concat([first, second], ignore_index=True), like=reference)
    assert merged.rows == whole.rows == 8_000
    for name in reference:
        assert np.array_equal(merged[name].counts, whole[name].counts), name
        assert merged[name].missing == whole[name].missing
    assert merged["number"].mean == pytest.approx(whole["number"].mean, rel=1e-12)
    assert merged["number"].std == pytest.approx(whole["number"].std, rel=1e-12)
    assert merged["heavy"].max == whole["heavy"].max


def test_merging_differently_binned_summaries_is_refused() -> None:
    one, two = summarize(_frame(1_000, seed=1)), summarize(_frame(1_000, seed=2))
    with pytest.raises(ValidationError, match="like="):
        one.merge(two)


def test_chunks_summarise_like_the_whole_table() -> None:
    frame = _frame(30_000)
    reference = summarize(frame)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    chunked = summarize_chunks(table.to_batches(max_chunksize=4_000), like=reference)
    whole = summarize(frame, like=reference)
    for name in frame.columns:
        assert np.array_equal(chunked[name].counts, whole[name].counts), name
    # Without like=, the edges come from the first chunks; categories are still exact.
    fresh = summarize_chunks(frame.iloc[i : i + 7_000] for i in range(0, 30_000, 7_000))
    assert fresh.rows == 30_000
    assert fresh["colour"].counts.tolist() == reference["colour"].counts.tolist()
    assert fresh["number"].counts.sum() + fresh["number"].missing == 30_000
    with pytest.raises(ValidationError, match="no chunks"):
        summarize_chunks([])


def test_summary_round_trips_through_compact_json() -> None:
    summary = summarize(_frame(100_000))
    text = json.dumps(summary.to_dict())
    assert len(text) / len(summary) < 6_000  # a few KB per column
    restored = FrameSummary.from_dict(json.loads(text))
    assert list(restored) == list(summary) and restored.rows == summary.rows
    for name in summary:
        a, b = summary[name], restored[name]
        assert np.array_equal(a.counts, b.counts) and np.array_equal(a.edges, b.edges)
        assert (a.categories, a.mean, a.std, a.min, a.max) == (
            b.categories,
            b.mean,
            b.std,
            b.min,
            b.max,
        )


def test_malformed_summary_dicts_are_refused() -> None:
    data = summarize(_frame(100)).to_dict()
    data["columns"]["number"]["counts"] = [1, 2]
    with pytest.raises(ValidationError, match="'number' is malformed"):
        FrameSummary.from_dict(data)
    with pytest.raises(ValidationError, match="newer"):
        FrameSummary.from_dict({"format": 99, "columns": {}})


def test_text_in_a_numeric_column_is_parsed_or_refused() -> None:
    reference = summarize(pd.DataFrame({"x": [1.0, 2.0, 3.0]}))
    parsed = summarize(pd.DataFrame({"x": ["1.5", " 2", None]}), like=reference)
    assert parsed["x"].counts.sum() == 2 and parsed["x"].missing == 1
    with pytest.raises(ValidationError, match="'x' is numeric in the reference"):
        summarize(pd.DataFrame({"x": ["1.5", "abc"]}), like=reference)


def test_missing_and_unsupported_columns() -> None:
    reference = summarize(pd.DataFrame({"x": [1.0, 2.0], "y": ["a", "b"]}))
    # Without columns=, a column the window lacks is left out for the caller to report.
    assert list(summarize(pd.DataFrame({"x": [1.0]}), like=reference)) == ["x"]
    with pytest.raises(ValidationError, match=r"\['y'\] are not in the data"):
        summarize(pd.DataFrame({"x": [1.0]}), ["x", "y"], like=reference)
    frame = pd.DataFrame({"when": pd.to_datetime(["2026-01-01", "2026-01-02"]), "x": [1, 2]})
    assert list(summarize(frame)) == ["x"]  # datetimes only when named
    assert summarize(frame, ["when"])["when"].max == pd.Timestamp("2026-01-02").timestamp()
    with pytest.raises(ValidationError, match="bins"):
        summarize(frame, bins=0)
