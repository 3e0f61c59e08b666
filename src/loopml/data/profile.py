"""Dataset profiles: per-column statistics in one pass over chunks, and an offline HTML report.

``profile(data)`` takes a DataFrame, an Arrow Table, or any iterable of Arrow record batches
(Tables and DataFrames work as chunks too), so a dataset larger than memory is profiled
chunk by chunk. Each chunk becomes a small summary, and the summaries are merged:

- count, missing, mean, std, min and max are exact (means and variances are merged with
  Chan's parallel formula, so no precision is lost to raw sums of squares);
- quantiles and histograms come from a sorted list of (value, weight) centroids. While a
  column has at most 50,000 distinct values the list is lossless and both are exact. Past
  that it is compressed, t-digest style, to about 2,000 centroids that are finer in the
  tails: quantiles then have a rank error well under 0.5 % of the rows, and each histogram
  bin's count is off by at most the weight of the centroids that straddle its edges;
- distinct counts are exact while the centroid list or the category tally is lossless,
  then a K-minimum-values sketch of 16,384 hashes takes over (about 1 % relative error);
- top categories are exact while a column has at most 100,000 distinct strings. Past that
  the rarest are dropped from the tally, and a dropped value that comes back is undercounted;
- correlations are Pearson over the numeric columns (the first 50) on a uniform sample of
  ``sample_for_correlation`` rows, drawn with seeded random keys so profiles repeat.

A DataFrame or Table in memory is profiled as one chunk without compression, so everything
is exact except correlations past the sample size. ``ColumnProfile.approximate`` names the
fields of a column that are estimates.

Histograms have ``bins`` equal bins from min to max, except integer columns spanning fewer
than ``bins`` values, which get one bin per integer.

Privacy: profiles and reports carry summaries only, never rows. Top categories list only
values seen at least twice, because a value seen once is a row, not a summary (bool columns
list both values: they are known up front).

This module is well past the house's ~400 lines. Its two halves, the mergeable summaries
(``_Numbers``, ``_Categories``, ``_Distinct``) and the HTML report, share nothing but the
public dataclasses, so each can move to its own module (``_summaries.py``,
``_profile_html.py``) unchanged.
"""

from __future__ import annotations

import functools
import html
import itertools
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from loopml.errors import NotFoundError, ValidationError

__all__ = ["QUANTILES", "ColumnProfile", "Correlations", "DatasetProfile", "Histogram", "profile"]

ColumnType = Literal["numeric", "categorical", "datetime", "bool", "text"]
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
FORMAT_VERSION = 1

_Floats = npt.NDArray[np.float64]
_Ints = npt.NDArray[np.int64]

_CHUNK_ROWS = 131_072  # small batches are merged into chunks of at least this many rows
_EXACT_VALUES = 50_000  # distinct numbers kept losslessly per column before compressing
_CENTROIDS = 2_000  # size of a compressed quantile sketch
_KMV_HASHES = 16_384  # size of a distinct-count sketch
_CATEGORY_TALLY = 100_000  # distinct strings tallied per column before dropping the rarest
_MIN_TOP_COUNT = 2  # a value seen once is a row, not a summary
_CATEGORICAL_DISTINCT = 50  # string columns with at most this many values are categorical,
_CATEGORICAL_REPEAT = 5  # and so are those whose values repeat this often on average
_CORRELATION_COLUMNS = 50
_NS_PER_UNIT = {"s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1.0}
_NS_PER_DAY = 86_400e9
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# -- the profile -------------------------------------------------------------------------


@dataclass
class Histogram:
    """Bin edges (numbers, or ISO-8601 strings for datetimes) and the rows in each bin."""

    edges: list[Any]
    counts: list[int]


@dataclass
class Correlations:
    """Pearson correlations between numeric columns; ``None`` where undefined.

    ``rows`` is how many rows they were computed on: fewer than the dataset's when sampled.
    """

    columns: list[str] = field(default_factory=list)
    matrix: list[list[float | None]] = field(default_factory=list)
    rows: int = 0

    def to_frame(self) -> pd.DataFrame:
        """The matrix as a square DataFrame (NaN where undefined)."""
        values = [[math.nan if value is None else value for value in row] for row in self.matrix]
        return pd.DataFrame(values, index=self.columns, columns=self.columns, dtype=float)


@dataclass
class ColumnProfile:
    """Summary statistics of one column.

    Datetime columns give ``mean``, ``min``, ``max`` and quantiles as ISO-8601 strings and
    ``std`` in seconds. Bool columns give ``mean`` as the share of true values. Infinite
    numbers count as present but are left out of the moments, quantiles and histogram.
    """

    name: str
    type: ColumnType
    dtype: str
    count: int
    missing: int
    missing_share: float
    distinct: int | None = None
    mean: float | str | None = None
    std: float | None = None
    min: float | str | None = None
    max: float | str | None = None
    quantiles: dict[float, float | str] = field(default_factory=dict)
    histogram: Histogram | None = None
    top: list[tuple[str | bool, int]] = field(default_factory=list)
    infinite: int = 0
    approximate: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dictionary (quantile keys become strings such as ``"0.05"``)."""
        return {
            "name": self.name,
            "type": self.type,
            "dtype": self.dtype,
            "count": self.count,
            "missing": self.missing,
            "missing_share": self.missing_share,
            "distinct": self.distinct,
            "mean": self.mean,
            "std": self.std,
            "min": self.min,
            "max": self.max,
            "quantiles": {str(q): value for q, value in self.quantiles.items()},
            "histogram": None
            if self.histogram is None
            else {"edges": list(self.histogram.edges), "counts": list(self.histogram.counts)},
            "top": [[value, count] for value, count in self.top],
            "infinite": self.infinite,
            "approximate": list(self.approximate),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnProfile:
        """The inverse of ``to_dict``."""
        histogram = data.get("histogram")
        return cls(
            name=data["name"],
            type=data["type"],
            dtype=data["dtype"],
            count=data["count"],
            missing=data["missing"],
            missing_share=data["missing_share"],
            distinct=data.get("distinct"),
            mean=data.get("mean"),
            std=data.get("std"),
            min=data.get("min"),
            max=data.get("max"),
            quantiles={float(q): value for q, value in data.get("quantiles", {}).items()},
            histogram=None
            if histogram is None
            else Histogram(edges=list(histogram["edges"]), counts=list(histogram["counts"])),
            top=[(value, count) for value, count in data.get("top", [])],
            infinite=data.get("infinite", 0),
            approximate=list(data.get("approximate", [])),
        )


@dataclass
class DatasetProfile:
    """A dataset's row count, one profile per column, and correlations between numbers."""

    rows: int
    columns: list[ColumnProfile]
    correlations: Correlations = field(default_factory=Correlations)

    def column(self, name: str) -> ColumnProfile:
        """The profile of the column called ``name``."""
        for column in self.columns:
            if column.name == name:
                return column
        known = ", ".join(column.name for column in self.columns)
        raise NotFoundError(f"The profile has no column {name!r}; its columns are: {known}.")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dictionary, as stored in the metadata database."""
        return {
            "format": FORMAT_VERSION,
            "rows": self.rows,
            "columns": [column.to_dict() for column in self.columns],
            "correlations": {
                "columns": list(self.correlations.columns),
                "matrix": [list(row) for row in self.correlations.matrix],
                "rows": self.correlations.rows,
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetProfile:
        """The inverse of ``to_dict``."""
        version = data.get("format")
        if version != FORMAT_VERSION:
            raise ValidationError(
                f"This loopml reads dataset profiles of format {FORMAT_VERSION}, got "
                f"{version!r}; recompute the profile or upgrade loopml."
            )
        correlations = data.get("correlations") or {}
        return cls(
            rows=data["rows"],
            columns=[ColumnProfile.from_dict(column) for column in data["columns"]],
            correlations=Correlations(
                columns=list(correlations.get("columns", [])),
                matrix=[list(row) for row in correlations.get("matrix", [])],
                rows=correlations.get("rows", 0),
            ),
        )

    def to_frame(self) -> pd.DataFrame:
        """One row per column, indexed by column name."""
        records = []
        for column in self.columns:
            record: dict[str, Any] = {
                "column": column.name,
                "type": column.type,
                "dtype": column.dtype,
                "count": column.count,
                "missing": column.missing,
                "missing_share": column.missing_share,
                "distinct": column.distinct,
                "mean": column.mean,
                "std": column.std,
                "min": column.min,
                "max": column.max,
            }
            for q in QUANTILES:
                record[_quantile_label(q)] = column.quantiles.get(q)
            record["approximate"] = ", ".join(column.approximate)
            records.append(record)
        frame = pd.DataFrame.from_records(records, columns=_FRAME_COLUMNS)
        return frame.set_index("column")

    def to_html(self, *, title: str = "Dataset profile") -> str:
        """A self-contained page that works offline: Plotly is inlined, nothing is fetched."""
        return _render_html(self, title)

    def save_html(self, path: str | os.PathLike[str], *, title: str = "Dataset profile") -> Path:
        """Writes ``to_html()`` to ``path`` (UTF-8) and returns the path."""
        target = Path(path)
        target.write_text(self.to_html(title=title), encoding="utf-8")
        return target


_FRAME_COLUMNS = [
    "column", "type", "dtype", "count", "missing", "missing_share", "distinct",
    "mean", "std", "min", "max", "5%", "25%", "50%", "75%", "95%", "approximate",
]  # fmt: skip


def _quantile_label(q: float) -> str:
    return f"{q * 100:g}%"


def profile(
    data: pd.DataFrame | pa.Table | Iterable[pa.RecordBatch],
    *,
    bins: int = 30,
    top: int = 10,
    sample_for_correlation: int = 100_000,
) -> DatasetProfile:
    """Profiles a dataset: counts, missing values, moments, quantiles, histograms, top values.

    Args:
        data: A DataFrame or Arrow Table (profiled exactly), or an iterable of Arrow record
            batches, Tables or DataFrames with the same columns (profiled in one pass with
            bounded memory; see the module docstring for what is then approximate).
        bins: Histogram bins per numeric or datetime column, equal width from min to max.
        top: Most frequent values kept per categorical, bool or text column.
        sample_for_correlation: Rows (a uniform sample) used for correlations; 0 skips them.

    Example:
        >>> import pandas as pd
        >>> result = profile(pd.DataFrame({"x": [1.0, 2.0, None]}))
        >>> result.column("x").missing
        1
    """
    _check_count("bins", bins, minimum=1)
    _check_count("top", top, minimum=0)
    _check_count("sample_for_correlation", sample_for_correlation, minimum=0)
    if isinstance(data, pd.DataFrame):
        data = _table_from_frame(data)
    elif isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if isinstance(data, pa.Table):
        builder = _ProfileBuilder(lossy=False, sample_rows=sample_for_correlation)
        builder.add(data)
    elif isinstance(data, Iterable) and not isinstance(data, str | bytes):
        builder = _ProfileBuilder(lossy=True, sample_rows=sample_for_correlation)
        for chunk in _chunks(data):
            builder.add(chunk)
    else:
        raise ValidationError(
            "profile() takes a pandas DataFrame, a pyarrow Table or an iterable of pyarrow "
            f"RecordBatches; got {type(data).__name__}."
        )
    return builder.finish(bins=bins, top=top)


def _check_count(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValidationError(
            f"The {name!r} parameter of profile must be an int >= {minimum}. Got {value!r} instead."
        )


# -- reading input -----------------------------------------------------------------------


def _table_from_frame(frame: pd.DataFrame) -> pa.Table:
    """The frame as an Arrow table; columns Arrow cannot type (mixed objects) become text."""
    names = [str(name) for name in frame.columns]
    if len(set(names)) != len(names):
        raise ValidationError("Column names must be unique to profile a frame; rename duplicates.")
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        pass
    arrays = []
    for _, series in frame.items():
        try:
            arrays.append(pa.Array.from_pandas(series))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            text = series.astype(str).where(series.notna(), None)
            arrays.append(pa.Array.from_pandas(text, type=pa.string()))
    return pa.Table.from_arrays(arrays, names=names)


def _as_table(item: object) -> pa.Table:
    if isinstance(item, pa.Table):
        return item
    if isinstance(item, pa.RecordBatch):
        return pa.Table.from_batches([item])
    if isinstance(item, pd.DataFrame):
        return _table_from_frame(item)
    raise ValidationError(
        "Each chunk given to profile() must be a pyarrow RecordBatch, a pyarrow Table or a "
        f"pandas DataFrame; got {type(item).__name__}."
    )


def _chunks(data: Iterable[Any]) -> Iterator[pa.Table]:
    """Tables of at least ``_CHUNK_ROWS`` rows made of consecutive same-schema items."""
    pending: list[pa.Table] = []
    pending_rows = 0
    for item in data:
        table = _as_table(item)
        if pending and not table.schema.equals(pending[0].schema):
            yield pa.concat_tables(pending)
            pending, pending_rows = [], 0
        pending.append(table)
        pending_rows += table.num_rows
        if pending_rows >= _CHUNK_ROWS:
            yield pa.concat_tables(pending)
            pending, pending_rows = [], 0
    if pending:
        yield pa.concat_tables(pending)


def _flat(column: pa.ChunkedArray) -> pa.Array:
    """One contiguous array, dictionaries decoded."""
    chunks = [
        chunk.dictionary_decode() if pa.types.is_dictionary(chunk.type) else chunk
        for chunk in column.chunks
    ]
    if not chunks:
        value_type = column.type
        if pa.types.is_dictionary(value_type):
            value_type = value_type.value_type
        return pa.array([], type=value_type)
    if len(chunks) == 1:
        return chunks[0]
    if pa.types.is_string(chunks[0].type):  # offsets of >2 GiB of text overflow int32
        chunks = [chunk.cast(pa.large_string()) for chunk in chunks]
    return pa.concat_arrays(chunks)


def _family(data_type: pa.DataType) -> str:
    types = pa.types
    if types.is_dictionary(data_type):
        return "string"
    if types.is_null(data_type):
        return "null"
    if types.is_boolean(data_type):
        return "bool"
    if (
        types.is_integer(data_type)
        or types.is_floating(data_type)
        or types.is_decimal(data_type)
        or types.is_duration(data_type)
    ):
        return "numeric"
    if types.is_timestamp(data_type) or types.is_date(data_type):
        return "datetime"
    if types.is_string(data_type) or types.is_large_string(data_type) or types.is_time(data_type):
        return "string"
    if hasattr(types, "is_string_view") and types.is_string_view(data_type):
        return "string"
    return "other"


def _as_floats(array: pa.Array) -> _Floats:
    """Numbers as float64 with NaN for missing: datetimes in epoch ns, durations in seconds.

    Integers past 2**53 (epoch nanoseconds among them) lose their lowest bits, on purpose.
    """
    data_type = array.type
    scale = 1.0
    if pa.types.is_timestamp(data_type) or pa.types.is_duration(data_type):
        scale = _NS_PER_UNIT[data_type.unit] / (1e9 if pa.types.is_duration(data_type) else 1.0)
        array = pc.cast(array, pa.int64())
    elif pa.types.is_date32(data_type):
        scale, array = _NS_PER_DAY, pc.cast(array, pa.int32())
    elif pa.types.is_date64(data_type):
        scale, array = 1e6, pc.cast(array, pa.int64())
    floats = pc.cast(array, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
    values = np.asarray(floats, dtype=np.float64)
    return values * scale if scale != 1.0 else values


# -- mergeable summaries -----------------------------------------------------------------


class _Distinct:
    """K minimum values: the smallest distinct 64-bit hashes seen; exact below K of them."""

    def __init__(self) -> None:
        self.hashes: npt.NDArray[np.uint64] = np.empty(0, dtype=np.uint64)

    def add(self, values: npt.NDArray[Any] | pa.Array) -> None:
        if isinstance(values, pa.Array) and _family(values.type) == "string":
            hashes = _string_hashes(values)
        else:
            if isinstance(values, pa.Array):
                values = np.asarray(values.to_numpy(zero_copy_only=False))
            hashes = pd.util.hash_array(values)
        if self.hashes.size == _KMV_HASHES:  # only hashes below the K-th can enter
            hashes = hashes[hashes < self.hashes[-1]]
        self.hashes = np.unique(np.concatenate([self.hashes, hashes]))[:_KMV_HASHES]

    def estimate(self) -> int:
        if self.hashes.size < _KMV_HASHES:
            return int(self.hashes.size)
        kth = (float(self.hashes[-1]) + 1.0) / 2.0**64
        return round((_KMV_HASHES - 1) / kth)


def _string_hashes(array: pa.Array) -> npt.NDArray[np.uint64]:
    """64-bit hashes of non-null strings, read straight from the Arrow buffers.

    A polynomial hash over the bytes (wrapping uint64 arithmetic), its length mixed in,
    then the splitmix64 finalizer to spread the bits.
    """
    array = array.cast(pa.large_string())
    _, offset_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offset_buffer, dtype=np.int64)[
        array.offset : array.offset + len(array) + 1
    ]
    lengths = np.diff(offsets).astype(np.uint64)
    hashes = lengths * np.uint64(0x9E3779B97F4A7C15)
    if data_buffer is not None and offsets[-1] > offsets[0]:
        data = np.frombuffer(data_buffer, dtype=np.uint8)[offsets[0] : offsets[-1]].astype(
            np.uint64
        )
        starts = offsets[:-1] - offsets[0]
        position = np.arange(data.size, dtype=np.int64) - np.repeat(starts, np.diff(offsets))
        powers = np.full(int(position.max()) + 1, 0x100000001B3, dtype=np.uint64)
        powers[0] = 1
        powers = np.multiply.accumulate(powers)
        nonempty = np.flatnonzero(lengths)
        with np.errstate(over="ignore"):
            sums = np.add.reduceat(data * powers[position], starts[nonempty])
        hashes[nonempty] ^= sums
    with np.errstate(over="ignore"):
        hashes = (hashes ^ (hashes >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        hashes = (hashes ^ (hashes >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return cast(npt.NDArray[np.uint64], hashes ^ (hashes >> np.uint64(31)))


def _compress(values: _Floats, weights: _Ints, size: int) -> tuple[_Floats, _Ints]:
    """Merges sorted centroids into about ``size`` groups, smaller in the tails (t-digest k1)."""
    total = float(weights.sum())
    centers = (np.cumsum(weights) - weights / 2.0) / total
    groups = np.floor(size * (np.arcsin(2.0 * centers - 1.0) / np.pi + 0.5)).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    merged_weights = np.add.reduceat(weights, starts)
    merged_values = np.add.reduceat(values * weights, starts) / merged_weights
    return merged_values.astype(np.float64), merged_weights.astype(np.int64)


class _Numbers:
    """Moments, extremes and a quantile sketch of finite numbers, merged chunk by chunk."""

    def __init__(self, *, lossy: bool, integers: bool = False) -> None:
        self.lossy = lossy
        self.integers = integers
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.values: _Floats = np.empty(0, dtype=np.float64)  # sorted centroid means
        self.weights: _Ints = np.empty(0, dtype=np.int64)
        self.compressed = False
        self.distinct: _Distinct | None = None  # created when the centroids stop being exact

    def add(self, x: _Floats) -> None:
        n = int(x.size)
        if n == 0:
            return
        mean = float(x.mean())
        m2 = float(np.square(x - mean).sum())
        total = self.n + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.n * n / total
        self.n = total
        self.min = min(self.min, float(x.min()))
        self.max = max(self.max, float(x.max()))
        values, counts = np.unique(x, return_counts=True)
        if self.distinct is not None:
            self.distinct.add(values)
        self._merge(values, counts.astype(np.int64))

    def _merge(self, values: _Floats, weights: _Ints) -> None:
        if self.values.size:
            values, inverse = np.unique(np.concatenate([self.values, values]), return_inverse=True)
            both = np.concatenate([self.weights, weights]).astype(np.float64)
            weights = np.rint(np.bincount(inverse, weights=both)).astype(np.int64)
        if self.lossy and values.size > _EXACT_VALUES:
            if self.distinct is None:
                self.distinct = _Distinct()
                self.distinct.add(values)
            values, weights = _compress(values, weights, _CENTROIDS)
            self.compressed = True
        self.values, self.weights = values, weights

    def std(self) -> float | None:
        return math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else None

    def quantiles(self, qs: tuple[float, ...]) -> _Floats:
        cumulative = np.cumsum(self.weights)
        total = int(cumulative[-1])
        positions = np.asarray(qs, dtype=np.float64) * (total - 1)
        if not self.compressed:  # numpy's "linear" method over the expanded values
            low = np.floor(positions)
            high = np.minimum(low + 1, total - 1)
            below = self.values[np.searchsorted(cumulative, low, side="right")]
            above = self.values[np.searchsorted(cumulative, high, side="right")]
            return cast(_Floats, below + (positions - low) * (above - below))
        centers = cumulative - self.weights / 2.0
        ranks = np.concatenate([[0.0], centers, [float(total)]])
        values = np.concatenate([[self.min], self.values, [self.max]])
        return cast(_Floats, np.interp(positions + 0.5, ranks, values))

    def histogram(self, bins: int, half_width: float) -> tuple[_Floats, _Ints]:
        """``bins`` equal bins from min to max; one bin per value for integers in a short range."""
        if self.integers and self.max - self.min < bins:
            edges = self.min - 0.5 + np.arange(int(self.max - self.min) + 2, dtype=np.float64)
        elif self.min == self.max:
            edges = np.array([self.min - half_width, self.max + half_width])
        else:
            edges = np.linspace(self.min, self.max, bins + 1)
        counts, _ = np.histogram(self.values, bins=edges, weights=self.weights)
        return edges, np.rint(counts).astype(np.int64)

    def distinct_count(self) -> int:
        if self.distinct is None:
            return int(self.values.size)
        return min(self.distinct.estimate(), self.n)


class _Categories:
    """A tally of values (strings or bools) as an Arrow table, the rarest dropped past a limit."""

    def __init__(self, *, lossy: bool) -> None:
        self.lossy = lossy
        self.tally: pa.Table | None = None  # columns "values" and "counts"
        self.truncated = False
        self.distinct: _Distinct | None = None

    def add(self, array: pa.Array) -> None:
        if len(array) == 0:
            return
        chunk = pa.Table.from_struct_array(pc.value_counts(array))
        if self.distinct is not None:
            self.distinct.add(chunk.column("values").combine_chunks())
        self.tally = chunk if self.tally is None else _merge_tallies(self.tally, chunk)
        if self.lossy and self.tally.num_rows > _CATEGORY_TALLY:
            if self.distinct is None:
                self.distinct = _Distinct()
                self.distinct.add(self.tally.column("values").combine_chunks())
            kept = pc.select_k_unstable(
                self.tally, _CATEGORY_TALLY // 2, sort_keys=[("counts", "descending")]
            )
            self.tally = self.tally.take(kept)
            self.truncated = True

    def distinct_count(self, present: int) -> int:
        if self.distinct is not None:
            return min(self.distinct.estimate(), present)
        return 0 if self.tally is None else int(self.tally.num_rows)

    def top(self, size: int, *, least: int = _MIN_TOP_COUNT) -> list[tuple[str | bool, int]]:
        """The ``size`` most frequent values seen at least ``least`` times, ties by value."""
        if self.tally is None or size == 0:
            return []
        shown = self.tally.filter(pc.greater_equal(self.tally.column("counts"), least))
        shown = shown.sort_by([("counts", "descending"), ("values", "ascending")]).slice(0, size)
        values = shown.column("values").to_pylist()
        counts = shown.column("counts").to_pylist()
        return [(_plain(value), int(count)) for value, count in zip(values, counts, strict=True)]

    def count_of(self, value: bool) -> int:
        if self.tally is None:
            return 0
        matches = self.tally.filter(pc.equal(self.tally.column("values"), value))
        return int(pc.sum(matches.column("counts")).as_py() or 0)


def _merge_tallies(tally: pa.Table, chunk: pa.Table) -> pa.Table:
    """Adds the counts of ``chunk`` to ``tally``; both hold each value once."""
    values = tally.column("values").combine_chunks()
    positions = pc.index_in(chunk.column("values"), value_set=values)
    known = np.asarray(positions.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    chunk_counts = np.asarray(chunk.column("counts").to_numpy(), dtype=np.int64)
    counts = np.asarray(tally.column("counts").to_numpy(), dtype=np.int64).copy()
    at = np.asarray(positions.filter(pa.array(known)).to_numpy(), dtype=np.int64)
    np.add.at(counts, at, chunk_counts[known])
    fresh = chunk.filter(pa.array(~known))
    return pa.table(
        {
            "values": pa.chunked_array([values, *fresh.column("values").chunks]),
            "counts": np.concatenate([counts, chunk_counts[~known]]),
        }
    )


def _plain(value: object) -> str | bool:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    return str(value)


class _Column:
    """Everything merged so far about one column, whatever its type."""

    def __init__(self, name: str, *, lossy: bool) -> None:
        self.name = name
        self.lossy = lossy
        self.count = 0
        self.infinite = 0
        self.family: str | None = None
        self.dtype: pa.DataType | None = None
        self.dictionary = False
        self.numbers: _Numbers | None = None
        self.categories: _Categories | None = None

    def add(self, column: pa.ChunkedArray) -> _Floats | None:
        """Adds one chunk; returns it as float64 (NaN for missing) when the column is numeric."""
        family = _family(column.type)
        if family == "null":
            return np.full(len(column), np.nan) if self.family == "numeric" else None
        if self.family is None:
            self.family, self.dtype = family, column.type
            self.dictionary = pa.types.is_dictionary(column.type)
            if family in ("numeric", "datetime"):
                integers = pa.types.is_integer(column.type)
                self.numbers = _Numbers(lossy=self.lossy, integers=integers)
            elif family in ("string", "bool"):
                self.categories = _Categories(lossy=self.lossy)
        elif family != self.family:
            raise ValidationError(
                f"Column {self.name!r} changed type between chunks, from {self.dtype} to "
                f"{column.type}; cast it to one type before profiling."
            )
        array = _flat(column)
        if self.numbers is not None:
            floats = _as_floats(array)
            present = ~np.isnan(floats)
            finite = np.isfinite(floats)
            self.count += int(present.sum())
            self.infinite += int((present & ~finite).sum())
            self.numbers.add(floats[finite])
            return np.where(finite, floats, np.nan) if family == "numeric" else None
        self.count += len(array) - array.null_count
        if self.categories is not None:
            if pa.types.is_time(array.type):
                array = array.cast(pa.string())
            self.categories.add(pc.drop_null(array) if array.null_count else array)
        return None

    def finish(self, rows: int, bins: int, top: int) -> ColumnProfile:
        column = ColumnProfile(
            name=self.name,
            type="categorical",
            dtype=str(self.dtype) if self.dtype is not None else "null",
            count=self.count,
            missing=rows - self.count,
            missing_share=(rows - self.count) / rows if rows else 0.0,
            infinite=self.infinite,
        )
        if self.numbers is not None:
            self._finish_numbers(column, self.numbers, bins)
        elif self.categories is not None:
            self._finish_categories(column, self.categories, top)
        elif self.family == "other":
            column.type = "text"
        return column

    def _finish_numbers(self, column: ColumnProfile, numbers: _Numbers, bins: int) -> None:
        temporal = self.family == "datetime"
        column.type = "datetime" if temporal else "numeric"
        column.distinct = numbers.distinct_count()
        if numbers.distinct is not None:
            column.approximate.append("distinct")
        if numbers.n == 0:
            return
        if numbers.compressed:
            column.approximate.extend(["quantiles", "histogram"])
        quantiles = numbers.quantiles(QUANTILES)
        edges, counts = numbers.histogram(bins, half_width=0.5e9 if temporal else 0.5)
        std = numbers.std()
        if temporal:
            timezone = getattr(self.dtype, "tz", None)
            column.mean = _iso(numbers.mean, timezone)
            column.std = None if std is None else std / 1e9
            column.min, column.max = _iso(numbers.min, timezone), _iso(numbers.max, timezone)
            column.quantiles = {
                q: _iso(v, timezone) for q, v in zip(QUANTILES, quantiles, strict=True)
            }
            column.histogram = Histogram([_iso(edge, timezone) for edge in edges], counts.tolist())
        else:
            column.mean, column.std = numbers.mean, std
            column.min, column.max = numbers.min, numbers.max
            column.quantiles = {q: float(v) for q, v in zip(QUANTILES, quantiles, strict=True)}
            column.histogram = Histogram([float(edge) for edge in edges], counts.tolist())

    def _finish_categories(self, column: ColumnProfile, categories: _Categories, top: int) -> None:
        column.distinct = categories.distinct_count(self.count)
        # Both bool values are known up front, so their counts are summaries even when 1.
        column.top = categories.top(top, least=1 if self.family == "bool" else _MIN_TOP_COUNT)
        if categories.truncated:
            column.approximate.extend(["distinct", "top"])
        if self.family == "bool":
            column.type = "bool"
            if self.count:
                column.mean = categories.count_of(True) / self.count
        elif (
            self.dictionary
            or column.distinct <= _CATEGORICAL_DISTINCT
            or column.distinct * _CATEGORICAL_REPEAT <= self.count
        ):
            column.type = "categorical"
        else:
            column.type = "text"


def _iso(nanoseconds: float, timezone: str | None) -> str:
    """An epoch-nanosecond instant as ISO-8601 (in the column's time zone when it has one)."""
    try:
        moment = _EPOCH + timedelta(microseconds=round(nanoseconds / 1000))
    except OverflowError:
        return "out of range"
    if timezone:
        return str(pd.Timestamp(moment).tz_convert(timezone).isoformat())
    return moment.replace(tzinfo=None).isoformat()


class _CorrelationSample:
    """A uniform sample of rows of the numeric columns: those with the smallest random keys."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.random = np.random.default_rng(0)
        self.names: list[str] = []
        self.keys: _Floats = np.empty(0, dtype=np.float64)
        self.rows: _Floats = np.empty((0, 0), dtype=np.float64)

    def add(self, rows: int, columns: dict[str, _Floats]) -> None:
        if self.size == 0 or rows == 0 or not columns:
            return
        for name in columns:
            if name not in self.names and len(self.names) < _CORRELATION_COLUMNS:
                self.names.append(name)
                missing = np.full((self.rows.shape[0], 1), np.nan)
                self.rows = np.hstack([self.rows, missing])
        keys = self.random.random(rows)
        chosen = np.argpartition(keys, self.size)[: self.size] if rows > self.size else None
        if chosen is not None:
            keys = keys[chosen]
        block = np.full((keys.size, len(self.names)), np.nan)
        for index, name in enumerate(self.names):
            if name in columns:
                block[:, index] = columns[name] if chosen is None else columns[name][chosen]
        self.keys = np.concatenate([self.keys, keys])
        self.rows = np.vstack([self.rows, block])
        if self.keys.size > self.size:
            keep = np.argpartition(self.keys, self.size)[: self.size]
            self.keys, self.rows = self.keys[keep], self.rows[keep]

    def correlations(self, usable: set[str]) -> Correlations:
        names = [name for name in self.names if name in usable]
        if len(names) < 2:
            return Correlations()
        indexes = [self.names.index(name) for name in names]
        frame = pd.DataFrame(self.rows[:, indexes], columns=names)
        matrix = frame.corr(method="pearson", min_periods=2).to_numpy()
        return Correlations(
            columns=names,
            matrix=[[None if math.isnan(v) else float(v) for v in row] for row in matrix],
            rows=int(self.keys.size),
        )


class _ProfileBuilder:
    def __init__(self, *, lossy: bool, sample_rows: int) -> None:
        self.lossy = lossy
        self.rows = 0
        self.names: list[str] | None = None
        self.columns: dict[str, _Column] = {}
        self.sample = _CorrelationSample(sample_rows)

    def add(self, table: pa.Table) -> None:
        names = [str(name) for name in table.column_names]
        if len(set(names)) != len(names):
            raise ValidationError("Column names must be unique to profile data; rename duplicates.")
        if self.names is None:
            self.names = names
            self.columns = {name: _Column(name, lossy=self.lossy) for name in names}
        elif set(names) != set(self.names):
            raise ValidationError(
                f"A chunk has the columns {names} but the first chunk had {self.names}; "
                "every chunk of a profiled dataset needs the same columns."
            )
        self.rows += table.num_rows
        numeric: dict[str, _Floats] = {}
        for index, name in enumerate(names):
            floats = self.columns[name].add(table.column(index))
            if floats is not None:
                numeric[name] = floats
        self.sample.add(
            table.num_rows, {name: numeric[name] for name in self.names if name in numeric}
        )

    def finish(self, *, bins: int, top: int) -> DatasetProfile:
        columns = [self.columns[name].finish(self.rows, bins, top) for name in self.names or []]
        usable = {
            column.name for column in columns if column.type == "numeric" and column.count > 1
        }
        return DatasetProfile(
            rows=self.rows, columns=columns, correlations=self.sample.correlations(usable)
        )


# -- the HTML report ---------------------------------------------------------------------

_TYPE_COLORS = {
    "numeric": "#3566c9",
    "datetime": "#7a4fc9",
    "categorical": "#d9692b",
    "bool": "#23915f",
    "text": "#5f6b7a",
}
_DASH = "\u2013"  # shown for values that do not exist
_MINUS = "\u2212"
_FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
_LABEL_CHARACTERS = 28
_HOVER_CHARACTERS = 200
_HEATMAP_LABELLED = 15  # heatmaps of at most this many columns print r in each cell
_HEATMAP_MARGIN = 110  # pixels around a heatmap's cells for labels and its colour bar
_PLOT_CONFIG = {
    "displaylogo": False,
    "responsive": True,
    "typesetMath": False,
    "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"],
}


@functools.cache
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs()).replace("</script", "<\\/script")


def _script_json(value: object) -> str:
    """JSON that can sit inside a <script> element whatever strings it holds."""
    text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _render_html(result: DatasetProfile, title: str) -> str:
    figures: list[dict[str, Any]] = []
    cards: list[str] = []
    for index, column in enumerate(result.columns):
        figure = _column_figure(column, f"chart-{index}")
        if figure is not None:
            figures.append(figure)
        cards.append(_column_card(column, index, drawn=figure is not None))
    correlations = _heatmap_figure(result.correlations, "chart-correlations")
    if correlations is not None:
        figures.append(correlations)
    body = "\n".join(
        [
            _page_header(result, title),
            _columns_table(result),
            '<section class="section"><h2>Columns</h2><div class="cards">',
            *cards,
            "</div></section>",
            _correlations_section(result, drawn=correlations is not None),
            '<footer class="footer">Generated by loopml from pre-binned summaries: this page '
            "holds no raw rows, and works offline.</footer>",
        ]
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<link rel="icon" href="data:,">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f'<body data-charts="pending">\n<main class="page">\n{body}\n</main>\n'
        f'<script type="application/json" id="loopml-figures">{_script_json(figures)}</script>\n'
        f'<script type="application/json" id="loopml-plot-config">{_script_json(_PLOT_CONFIG)}'
        "</script>\n"
        f"<script>{_plotly_js()}</script>\n"
        f"<script>{_DRAW_JS}</script>\n"
        "</body>\n</html>\n"
    )


def _page_header(result: DatasetProfile, title: str) -> str:
    cells = result.rows * len(result.columns)
    missing = sum(column.missing for column in result.columns)
    by_type: dict[str, int] = {}
    for column in result.columns:
        by_type[column.type] = by_type.get(column.type, 0) + 1
    types = " ".join(
        f'<span class="badge badge-{name}">{count} {name}</span>' for name, count in by_type.items()
    )
    tiles = [
        (f"{result.rows:,}", "rows"),
        (f"{len(result.columns):,}", "columns"),
        (_percent(missing / cells if cells else 0.0), "missing cells"),
    ]
    tile_html = "".join(
        f'<div class="tile"><div class="tile-value">{value}</div>'
        f'<div class="tile-label">{label}</div></div>'
        for value, label in tiles
    )
    approximate = any(column.approximate for column in result.columns)
    note = (
        '<p class="muted">Values marked ≈ are estimates: the data was profiled in chunks '
        "with bounded memory.</p>"
        if approximate
        else ""
    )
    return (
        f'<header class="page-header"><h1>{html.escape(title)}</h1>'
        f'<div class="tiles">{tile_html}</div><div class="types">{types}</div>{note}</header>'
    )


def _columns_table(result: DatasetProfile) -> str:
    rows = []
    for index, column in enumerate(result.columns):
        share = column.missing_share
        distinct = _DASH if column.distinct is None else f"{column.distinct:,}"
        if "distinct" in column.approximate:
            distinct = f"≈ {distinct}"
        std = _duration(column.std) if column.type == "datetime" else _display(column, column.std)
        rows.append(
            "<tr>"
            f'<td class="name" title="{html.escape(column.name)}">'
            f'<a href="#column-{index}">{html.escape(column.name)}</a></td>'
            f'<td><span class="badge badge-{column.type}">{column.type}</span></td>'
            f'<td class="num"><span class="meter"><span style="width:{share * 100:.1f}%">'
            f"</span></span>{_percent(share)}</td>"
            f'<td class="num">{distinct}</td>'
            f'<td class="num">{_display(column, column.mean)}</td>'
            f'<td class="num">{std}</td>'
            f'<td class="num">{_display(column, column.min)}</td>'
            f'<td class="num">{_display(column, column.max)}</td>'
            "</tr>"
        )
    return (
        '<section class="section"><h2>Overview</h2><div class="table-wrap"><table>'
        "<thead><tr><th>Column</th><th>Type</th><th>Missing</th><th>Distinct</th>"
        "<th>Mean</th><th>Std</th><th>Min</th><th>Max</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div></section>"
    )


def _column_card(column: ColumnProfile, index: int, *, drawn: bool) -> str:
    facts: list[tuple[str, str]] = []
    distinct = _DASH if column.distinct is None else f"{column.distinct:,}"
    facts.append(("distinct", f"≈ {distinct}" if "distinct" in column.approximate else distinct))
    mark = "≈ " if "quantiles" in column.approximate else ""
    layout = "facts"
    if column.type == "numeric":
        facts += [
            ("mean", _display(column, column.mean)),
            ("std", _display(column, column.std)),
            ("min", _display(column, column.min)),
        ]
        facts += [
            (_quantile_name(q), mark + _display(column, v)) for q, v in column.quantiles.items()
        ]
        facts.append(("max", _display(column, column.max)))
        if column.infinite:
            facts.append(("infinite", f"{column.infinite:,}"))
    elif column.type == "datetime":
        layout = "facts wide"
        quantiles = {q: mark + _display(column, v) for q, v in column.quantiles.items()}
        facts = [
            ("min", _display(column, column.min)),
            ("max", _display(column, column.max)),
            ("25%", quantiles.get(0.25, _DASH)),
            ("75%", quantiles.get(0.75, _DASH)),
            ("median", quantiles.get(0.5, _DASH)),
            ("std", _duration(column.std)),
            *facts,
        ]
    elif column.type == "bool" and isinstance(column.mean, float):
        facts.append(("true", _percent(column.mean)))
    if column.count == 0:
        facts = []
    fact_html = "".join(
        f'<div class="fact"><dt>{html.escape(name)}</dt><dd>{value}</dd></div>'
        for name, value in facts
    )
    summary = (
        f"{html.escape(column.dtype)} · {column.count:,} values · "
        f"{_percent(column.missing_share)} missing"
    )
    chart = (
        f'<div class="chart" id="chart-{index}" role="img" '
        f'aria-label="{html.escape(_chart_label(column))}"></div>'
        if drawn
        else f'<p class="empty">{html.escape(_no_chart_reason(column))}</p>'
    )
    return (
        f'<article class="card" id="column-{index}">'
        f'<header class="card-head"><h3 title="{html.escape(column.name)}">'
        f"{html.escape(column.name)}</h3>"
        f'<span class="badge badge-{column.type}">{column.type}</span></header>'
        f'<p class="muted small">{summary}</p>{chart}'
        f'<dl class="{layout}">{fact_html}</dl>{_top_note(column)}</article>'
    )


def _chart_label(column: ColumnProfile) -> str:
    if column.histogram is not None:
        return f"Histogram of {column.name}"
    return f"Most frequent values of {column.name}"


def _no_chart_reason(column: ColumnProfile) -> str:
    if column.count == 0:
        return "No values: every row is missing."
    if column.type in ("categorical", "bool", "text"):
        return "No value occurs more than once; values seen once are rows and are not shown."
    return "Nothing to chart."


def _top_note(column: ColumnProfile) -> str:
    if not column.top or column.distinct is None:
        return ""
    shown = sum(count for _, count in column.top)
    covered = shown / column.count if column.count else 0.0
    return (
        f'<p class="muted small">The {len(column.top)} most frequent of '
        f"{column.distinct:,} distinct values cover {_percent(covered)} of present values.</p>"
    )


def _quantile_name(q: float) -> str:
    return "median" if q == 0.5 else _quantile_label(q)


def _percent(share: float) -> str:
    if 0 < share < 0.001:
        return "&lt;0.1%"
    return f"{share * 100:.1f}%"


def _number(value: float) -> str:
    if math.isinf(value):
        return "∞" if value > 0 else _MINUS + "∞"
    if math.isnan(value):
        return _DASH
    magnitude = abs(value)
    if value == int(value) and magnitude < 1e15:
        return f"{int(value):,}"
    if magnitude >= 1e15 or magnitude < 1e-3:
        return f"{value:.3e}"
    if magnitude >= 1000:
        return f"{value:,.1f}"
    return f"{value:.4g}"


def _moment(value: str) -> str:
    text = value[:19].replace("T", " ")
    return text[:-9] if text.endswith(" 00:00:00") else text


def _display(column: ColumnProfile, value: object) -> str:
    if value is None:
        return _DASH
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return html.escape(_moment(value) if column.type == "datetime" else value)
    if isinstance(value, int | float):
        return _number(float(value))
    return html.escape(str(value))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return _DASH
    for size, unit in ((86_400.0, "days"), (3_600.0, "h"), (60.0, "min"), (1.0, "s")):
        if seconds >= size:
            return f"{seconds / size:,.3g} {unit}"
    return f"{seconds * 1000:.3g} ms"


def _wall_milliseconds(value: str) -> float:
    """An ISO-8601 string as the milliseconds Plotly's date axes use (local wall time)."""
    moment = datetime.fromisoformat(value).replace(tzinfo=None)
    return (moment - datetime(1970, 1, 1)).total_seconds() * 1000.0


def _layout(height: int, **extra: Any) -> dict[str, Any]:
    axis = {
        "gridcolor": "#edf0f4",
        "zeroline": False,
        "automargin": True,
        "linecolor": "#cfd6df",
        "tickfont": {"size": 10},
    }
    layout: dict[str, Any] = {
        "height": height,
        "margin": {"l": 8, "r": 12, "t": 6, "b": 8},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "font": {"family": _FONT, "size": 11, "color": "#46505c"},
        "showlegend": False,
        "hoverlabel": {"font": {"family": _FONT, "size": 12}},
        "xaxis": dict(axis, showline=True),
        "yaxis": dict(axis),
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(layout.get(key), dict):
            layout[key] = {**layout[key], **value}
        else:
            layout[key] = value
    return layout


def _column_figure(column: ColumnProfile, element: str) -> dict[str, Any] | None:
    color = _TYPE_COLORS[column.type]
    if column.histogram is not None and column.histogram.counts:
        return _histogram_figure(column, column.histogram, element, color)
    if column.top:
        return _bars_figure(column, element, color)
    return None


def _histogram_figure(
    column: ColumnProfile, histogram: Histogram, element: str, color: str
) -> dict[str, Any] | None:
    temporal = column.type == "datetime"
    try:
        edges = [_wall_milliseconds(e) if temporal else float(e) for e in histogram.edges]
    except (TypeError, ValueError):
        return None
    labels = [_display(column, edge) for edge in histogram.edges]
    trace = {
        "type": "bar",
        "x": [(low + high) / 2 for low, high in itertools.pairwise(edges)],
        "y": list(histogram.counts),
        "width": [high - low for low, high in itertools.pairwise(edges)],
        "customdata": [[low, high] for low, high in itertools.pairwise(labels)],
        "hovertemplate": "%{customdata[0]} \u2013 %{customdata[1]}<br>%{y:,} rows<extra></extra>",
        "marker": {"color": color, "opacity": 0.88, "line": {"color": "#ffffff", "width": 1}},
    }
    xaxis: dict[str, Any] = {"type": "date"} if temporal else {}
    layout = _layout(210, xaxis=xaxis, yaxis={"rangemode": "tozero"})
    return {"id": element, "data": [trace], "layout": layout}


def _bars_figure(column: ColumnProfile, element: str, color: str) -> dict[str, Any]:
    values = [
        ("true" if value else "false") if isinstance(value, bool) else value
        for value, _ in column.top
    ]
    labels = _short_labels(values)
    counts = [count for _, count in column.top]
    shares = [count / column.count if column.count else 0.0 for count in counts]
    hover = [value[:_HOVER_CHARACTERS] for value in values]
    trace = {
        "type": "bar",
        "orientation": "h",
        "y": labels,
        "x": counts,
        "customdata": [[share, text] for share, text in zip(shares, hover, strict=True)],
        "texttemplate": "%{x:,}",
        "textposition": "outside",
        "cliponaxis": False,
        "hovertemplate": "%{customdata[1]}<br>%{x:,} rows (%{customdata[0]:.1%})<extra></extra>",
        "marker": {"color": color, "opacity": 0.88},
    }
    layout = _layout(
        max(130, 34 + 24 * len(labels)),
        bargap=0.25,
        margin={"r": 48},
        xaxis={"rangemode": "tozero", "showline": False},
        yaxis={"type": "category", "autorange": "reversed", "gridcolor": "rgba(0,0,0,0)"},
    )
    return {"id": element, "data": [trace], "layout": layout}


def _heatmap_figure(correlations: Correlations, element: str) -> dict[str, Any] | None:
    size = len(correlations.columns)
    if size < 2:
        return None
    names = _short_labels(correlations.columns)
    trace: dict[str, Any] = {
        "type": "heatmap",
        "z": correlations.matrix,
        "x": names,
        "y": names,
        "zmin": -1,
        "zmax": 1,
        "colorscale": [[0.0, "#b2182b"], [0.5, "#f7f7f7"], [1.0, "#2166ac"]],
        "xgap": 2,
        "ygap": 2,
        "hovertemplate": "%{y} · %{x}<br>r = %{z:.3f}<extra></extra>",
        "colorbar": {"thickness": 12, "outlinewidth": 0, "len": 0.9},
    }
    if size <= _HEATMAP_LABELLED:
        trace["texttemplate"] = "%{z:.2f}"
        trace["textfont"] = {"size": 11}
    layout = _layout(
        _HEATMAP_MARGIN + size * _heatmap_cell(size),
        xaxis={"type": "category", "showline": False, "gridcolor": "rgba(0,0,0,0)"},
        yaxis={"type": "category", "autorange": "reversed", "gridcolor": "rgba(0,0,0,0)"},
    )
    return {"id": element, "data": [trace], "layout": layout}


def _short_labels(texts: list[str]) -> list[str]:
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


def _heatmap_cell(size: int) -> int:
    """Pixels per heatmap cell: roomy for a few columns, small but legible for many."""
    return max(14, min(64, 640 // size))


def _correlations_section(result: DatasetProfile, *, drawn: bool) -> str:
    correlations = result.correlations
    if not drawn:
        body = '<p class="empty">Correlations need at least two numeric columns with values.</p>'
    else:
        size = len(correlations.columns)
        width = _HEATMAP_MARGIN + 120 + size * _heatmap_cell(size)
        sampled = (
            f" on a uniform sample of {correlations.rows:,} of {result.rows:,} rows"
            if correlations.rows < result.rows
            else f" over {correlations.rows:,} rows"
        )
        undefined = any(value is None for row in correlations.matrix for value in row)
        blank = "; blank cells are undefined (a constant column)" if undefined else ""
        body = (
            f'<p class="muted small">Pearson correlation between numeric columns{sampled}'
            f"{blank}.</p>"
            f'<div class="chart heatmap" id="chart-correlations" style="max-width:{width}px" '
            'role="img" aria-label="Correlation heatmap"></div>'
        )
    return f'<section class="section"><h2>Correlations</h2><div class="card">{body}</div></section>'


_DRAW_JS = """
(function () {
  "use strict";
  var figures = JSON.parse(document.getElementById("loopml-figures").textContent);
  var config = JSON.parse(document.getElementById("loopml-plot-config").textContent);
  Promise.all(figures.map(function (figure) {
    return Plotly.newPlot(figure.id, figure.data, figure.layout, config);
  })).then(function () {
    document.body.setAttribute("data-charts", "drawn");
  }, function (error) {
    document.body.setAttribute("data-charts", "failed");
    console.error("loopml: a chart failed to draw", error);
  });
})();
"""

_CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f4f6f9; color: #1f2933; font: 14px/1.5 FONT; }
.page { max-width: 1240px; margin: 0 auto; padding: 28px 24px 40px; }
h1 { font-size: 24px; margin: 0 0 16px; letter-spacing: -0.01em; }
h2 { font-size: 17px; margin: 0 0 12px; }
h3 { font-size: 15px; margin: 0; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.section { margin-top: 28px; }
.muted { color: #64707d; }
.small { font-size: 12.5px; margin: 4px 0 8px; }
.tiles { display: flex; flex-wrap: wrap; gap: 12px; margin-bottom: 12px; }
.tile { background: #fff; border: 1px solid #e2e6ec; border-radius: 10px; padding: 12px 18px;
  min-width: 140px; }
.tile-value { font-size: 22px; font-weight: 650; font-variant-numeric: tabular-nums; }
.tile-label { color: #64707d; font-size: 12px; text-transform: uppercase;
  letter-spacing: 0.05em; }
.types { display: flex; flex-wrap: wrap; gap: 6px; }
.badge { display: inline-block; border-radius: 999px; padding: 1px 9px; font-size: 11.5px;
  font-weight: 600; white-space: nowrap; }
.badge-numeric { background: #e5edfb; color: #2a56ad; }
.badge-datetime { background: #efe8fa; color: #643bb0; }
.badge-categorical { background: #fcebdf; color: #b35015; }
.badge-bool { background: #def3e9; color: #1b7a4f; }
.badge-text { background: #e9ecf0; color: #4c5764; }
.table-wrap { overflow-x: auto; background: #fff; border: 1px solid #e2e6ec;
  border-radius: 10px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { padding: 7px 12px; text-align: left; border-bottom: 1px solid #eef1f4;
  white-space: nowrap; }
th { background: #f8f9fb; color: #56616d; font-weight: 600; font-size: 12px; }
tbody tr:last-child td { border-bottom: none; }
tbody tr:hover { background: #f8fafc; }
td.num, th:nth-child(n+3) { text-align: right; font-variant-numeric: tabular-nums; }
td.name { max-width: 280px; overflow: hidden; text-overflow: ellipsis; }
td.name a { color: #1f2933; font-weight: 600; text-decoration: none; }
td.name a:hover { text-decoration: underline; }
.meter { display: inline-block; width: 46px; height: 6px; margin-right: 8px;
  vertical-align: middle; background: #edf0f3; border-radius: 3px; overflow: hidden; }
.meter span { display: block; height: 100%; background: #e0525a; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr));
  gap: 16px; }
.card { background: #fff; border: 1px solid #e2e6ec; border-radius: 10px; padding: 14px 16px;
  min-width: 0; }
.card-head { display: flex; align-items: center; justify-content: space-between; gap: 8px; }
.chart { width: 100%; min-height: 120px; }
.facts { display: grid; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: 6px 12px;
  margin: 10px 0 0; }
.facts.wide { grid-template-columns: repeat(2, minmax(0, 1fr)); }
.fact { min-width: 0; }
.fact dt { color: #7a8591; font-size: 11px; text-transform: uppercase;
  letter-spacing: 0.04em; }
.fact dd { margin: 0; font-size: 13px; font-variant-numeric: tabular-nums;
  overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.empty { color: #7a8591; background: #f8f9fb; border-radius: 8px; padding: 18px;
  text-align: center; font-size: 13px; }
.footer { margin-top: 32px; color: #8a949f; font-size: 12px; text-align: center; }
""".replace("FONT", _FONT)
