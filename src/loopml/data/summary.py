"""Mergeable, pre-binned per-column summaries of a table: the inputs of drift statistics.

A :class:`FrameSummary` holds one :class:`ColumnSummary` per column:

- numeric columns: bin edges taken from the reference's quantiles (``bins`` fine bins,
  deduplicated, so a column of few distinct values gets one bin per value and a constant
  column one bin), the count in each bin plus an underflow and an overflow bin, and the
  row count, missing count, mean, std, min and max;
- categorical columns (strings, bools, pandas categoricals, and any column named in
  ``categorical=``): the count of each of the ``top`` most frequent categories, an
  "other" count for the rest, and the missing count.

A current window is summarised *like* the reference (``summarize(current, like=ref)``):
with the reference's edges and categories, so the two are comparable bin by bin, and
windows merge by adding counts (:meth:`FrameSummary.merge`). Categories a window holds
that the reference does not list are counted in "other" and, the ``top`` most frequent of
them by name, in ``ColumnSummary.unseen``.

Bin counts are exact. Edges come from a strided sample of at most ~100,000 values per
column (they only need to be close to quantiles, not equal to them); mean and std are over
the finite values and merge with Chan's parallel formula. Datetime columns are summarised
(as epoch seconds) only when named in ``columns=``; other types (lists, structs, binary)
are skipped unless named, which is an error.

A summary is small (a few KB per column) and JSON-able (:meth:`FrameSummary.to_dict`), so
it is what a model version stores as its reference profile. It never holds rows.

The module runs past ~400 lines because reading columns, binning, tallying and the
chunked builder are one engine behind two small dataclasses, each piece used only here.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from loopml.errors import ValidationError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ColumnSummary", "FrameSummary", "summarize", "summarize_chunks"]

Kind = Literal["numeric", "categorical"]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

FORMAT_VERSION = 1
DEFAULT_BINS = 200
DEFAULT_TOP = 50
_EDGE_SAMPLE = 65_536  # values the edges are computed from (a strided sample)
_EDGE_DIGITS = 6  # significant digits kept in interior edges: compact JSON, same bins
_GRID = 1 << 16  # cells of the lookup grid that bins values without a binary search
_FIRST_CHUNK_ROWS = 100_000  # summarize_chunks takes edges from at least this many rows
_TALLY_LIMIT = 100_000  # distinct categories tallied across chunks before dropping the rarest
_NS_PER_SECOND = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}


# -- the summaries -------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ColumnSummary:
    """The binned distribution of one column in one window.

    Attributes:
        name: The column's name.
        kind: ``numeric`` or ``categorical``.
        dtype: The source type, as Arrow names it (``double``, ``string``, ``bool``).
        rows: Rows in the window, missing ones included.
        missing: Rows with no value (null, NaN, None).
        counts: Rows per bin. Numeric: ``len(edges) + 1`` bins: underflow (below
            ``edges[0]``), ``[edges[i], edges[i + 1])`` for each i, overflow (at or above
            ``edges[-1]``). Categorical: one per category, then "other".
        edges: Numeric bin edges, increasing; the reference's min is the first and the
            smallest float above its max the last, so reference rows never under- or
            overflow. Empty when the reference had no finite value.
        categories: Categorical: the categories counted by name, most frequent first in
            the reference.
        complete: Categorical: whether the reference listed every category it held (its
            "other" count is zero), so a value outside ``categories`` is new.
        unseen: Categorical: counts of values outside the reference's categories, by name
            (the ``top`` most frequent); they are also in the "other" count.
        mean: Mean of the finite values; None when there are none.
        std: Population standard deviation of the finite values; None when there are none.
        min: Smallest value (infinities included); None when there are none.
        max: Largest value; None when there are none.
        finite: Number of finite values behind ``mean`` and ``std``.
    """

    name: str
    kind: Kind
    dtype: str
    rows: int
    missing: int
    counts: IntArray
    edges: FloatArray = field(default_factory=lambda: np.empty(0))
    categories: tuple[str, ...] = ()
    complete: bool = True
    unseen: dict[str, int] = field(default_factory=dict)
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    finite: int = 0

    @property
    def present(self) -> int:
        """Rows with a value."""
        return self.rows - self.missing

    @property
    def missing_share(self) -> float:
        """Share of rows with no value; 0.0 for an empty window."""
        return self.missing / self.rows if self.rows else 0.0

    def same_binning(self, other: ColumnSummary) -> bool:
        """Whether ``other`` has this summary's kind, edges and categories (so counts add)."""
        return (
            self.kind == other.kind
            and self.categories == other.categories
            and self.edges.shape == other.edges.shape
            and bool(np.array_equal(self.edges, other.edges))
        )

    def merge(self, other: ColumnSummary, *, top: int = DEFAULT_TOP) -> ColumnSummary:
        """The summary of both windows' rows together.

        Raises:
            ValidationError: The two were binned differently; summarise one ``like`` the other.
        """
        if not self.same_binning(other):
            raise ValidationError(
                f"Cannot merge summaries of column {self.name!r}: they have different bins or "
                "categories. Summarise the second window with like=<the first's summary>."
            )
        finite = self.finite + other.finite
        mean = std = None
        if finite:
            a_mean, a_var = self.mean or 0.0, (self.std or 0.0) ** 2
            b_mean, b_var = other.mean or 0.0, (other.std or 0.0) ** 2
            delta = b_mean - a_mean
            mean = a_mean + delta * other.finite / finite
            m2 = (
                a_var * self.finite
                + b_var * other.finite
                + delta * delta * self.finite * other.finite / finite
            )
            std = math.sqrt(max(m2 / finite, 0.0))
        unseen = dict(self.unseen)
        for name, count in other.unseen.items():
            unseen[name] = unseen.get(name, 0) + count
        return replace(
            self,
            rows=self.rows + other.rows,
            missing=self.missing + other.missing,
            counts=self.counts + other.counts,
            unseen=_top_counts(unseen, top),
            mean=mean,
            std=std,
            min=_extreme(min, self.min, other.min),
            max=_extreme(max, self.max, other.max),
            finite=finite,
        )

    def to_dict(self) -> dict[str, Any]:
        """A plain JSON-able dict; :meth:`from_dict` reads it back."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "dtype": self.dtype,
            "rows": self.rows,
            "missing": self.missing,
            "counts": [int(count) for count in self.counts],
        }
        if self.kind == "numeric":
            out["edges"] = [float(edge) for edge in self.edges]
            out.update(mean=self.mean, std=self.std, min=_json_float(self.min))
            out.update(max=_json_float(self.max), finite=self.finite)
        else:
            out.update(categories=list(self.categories), complete=self.complete)
            if self.unseen:
                out["unseen"] = dict(self.unseen)
        return out

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> ColumnSummary:
        """Reads a column summary written by :meth:`to_dict`."""
        try:
            kind = data["kind"]
            if kind not in ("numeric", "categorical"):
                raise ValueError(f"unknown kind {kind!r}")
            counts = np.asarray(data["counts"], dtype=np.int64)
            edges = np.asarray(data.get("edges", []), dtype=np.float64)
            categories = tuple(str(value) for value in data.get("categories", ()))
            size = len(edges) + 1 if kind == "numeric" else len(categories) + 1
            if counts.shape != (size,):
                raise ValueError(f"{len(counts)} counts for {size} bins")
            return cls(
                name=name,
                kind=kind,
                dtype=str(data.get("dtype", "")),
                rows=int(data["rows"]),
                missing=int(data["missing"]),
                counts=counts,
                edges=edges,
                categories=categories,
                complete=bool(data.get("complete", True)),
                unseen={str(k): int(v) for k, v in data.get("unseen", {}).items()},
                mean=_optional_float(data.get("mean")),
                std=_optional_float(data.get("std")),
                min=_optional_float(data.get("min")),
                max=_optional_float(data.get("max")),
                finite=int(data.get("finite", 0)),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValidationError(
                f"The stored summary of column {name!r} is malformed ({error}); recompute the "
                "reference profile with loopml.data.summary.summarize."
            ) from error


@dataclass(frozen=True, eq=False)
class FrameSummary:
    """Per-column summaries of one window of rows; see the module docstring.

    Attributes:
        rows: Rows in the window.
        columns: The summaries, by column name, in the data's column order.
    """

    rows: int
    columns: dict[str, ColumnSummary]

    def __getitem__(self, name: str) -> ColumnSummary:
        return self.columns[name]

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)

    def merge(self, other: FrameSummary, *, top: int = DEFAULT_TOP) -> FrameSummary:
        """The summary of both windows' rows; both must have the same columns and binning.

        Raises:
            ValidationError: The columns differ, or a column was binned differently.
        """
        if list(self.columns) != list(other.columns):
            raise ValidationError(
                "Cannot merge summaries of different columns: "
                f"{sorted(set(self.columns) ^ set(other.columns))} are in only one. "
                "Summarise both windows with the same columns= and like=."
            )
        merged = {
            name: column.merge(other.columns[name], top=top)
            for name, column in self.columns.items()
        }
        return FrameSummary(rows=self.rows + other.rows, columns=merged)

    def to_dict(self) -> dict[str, Any]:
        """A plain JSON-able dict (a few KB per column); :meth:`from_dict` reads it back."""
        return {
            "format": FORMAT_VERSION,
            "rows": self.rows,
            "columns": {name: column.to_dict() for name, column in self.columns.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FrameSummary:
        """Reads a summary written by :meth:`to_dict`.

        Raises:
            ValidationError: The dict is not a summary, or was written by a newer loopml.
        """
        if not isinstance(data, Mapping) or not isinstance(data.get("columns"), Mapping):
            raise ValidationError(
                "A frame summary dict needs a 'columns' mapping; pass what "
                "FrameSummary.to_dict() returned."
            )
        version = data.get("format", FORMAT_VERSION)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ValidationError(
                f"This summary has format {version!r}, newer than this loopml reads "
                f"({FORMAT_VERSION}); upgrade loopml."
            )
        columns = {
            str(name): ColumnSummary.from_dict(str(name), column)
            for name, column in data["columns"].items()
        }
        return cls(rows=int(data.get("rows", 0)), columns=columns)


# -- public functions ------------------------------------------------------------------------


def summarize(
    data: pd.DataFrame | pa.Table | pa.RecordBatch,
    columns: Sequence[str] | None = None,
    *,
    like: FrameSummary | None = None,
    categorical: Iterable[str] | None = None,
    bins: int = DEFAULT_BINS,
    top: int = DEFAULT_TOP,
) -> FrameSummary:
    """Summarises a table's columns into mergeable binned summaries.

    Args:
        data: A pandas DataFrame, a pyarrow Table or a RecordBatch.
        columns: The columns to summarise; default: every numeric, bool, string and
            categorical column (datetimes and nested types are left out unless named).
            With ``like``, default: the reference's columns that ``data`` has (a missing
            one is left out, so the caller can report it).
        like: A reference summary: bin numeric columns on its edges and count categorical
            columns over its categories, so the result compares with it and merges with
            other windows summarised like it. ``categorical``, ``bins`` and ``top`` then
            come from it (``top`` still bounds ``unseen``).
        categorical: Columns to treat as categorical even though numeric (say, a
            low-cardinality integer code).
        bins: Fine bins per numeric column (at most; ties merge bins).
        top: Categories counted by name per categorical column; the rest are "other".

    Returns:
        The summary, one entry per column.

    Raises:
        ValidationError: A named column is missing or of an unsupported type; a column is
            numeric in ``like`` but holds text that is not numbers here; bad ``bins``/``top``.

    Example:
        >>> import pandas as pd
        >>> reference = summarize(pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]}))
        >>> current = summarize(pd.DataFrame({"x": [2.5, None], "c": ["a", "z"]}), like=reference)
        >>> current["x"].missing, current["c"].unseen
        (1, {'z': 1})
    """
    _check_count("bins", bins, minimum=1)
    _check_count("top", top, minimum=1)
    table = _as_table(data)
    names = _select(table, columns, like, set(categorical or ()))
    summaries: dict[str, ColumnSummary] = {}
    scratch = _Scratch()
    for name, kind in names.items():
        array = _column(table, name)
        if like is not None:
            summaries[name] = _summarize_like(name, array, like[name], top, scratch)
        elif kind == "numeric":
            summaries[name] = _numeric(name, array, None, bins, scratch)
        else:
            summaries[name] = _categorical_reference(name, _tally(array), array, top)
    return FrameSummary(rows=table.num_rows, columns=summaries)


def summarize_chunks(
    chunks: Iterable[pd.DataFrame | pa.Table | pa.RecordBatch],
    columns: Sequence[str] | None = None,
    *,
    like: FrameSummary | None = None,
    categorical: Iterable[str] | None = None,
    bins: int = DEFAULT_BINS,
    top: int = DEFAULT_TOP,
) -> FrameSummary:
    """Summarises a table given chunk by chunk (DataFrames, Tables, RecordBatches).

    Memory is bounded by one chunk plus the summaries, so a window larger than memory can
    be summarised straight from Parquet row batches. With ``like``, every chunk is binned on
    the reference's edges and the result equals ``summarize`` of the concatenated rows.
    Without it, numeric edges come from the first chunks (at least 100,000 rows, or all of
    them), so later values outside that range land in the under- or overflow bin, and
    category counts are exact until a column has more than 100,000 distinct values (then
    the rarest are dropped, and a dropped value that comes back is undercounted).

    Args:
        chunks: The chunks, each with the same columns.
        columns: As in :func:`summarize`.
        like: As in :func:`summarize`.
        categorical: As in :func:`summarize`.
        bins: As in :func:`summarize`.
        top: As in :func:`summarize`.

    Returns:
        The summary of all the chunks' rows.

    Raises:
        ValidationError: No chunks, or as in :func:`summarize`.
    """
    iterator = iter(chunks)
    if like is None:
        pending: list[pa.Table] = []
        pending_rows = 0
        for chunk in iterator:
            table = _as_table(chunk)
            pending.append(table)
            pending_rows += table.num_rows
            if pending_rows >= _FIRST_CHUNK_ROWS:
                break
        if not pending:
            raise ValidationError("summarize_chunks() got no chunks; pass at least one table.")
        first = _concat(pending)
        like = summarize(first, columns, categorical=categorical, bins=bins, top=top)
        result = _retally(like, first, top)
        tallies = _Tallies(result, top)
        for chunk in iterator:
            tallies.add(_as_table(chunk))
        return tallies.finish()
    result_or_none: FrameSummary | None = None
    for chunk in iterator:
        part = summarize(_as_table(chunk), columns, like=like, top=top)
        result_or_none = part if result_or_none is None else result_or_none.merge(part, top=top)
    if result_or_none is None:
        raise ValidationError("summarize_chunks() got no chunks; pass at least one table.")
    return result_or_none


# -- reading tables ---------------------------------------------------------------------------


def _check_count(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValidationError(
            f"The {name!r} parameter of summarize must be an int >= {minimum}. "
            f"Got {value!r} instead."
        )


def _as_table(data: object) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return _table_from_frame(data)
    raise ValidationError(
        "summarize() takes a pandas DataFrame, a pyarrow Table or a RecordBatch; "
        f"got {type(data).__name__}."
    )


def _table_from_frame(frame: pd.DataFrame) -> pa.Table:
    """The frame as Arrow columns, column by column: NaN becomes null, mixed objects text."""
    import pandas as pd

    names = [str(name) for name in frame.columns]
    if len(set(names)) != len(names):
        raise ValidationError("Column names must be unique to summarise a frame; rename them.")
    arrays = []
    for _, series in frame.items():
        if isinstance(series.dtype, np.dtype) and series.dtype.kind == "f":
            # Zero-copy: NaN stays NaN, which the numeric path counts as missing.
            arrays.append(pa.array(series.to_numpy(), from_pandas=False))
            continue
        try:
            arrays.append(pa.Array.from_pandas(series))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            text = series.astype(str).where(series.notna(), None)
            arrays.append(pa.Array.from_pandas(pd.Series(text, dtype=object), type=pa.string()))
    return pa.Table.from_arrays(arrays, names=names)


def _concat(tables: list[pa.Table]) -> pa.Table:
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="default")


def _family(data_type: pa.DataType) -> str:
    types = pa.types
    if types.is_dictionary(data_type) or types.is_boolean(data_type):
        return "categorical"
    if types.is_string(data_type) or types.is_large_string(data_type):
        return "categorical"
    if hasattr(types, "is_string_view") and types.is_string_view(data_type):
        return "categorical"
    if types.is_integer(data_type) or types.is_floating(data_type) or types.is_decimal(data_type):
        return "numeric"
    if types.is_null(data_type):
        return "numeric"  # an all-missing column: nothing to bin, only a missing count
    if types.is_timestamp(data_type) or types.is_date(data_type) or types.is_duration(data_type):
        return "datetime"
    return "other"


def _select(
    table: pa.Table,
    columns: Sequence[str] | None,
    like: FrameSummary | None,
    categorical: set[str],
) -> dict[str, Kind]:
    """The columns to summarise and their kind."""
    present = set(table.column_names)
    if like is not None:
        wanted = list(like.columns) if columns is None else list(columns)
        unknown = [name for name in wanted if name not in like.columns]
        if unknown:
            raise ValidationError(
                f"Columns {unknown} are not in the reference summary; it has "
                f"{list(like.columns)}. Summarise the reference with them first."
            )
        if columns is not None:
            _require(present, wanted)
        return {name: like[name].kind for name in wanted if name in present}
    explicit = columns is not None
    wanted = list(columns) if columns is not None else list(table.column_names)
    _require(present, wanted + sorted(name for name in categorical if explicit))
    kinds: dict[str, Kind] = {}
    for name in wanted:
        family = _family(table.schema.field(name).type)
        if name in categorical or family == "categorical":
            kinds[name] = "categorical"
        elif family == "numeric" or (family == "datetime" and explicit):
            kinds[name] = "numeric"
        elif explicit:
            raise ValidationError(
                f"Column {name!r} has type {table.schema.field(name).type}, which drift "
                "summaries cannot bin; leave it out of columns= or cast it to numbers or text."
            )
    return kinds


def _require(present: set[str], wanted: Iterable[str]) -> None:
    missing = [name for name in wanted if name not in present]
    if missing:
        raise ValidationError(f"Columns {missing} are not in the data; check columns=.")


def _column(table: pa.Table, name: str) -> pa.Array:
    column = table.column(name)
    if column.num_chunks == 1:
        return column.chunk(0)
    if column.num_chunks == 0:
        return pa.array([], type=column.type)
    return column.combine_chunks()


def _floats(array: pa.Array, name: str) -> FloatArray:
    """The values as float64 with NaN for missing; datetimes in epoch seconds."""
    data_type = array.type
    if pa.types.is_dictionary(data_type):
        array = array.dictionary_decode()
        data_type = array.type
    if pa.types.is_floating(data_type) and data_type == pa.float64() and array.null_count == 0:
        return np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.float64)
    scale = 1.0
    if pa.types.is_timestamp(data_type) or pa.types.is_duration(data_type):
        scale = 1.0 / _NS_PER_SECOND[data_type.unit]
        array = pc.cast(array, pa.int64())
    elif pa.types.is_date32(data_type):
        scale, array = 86_400.0, pc.cast(array, pa.int32())
    elif pa.types.is_date64(data_type):
        scale, array = 1e-3, pc.cast(array, pa.int64())
    elif _family(data_type) == "categorical":
        array = _parse_numbers(array, name)
    elif pa.types.is_null(data_type):
        return np.full(len(array), np.nan)
    values = pc.cast(array, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
    floats = np.asarray(values, dtype=np.float64)
    return floats * scale if scale != 1.0 else floats


def _parse_numbers(array: pa.Array, name: str) -> pa.Array:
    """Text that is all numbers, as numbers; anything else is a dtype mismatch."""
    if pa.types.is_boolean(array.type):
        return pc.cast(array, pa.int8())
    try:
        return pc.cast(pc.utf8_trim_whitespace(array), pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise ValidationError(
            f"Column {name!r} is numeric in the reference but holds text that is not a number "
            f"here ({array.type}). Cast it to numbers (pandas.to_numeric), or summarise it as "
            "categorical in both (categorical=[...])."
        ) from error


# -- numeric columns ------------------------------------------------------------------------


def _numeric(
    name: str,
    array: pa.Array,
    reference: ColumnSummary | None,
    bins: int,
    scratch: _Scratch | None = None,
) -> ColumnSummary:
    scratch = scratch or _Scratch()
    values = _floats(array, name)
    nan = np.isnan(values)
    missing = int(np.count_nonzero(nan))
    present = values[~nan] if missing else values
    smallest = largest = None
    if present.size:
        smallest, largest = float(present.min()), float(present.max())
    finite_values = present
    if present.size and not (math.isfinite(smallest or 0.0) and math.isfinite(largest or 0.0)):
        finite_values = present[np.isfinite(present)]
    mean: float | None = None
    std: float | None = None
    low = high = math.nan
    if finite_values.size:
        mean = float(finite_values.mean())
        deviations = np.subtract(finite_values, mean, out=scratch.floats(finite_values.size))
        # dot (BLAS) over the deviations: one pass fewer than ndarray.std, as exact.
        std = math.sqrt(float(np.dot(deviations, deviations)) / finite_values.size)
        if finite_values is present:
            low, high = smallest or 0.0, largest or 0.0
        else:
            low, high = float(finite_values.min()), float(finite_values.max())
    edges = _edges(finite_values, low, high, bins) if reference is None else reference.edges
    counts = _bin_counts(values, edges, missing, scratch)
    return ColumnSummary(
        name=name,
        kind="numeric",
        dtype=str(array.type),
        rows=len(values),
        missing=missing,
        counts=counts,
        edges=edges,
        mean=mean,
        std=std,
        min=smallest,
        max=largest,
        finite=int(finite_values.size),
    )


def _edges(values: FloatArray, low: float, high: float, bins: int) -> FloatArray:
    """Reference-quantile bin edges: [min, rounded interior quantiles..., just above max]."""
    if not values.size:
        return np.empty(0)
    top = math.nextafter(high, math.inf)
    if bins == 1 or low == high:
        return np.array([low, top])
    step = max(1, values.size // _EDGE_SAMPLE)
    sample = np.sort(values[::step])  # a sort of 65k values beats a 199-way partition
    positions = np.linspace(0.0, 1.0, bins + 1)[1:-1] * (sample.size - 1)
    below = np.floor(positions).astype(np.intp)
    above = np.minimum(below + 1, sample.size - 1)
    interior = sample[below] + (positions - below) * (sample[above] - sample[below])
    # Digits relative to the spread, so values like 1e6 + [0, 1) keep their bins.
    digits = _EDGE_DIGITS + max(0, math.ceil(math.log10(max(abs(low), abs(high)) / (high - low))))
    rounded = np.array([float(f"{edge:.{min(digits, 17)}g}") for edge in interior])
    rounded = np.unique(rounded[(rounded > low) & (rounded <= high)])
    return np.concatenate([[low], rounded, [top]])


class _Scratch:
    """Reusable work arrays: a fresh 8 MB array per step and column costs page faults."""

    def __init__(self) -> None:
        self._floats = np.empty(0)
        self._ints = np.empty(0, dtype=np.intp)

    def floats(self, size: int) -> FloatArray:
        if self._floats.size < size:
            self._floats = np.empty(size)
        return self._floats[:size]

    def ints(self, size: int) -> npt.NDArray[np.intp]:
        if self._ints.size < size:
            self._ints = np.empty(size, dtype=np.intp)
        return self._ints[:size]


def _bin_counts(
    values: FloatArray, edges: FloatArray, missing: int, scratch: _Scratch | None = None
) -> IntArray:
    """Rows per bin (missing ones left out): a lookup grid, binary search only near edges.

    ``np.searchsorted`` over a million values costs ~50 ms a column (a branchy binary
    search per value). Instead values are counted per cell of a uniform grid over the
    central edges, and the cells' counts added to their bins through a table; only values
    in cells an edge cuts, and values outside the grid, are searched.
    """
    size = len(edges) + 1
    if not len(edges):
        return np.array([len(values) - missing], dtype=np.int64)
    grid = _grid(edges.tobytes())
    if grid is None:
        counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=size)
    else:
        scratch = scratch or _Scratch()
        low, scale, table, cut = grid
        cells = np.multiply(values, scale, out=scratch.floats(len(values)))
        cells += 1.0 - low * scale  # the cell of value v is 1 + (v - low) * scale
        np.clip(cells, 0.0, len(table) - 1, out=cells)
        if missing:
            cells[np.isnan(cells)] = len(table) - 1  # searched below: NaN sorts last
        index = scratch.ints(len(values))
        np.copyto(index, cells, casting="unsafe")
        per_cell = np.bincount(index, minlength=len(table))
        whole = ~cut
        counts = np.bincount(table[whole], weights=per_cell[whole], minlength=size)
        counts = np.rint(counts).astype(np.int64)
        searched = values[np.flatnonzero(cut[index])]
        counts += np.bincount(np.searchsorted(edges, searched, side="right"), minlength=size)
    counts = counts.astype(np.int64)
    counts[-1] -= missing  # NaN lands in the overflow bin
    return counts


@functools.lru_cache(maxsize=256)
def _grid(
    edge_bytes: bytes,
) -> tuple[float, float, npt.NDArray[np.intp], npt.NDArray[np.bool_]] | None:
    """(low, cells per unit, bin of each cell, whether an edge cuts it) for some edges.

    Cached by the edges' bytes: a reference's grid serves every window binned like it.
    """
    edges = np.frombuffer(edge_bytes, dtype=np.float64)
    inner = len(edges) // 100  # the outer 1 % of edges on each side are searched
    low, high = float(edges[inner]), float(edges[len(edges) - 1 - inner])
    span = high - low
    if not span > 0 or not math.isfinite(span):
        return None
    integral = 1 <= span <= _GRID and bool(np.all(edges[:-1] == np.round(edges[:-1])))
    if integral:
        # Integer edges fall exactly on cell starts, so only the top edge cuts a cell.
        scale, margin = float(_GRID // int(span)), 0.0
    else:
        scale, margin = _GRID / span, 0.01
        if span / _GRID < 1_000 * math.ulp(max(abs(low), abs(high))):
            return None  # cells finer than rounding error: search everything
    cells = math.ceil(span * scale)
    starts = low + np.arange(cells + 1) / scale
    first = np.searchsorted(edges, starts[:-1] - margin / scale, side="right")
    last = np.searchsorted(edges, starts[1:] + margin / scale, side="left")
    table = np.zeros(cells + 2, dtype=np.intp)
    cut = np.ones(cells + 2, dtype=bool)  # the two outer cells: below and above the grid
    table[1:-1] = first
    cut[1:-1] = first != last
    return low, scale, table, cut


# -- categorical columns ----------------------------------------------------------------------


def _tally(array: pa.Array) -> tuple[list[str], IntArray, int]:
    """(distinct values as text, their counts, missing count) of one column."""
    if pa.types.is_dictionary(array.type):
        indices = array.indices
        valid = indices.drop_null() if indices.null_count else indices
        counts = np.bincount(
            np.asarray(valid.to_numpy(zero_copy_only=False), dtype=np.intp),
            minlength=len(array.dictionary),
        )
        names = _as_text(array.dictionary)
        keep = counts > 0
        missing = array.null_count
        return [n for n, k in zip(names, keep, strict=True) if k], counts[keep], missing
    if not len(array):
        return [], np.zeros(0, dtype=np.int64), 0
    tallied = pc.value_counts(array)
    values = tallied.field("values")
    counts = np.asarray(tallied.field("counts").to_numpy(zero_copy_only=False), dtype=np.int64)
    if values.null_count:
        valid = np.asarray(values.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        values, counts = values.filter(pa.array(valid)), counts[valid]
    missing = array.null_count
    if pa.types.is_floating(array.type):  # NaN is a value to Arrow, missing to us
        is_nan = np.asarray(pc.is_nan(values).to_numpy(zero_copy_only=False), dtype=bool)
        missing += int(counts[is_nan].sum())
        values, counts = values.filter(pa.array(~is_nan)), counts[~is_nan]
    return _as_text(values), counts, missing


def _as_text(values: pa.Array) -> list[str]:
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        values = pc.cast(values, pa.string())
    return [str(value) for value in values.to_pylist()]


def _combine(names: list[str], counts: IntArray) -> tuple[list[str], IntArray]:
    """Adds up counts of names that are equal as text (1 and "1"; dictionaries with repeats)."""
    if len(set(names)) == len(names):
        return names, counts
    merged: dict[str, int] = {}
    for name, count in zip(names, counts.tolist(), strict=True):
        merged[name] = merged.get(name, 0) + count
    return list(merged), np.array(list(merged.values()), dtype=np.int64)


def _categorical_reference(
    name: str, tally: tuple[list[str], IntArray, int], array: pa.Array, top: int
) -> ColumnSummary:
    names, counts, missing = tally
    names, counts = _combine(names, counts)
    order = sorted(range(len(names)), key=lambda i: (-int(counts[i]), names[i]))
    kept = order[:top]
    other = int(counts.sum() - counts[kept].sum()) if len(names) else 0
    return ColumnSummary(
        name=name,
        kind="categorical",
        dtype=str(array.type),
        rows=int(counts.sum()) + missing,
        missing=missing,
        counts=np.array([int(counts[i]) for i in kept] + [other], dtype=np.int64),
        categories=tuple(names[i] for i in kept),
        complete=other == 0,
    )


def _categorical_like(
    name: str, array: pa.Array, reference: ColumnSummary, top: int
) -> ColumnSummary:
    names, counts, missing = _tally(array)
    names, counts = _combine(names, counts)
    index = {category: i for i, category in enumerate(reference.categories)}
    binned = np.zeros(len(reference.categories) + 1, dtype=np.int64)
    unseen: dict[str, int] = {}
    for value, count in zip(names, counts.tolist(), strict=True):
        position = index.get(value)
        if position is None:
            binned[-1] += count
            unseen[value] = count
        else:
            binned[position] += count
    return replace(
        reference,
        dtype=str(array.type),
        rows=len(array),
        missing=missing,
        counts=binned,
        unseen=_top_counts(unseen, top),
    )


def _summarize_like(
    name: str, array: pa.Array, reference: ColumnSummary, top: int, scratch: _Scratch
) -> ColumnSummary:
    if reference.kind == "categorical":
        return _categorical_like(name, array, reference, top)
    return _numeric(name, array, reference, len(reference.edges), scratch)


class _Tallies:
    """Folds chunks into a reference summary: numeric bins add up, categories re-tallied."""

    def __init__(self, first: FrameSummary, top: int) -> None:
        self.summary = first
        self.top = top

    def add(self, table: pa.Table) -> None:
        self.summary = _merge_retallied(self.summary, _retally(self.summary, table, self.top))

    def finish(self) -> FrameSummary:
        columns = {
            name: _finish_categories(column, self.top) if column.kind == "categorical" else column
            for name, column in self.summary.columns.items()
        }
        return FrameSummary(rows=self.summary.rows, columns=columns)


def _retally(like: FrameSummary, table: pa.Table, top: int) -> FrameSummary:
    """``table`` summarised like ``like``, categories tallied in full (in ``unseen``)."""
    columns: dict[str, ColumnSummary] = {}
    _require(set(table.column_names), like.columns)
    for name, reference in like.columns.items():
        array = _column(table, name)
        if reference.kind == "numeric":
            columns[name] = _numeric(name, array, reference, len(reference.edges))
            continue
        names, counts, missing = _tally(array)
        names, counts = _combine(names, counts)
        columns[name] = ColumnSummary(
            name=name,
            kind="categorical",
            dtype=str(array.type),
            rows=len(array),
            missing=missing,
            counts=np.array([int(counts.sum())], dtype=np.int64),
            unseen=dict(zip(names, counts.tolist(), strict=True)),
        )
    return FrameSummary(rows=table.num_rows, columns=columns)


def _merge_retallied(total: FrameSummary, part: FrameSummary) -> FrameSummary:
    columns: dict[str, ColumnSummary] = {}
    for name, column in total.columns.items():
        other = part.columns[name]
        if column.kind == "numeric":
            columns[name] = column.merge(other)
            continue
        unseen = dict(column.unseen)
        for value, count in other.unseen.items():
            unseen[value] = unseen.get(value, 0) + count
        columns[name] = replace(
            column,
            rows=column.rows + other.rows,
            missing=column.missing + other.missing,
            counts=column.counts + other.counts,
            unseen=_top_counts(unseen, _TALLY_LIMIT),
        )
    return FrameSummary(rows=total.rows + part.rows, columns=columns)


def _finish_categories(column: ColumnSummary, top: int) -> ColumnSummary:
    names = list(column.unseen)
    counts = np.array(list(column.unseen.values()), dtype=np.int64)
    tallied = (names, counts, column.missing)
    finished = _categorical_reference(column.name, tallied, pa.array([], pa.string()), top)
    dropped = int(column.counts[0] - counts.sum())  # values dropped at the tally limit
    final_counts = finished.counts.copy()
    final_counts[-1] += dropped
    return replace(
        finished,
        dtype=column.dtype,
        rows=column.rows,
        counts=final_counts,
        complete=finished.complete and dropped == 0,
    )


# -- small helpers ------------------------------------------------------------------------------


def _top_counts(counts: dict[str, int], top: int) -> dict[str, int]:
    if len(counts) <= top:
        return counts
    kept = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]
    return dict(kept)


def _extreme(pick: Any, a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return float(pick(a, b))


def _json_float(value: float | None) -> float | str | None:
    """Infinities as text: JSON has no literal for them."""
    if value is None or math.isfinite(value):
        return value
    return "inf" if value > 0 else "-inf"


def _optional_float(value: object) -> float | None:
    if value is None:
        return None
    return float(value)  # type: ignore[arg-type]
