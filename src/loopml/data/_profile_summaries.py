"""The mergeable per-column summaries that ``profile()`` folds, chunk by chunk, into a profile.

Internal: use ``loopml.data.profile``, whose docstring states what is exact and what is
estimated. It runs past ~400 lines because the accumulators, sketches and the column and
dataset builders that combine them are one engine, each piece used only by the next.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from loopml.data.profile import QUANTILES, ColumnProfile, Correlations, DatasetProfile, Histogram
from loopml.errors import ValidationError

__all__ = ["ProfileBuilder"]

_Floats = npt.NDArray[np.float64]
_Ints = npt.NDArray[np.int64]

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


# -- reading columns ---------------------------------------------------------------------


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


class ProfileBuilder:
    """Merges the chunks of one dataset into a ``DatasetProfile``."""

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
