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

The merging engine lives in ``_profile_summaries`` and the HTML report in ``_profile_html``;
both are internal and import the dataclasses defined here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa

from loopml.errors import NotFoundError, ValidationError

__all__ = ["QUANTILES", "ColumnProfile", "Correlations", "DatasetProfile", "Histogram", "profile"]

ColumnType = Literal["numeric", "categorical", "datetime", "bool", "text"]
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
FORMAT_VERSION = 1

_CHUNK_ROWS = 131_072  # small batches are merged into chunks of at least this many rows


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
        from loopml.data._profile_html import render_html  # it imports this module

        return render_html(self, title)

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
    # Imported here: the engine builds this module's dataclasses, so it imports this module.
    from loopml.data._profile_summaries import ProfileBuilder

    _check_count("bins", bins, minimum=1)
    _check_count("top", top, minimum=0)
    _check_count("sample_for_correlation", sample_for_correlation, minimum=0)
    if isinstance(data, pd.DataFrame):
        data = _table_from_frame(data)
    elif isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if isinstance(data, pa.Table):
        builder = ProfileBuilder(lossy=False, sample_rows=sample_for_correlation)
        builder.add(data)
    elif isinstance(data, Iterable) and not isinstance(data, str | bytes):
        builder = ProfileBuilder(lossy=True, sample_rows=sample_for_correlation)
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
