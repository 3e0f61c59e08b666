"""Drift statistics over binned summaries, every column at once.

Internal: call :func:`loopml.monitoring.drift.drift`. Each function takes the reference's
and the current window's :class:`~loopml.data.summary.ColumnSummary` of the same columns
(current binned like the reference), stacks their counts into 2-D arrays padded with
empty bins, and computes one statistic per column with array operations: no loop over
rows, no per-column sort.

Numeric columns, from the fine bins:

- ``ks``: the Kolmogorov-Smirnov distance between the binned CDFs (the largest gap at a
  bin edge, so at most the exact distance: conservative), p-value from scipy's ``kstwo``
  with the effective size n*m/(n+m) (``kstwobign`` past 10,000, where they agree);
- ``wasserstein``: the earth mover's distance between the CDFs, integrated over the bins
  with the trapezoid rule inside the reference's range and from the tails' mean positions
  beyond it (see ``_wasserstein``), divided by the reference's
  standard deviation (by 1 for a constant reference column: then it is in the column's units).
  On smooth data it lands within ~10 % of scipy's exact distance on the raw values (a
  little over where the reference's outer bins are wide);
- ``psi`` and ``jensenshannon``: on 10 coarse bins of equal reference mass (deciles made
  of whole fine bins), because both grow with the number of bins at small samples.

Categorical columns: ``chisquare`` (the 2 x K contingency test of reference against
current counts), ``psi`` and ``jensenshannon`` over the categories and "other". Both kinds:
``missing`` (the change in missing share, two-proportion z-test) and, for categories,
``categories`` (the rise in the share of values outside the reference's categories).
PSI and Jensen-Shannon clip empty bins to a share of 1e-4 (PSI) as Evidently does; the
Jensen-Shannon distance uses natural logarithms (its range is [0, sqrt(ln 2)]).
A statistic that needs values on both sides is NaN when one side has none. The module
runs a little past ~400 lines: the domain classifier lives here beside the univariate
statistics it complements.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from loopml.data.summary import ColumnSummary

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CategoryChanges",
    "Statistic",
    "categorical_statistics",
    "category_changes",
    "domain_classifier",
    "missing_change",
    "numeric_statistics",
]

FloatArray = npt.NDArray[np.float64]

COARSE_BINS = 10  # PSI and Jensen-Shannon bins for numeric columns
PSI_FLOOR = 1e-4  # share given to an empty bin so PSI stays finite
_KSTWO_LIMIT = 10_000  # effective sizes past this use the asymptotic distribution
_VANISHED_EXPECTED = 10.0  # a category is "vanished" if this many rows were expected


@dataclass(frozen=True)
class Statistic:
    """One test over many columns: a statistic and, for hypothesis tests, a p-value each."""

    statistic: FloatArray
    p_value: FloatArray | None = None


@dataclass(frozen=True)
class CategoryChanges:
    """Values outside the reference's categories, and categories gone from the window.

    Attributes:
        statistic: Per column, the current share of values outside the reference's
            categories minus the reference's share of such ("other") values.
        p_value: One-sided two-proportion z-test of that rise.
        new: Per column, names of values outside the reference's categories (all of
            them new when the reference listed every category it had).
        vanished: Per column, reference categories absent from the window although the
            reference's shares predicted at least 10 rows of each.
    """

    statistic: FloatArray
    p_value: FloatArray
    new: list[list[str]]
    vanished: list[list[str]]


# -- stacking ---------------------------------------------------------------------------------


def _stack(columns: Sequence[ColumnSummary]) -> npt.NDArray[np.int64]:
    """Counts as a (columns, bins) array; shorter rows padded with empty bins at the end."""
    width = max((len(column.counts) for column in columns), default=1)
    out = np.zeros((len(columns), width), dtype=np.int64)
    for row, column in enumerate(columns):
        out[row, : len(column.counts)] = column.counts
    return out


def _shares(counts: npt.NDArray[np.int64]) -> tuple[FloatArray, FloatArray]:
    """(row totals, shares per bin); rows with no values get all-zero shares."""
    totals = counts.sum(axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.where(totals[:, None] > 0, counts / totals[:, None], 0.0)
    return totals, shares


def _psi(expected: FloatArray, actual: FloatArray) -> FloatArray:
    p = np.clip(expected, PSI_FLOOR, None)
    q = np.clip(actual, PSI_FLOOR, None)
    return np.asarray(((q - p) * np.log(q / p)).sum(axis=1), dtype=np.float64)


def _jensen_shannon(expected: FloatArray, actual: FloatArray) -> FloatArray:
    from scipy.special import rel_entr  # type: ignore[import-untyped]

    middle = (expected + actual) / 2.0
    divergence = (rel_entr(expected, middle) + rel_entr(actual, middle)).sum(axis=1) / 2.0
    return np.asarray(np.sqrt(np.clip(divergence, 0.0, None)), dtype=np.float64)


def _without_values(reference: FloatArray, current: FloatArray, *arrays: FloatArray) -> None:
    """Sets the statistics of columns with no values on either side to NaN, in place."""
    empty = (reference == 0) | (current == 0)
    for array in arrays:
        array[empty] = np.nan


# -- numeric ----------------------------------------------------------------------------------


def numeric_statistics(
    reference: Sequence[ColumnSummary], current: Sequence[ColumnSummary]
) -> dict[str, Statistic]:
    """KS, PSI, normalized Wasserstein and Jensen-Shannon for numeric columns.

    Args:
        reference: The reference's summaries.
        current: The window's summaries of the same columns, binned like the reference.

    Returns:
        ``ks``, ``psi``, ``wasserstein`` and ``jensenshannon``, one value per column.
    """
    from scipy.stats import kstwo, kstwobign  # type: ignore[import-untyped]

    n_columns = len(reference)
    if not n_columns:
        empty = np.empty(0)
        return {
            name: Statistic(empty, empty if name == "ks" else None)
            for name in ("ks", "psi", "wasserstein", "jensenshannon")
        }
    ref_total, ref_share = _shares(_stack(reference))
    cur_total, cur_share = _shares(_stack(current))
    width = ref_share.shape[1]
    # CDFs just below each edge: edge j closes bins 0..j. Padding bins carry no mass.
    ref_cdf = np.cumsum(ref_share, axis=1)[:, :-1]
    cur_cdf = np.cumsum(cur_share, axis=1)[:, :-1]
    gap = ref_cdf - cur_cdf
    ks = np.abs(gap).max(axis=1) if width > 1 else np.zeros(n_columns)

    with np.errstate(invalid="ignore", divide="ignore"):
        effective = ref_total * cur_total / (ref_total + cur_total)
    ks_p = np.ones(n_columns)
    small = (effective >= 1) & (effective <= _KSTWO_LIMIT)
    large = effective > _KSTWO_LIMIT
    ks_p[small] = kstwo.sf(ks[small], np.round(effective[small]))
    ks_p[large] = kstwobign.sf(ks[large] * np.sqrt(effective[large]))
    ks_p = np.clip(ks_p, 0.0, 1.0)

    wasserstein = _wasserstein(reference, current, ref_share, cur_share, gap)
    ref_coarse, cur_coarse = _coarse(ref_share, cur_share)
    psi = _psi(ref_coarse, cur_coarse)
    jensen_shannon = _jensen_shannon(ref_coarse, cur_coarse)
    _without_values(ref_total, cur_total, ks, ks_p, wasserstein, psi, jensen_shannon)
    return {
        "ks": Statistic(ks, ks_p),
        "psi": Statistic(psi),
        "wasserstein": Statistic(wasserstein),
        "jensenshannon": Statistic(jensen_shannon),
    }


def _wasserstein(
    reference: Sequence[ColumnSummary],
    current: Sequence[ColumnSummary],
    ref_share: FloatArray,
    cur_share: FloatArray,
    gap: FloatArray,
) -> FloatArray:
    """Earth mover's distance over the binned CDFs, over the reference's std.

    Inside the reference's range: the trapezoid rule over the CDF gaps at the edges.
    Beyond it, the exact tail integrals E[(edge - X)+] and E[(X - edge)+], from the mass in
    the under- and overflow bins at their mean position, which the side's mean gives away
    (the mean minus the in-range bins' contribution at their centres) when only one of its
    tails holds values; with both, each tail's mass sits halfway to the side's min or max.
    """
    n_columns, n_edges = gap.shape
    if n_edges == 0:
        return np.zeros(n_columns)
    width = ref_share.shape[1]
    edges = np.zeros((n_columns, n_edges))
    centers = np.zeros((n_columns, width))
    last = np.zeros(n_columns, dtype=np.intp)
    scale = np.ones(n_columns)
    bounds = np.zeros((2, n_columns, 2))  # side, column, (min, max)
    means = np.full((2, n_columns), np.nan)
    for row, (ref, cur) in enumerate(zip(reference, current, strict=True)):
        size = len(ref.edges)
        if not size:
            continue
        edges[row, :size] = ref.edges
        edges[row, size:] = ref.edges[-1]  # padding: zero-width bins
        centers[row, 1:size] = (ref.edges[:-1] + ref.edges[1:]) / 2.0
        last[row] = size - 1
        for side, column in enumerate((ref, cur)):
            low = column.min if column.min is not None and np.isfinite(column.min) else None
            high = column.max if column.max is not None and np.isfinite(column.max) else None
            bounds[side, row] = (
                min(low, ref.edges[0]) if low is not None else ref.edges[0],
                max(high, ref.edges[-1]) if high is not None else ref.edges[-1],
            )
            if column.mean is not None:
                means[side, row] = column.mean
        if ref.std:
            scale[row] = ref.std
    rows = np.arange(n_columns)
    bottom = edges[:, 0]
    top = edges[rows, last]
    tails = []
    for side, share in enumerate((ref_share, cur_share)):
        under = share[:, 0]
        over = share[rows, last + 1]
        inside = (share * centers).sum(axis=1)  # centers are 0 off the interior bins
        rest = means[side] - inside  # = under * (mean of under) + over * (mean of over)
        with np.errstate(invalid="ignore", divide="ignore"):
            under_mean = np.where(
                (under > 0) & (over == 0) & np.isfinite(rest),
                rest / under,
                (bounds[side, :, 0] + bottom) / 2.0,
            )
            over_mean = np.where(
                (over > 0) & (under == 0) & np.isfinite(rest),
                rest / over,
                (top + bounds[side, :, 1]) / 2.0,
            )
        under_mean = np.clip(under_mean, bounds[side, :, 0], bottom)
        over_mean = np.clip(over_mean, top, bounds[side, :, 1])
        tails.append((under * (bottom - under_mean), over * (over_mean - top)))
    size_gap = np.abs(gap)
    widths = np.diff(edges, axis=1)
    inner = ((size_gap[:, :-1] + size_gap[:, 1:]) / 2.0 * widths).sum(axis=1)
    lower = np.abs(tails[0][0] - tails[1][0])
    upper = np.abs(tails[0][1] - tails[1][1])
    return np.asarray((inner + lower + upper) / scale, dtype=np.float64)


def _coarse(ref_share: FloatArray, cur_share: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Fine bins summed into ``COARSE_BINS`` bins of about equal reference mass."""
    n_columns = ref_share.shape[0]
    before = np.cumsum(ref_share, axis=1) - ref_share  # reference mass below each bin
    group = np.minimum((before * COARSE_BINS + 1e-9).astype(np.intp), COARSE_BINS - 1)
    flat = (np.arange(n_columns)[:, None] * COARSE_BINS + group).ravel()
    size = n_columns * COARSE_BINS
    ref = np.bincount(flat, weights=ref_share.ravel(), minlength=size)
    cur = np.bincount(flat, weights=cur_share.ravel(), minlength=size)
    shape = (n_columns, COARSE_BINS)
    return ref.reshape(shape).astype(np.float64), cur.reshape(shape).astype(np.float64)


# -- categorical ------------------------------------------------------------------------------


def categorical_statistics(
    reference: Sequence[ColumnSummary], current: Sequence[ColumnSummary]
) -> dict[str, Statistic]:
    """Chi-square, PSI and Jensen-Shannon for categorical columns.

    Args:
        reference: The reference's summaries.
        current: The window's summaries of the same columns, counted like the reference.

    Returns:
        ``chisquare``, ``psi`` and ``jensenshannon``, one value per column.
    """
    from scipy.stats import chi2  # type: ignore[import-untyped]

    ref_counts = _stack(reference).astype(np.float64)
    cur_counts = _stack(current).astype(np.float64)
    ref_total, ref_share = _shares(ref_counts.astype(np.int64))
    cur_total, cur_share = _shares(cur_counts.astype(np.int64))
    both = ref_counts + cur_counts
    total = ref_total + cur_total
    with np.errstate(invalid="ignore", divide="ignore"):
        ref_expected = both * (ref_total / total)[:, None]
        cur_expected = both * (cur_total / total)[:, None]
        terms = (ref_counts - ref_expected) ** 2 / ref_expected + (
            cur_counts - cur_expected
        ) ** 2 / cur_expected
    statistic = np.where(both > 0, terms, 0.0).sum(axis=1)
    freedom = (both > 0).sum(axis=1) - 1
    p_value = np.ones(len(reference))
    testable = freedom >= 1
    p_value[testable] = chi2.sf(statistic[testable], freedom[testable])
    psi = _psi(ref_share, cur_share)
    jensen_shannon = _jensen_shannon(ref_share, cur_share)
    _without_values(ref_total, cur_total, statistic, p_value, psi, jensen_shannon)
    return {
        "chisquare": Statistic(statistic, p_value),
        "psi": Statistic(psi),
        "jensenshannon": Statistic(jensen_shannon),
    }


def category_changes(
    reference: Sequence[ColumnSummary], current: Sequence[ColumnSummary]
) -> CategoryChanges:
    """New values and vanished categories of categorical columns; see :class:`CategoryChanges`."""
    ref_other = np.array([column.counts[-1] for column in reference], dtype=np.float64)
    cur_other = np.array([column.counts[-1] for column in current], dtype=np.float64)
    ref_present = np.array([column.present for column in reference], dtype=np.float64)
    cur_present = np.array([column.present for column in current], dtype=np.float64)
    statistic, p_value = _two_proportions(ref_other, ref_present, cur_other, cur_present)
    p_value = np.where(statistic > 0, p_value / 2.0, 1.0)  # one-sided: a rise only
    new = [sorted(cur.unseen, key=lambda v: -cur.unseen[v]) for cur in current]
    vanished: list[list[str]] = []
    for ref, cur in zip(reference, current, strict=True):
        gone = []
        if ref.present and cur.present:
            expected = ref.counts[:-1] / ref.present * cur.present
            gone = [
                category
                for category, exp, count in zip(
                    ref.categories, expected, cur.counts[:-1], strict=True
                )
                if count == 0 and exp >= _VANISHED_EXPECTED
            ]
        vanished.append(gone)
    return CategoryChanges(statistic, p_value, new, vanished)


# -- missing values ---------------------------------------------------------------------------


def missing_change(
    reference: Sequence[ColumnSummary], current: Sequence[ColumnSummary]
) -> Statistic:
    """Current minus reference missing share, with a two-sided two-proportion z-test."""
    statistic, p_value = _two_proportions(
        np.array([column.missing for column in reference], dtype=np.float64),
        np.array([column.rows for column in reference], dtype=np.float64),
        np.array([column.missing for column in current], dtype=np.float64),
        np.array([column.rows for column in current], dtype=np.float64),
    )
    return Statistic(statistic, p_value)


def _two_proportions(
    ref_hits: FloatArray, ref_rows: FloatArray, cur_hits: FloatArray, cur_rows: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """(current share - reference share, two-sided p-value); p = 1 where undefined."""
    from scipy.stats import norm  # type: ignore[import-untyped]

    with np.errstate(invalid="ignore", divide="ignore"):
        ref_rate = np.where(ref_rows > 0, ref_hits / ref_rows, 0.0)
        cur_rate = np.where(cur_rows > 0, cur_hits / cur_rows, 0.0)
        pooled = (ref_hits + cur_hits) / (ref_rows + cur_rows)
        error = np.sqrt(pooled * (1.0 - pooled) * (1.0 / ref_rows + 1.0 / cur_rows))
        z = np.abs(cur_rate - ref_rate) / error
    p_value = np.where(np.isfinite(z) & (error > 0), 2.0 * norm.sf(z), 1.0)
    return cur_rate - ref_rate, np.asarray(p_value, dtype=np.float64)


# -- multivariate -----------------------------------------------------------------------------


def domain_classifier(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numeric: Sequence[str],
    categories: Mapping[str, Sequence[str]],
    cap: int = 5_000,
    folds: int = 3,
    seed: int = 0,
) -> tuple[float, float, int, int]:
    """How well a classifier tells reference rows from current rows (ROC AUC).

    A gradient-boosted tree model (scikit-learn's ``HistGradientBoostingClassifier``)
    learns to tell the two apart from the features; its out-of-fold ROC AUC over
    ``folds``-fold stratified cross-validation is 0.5 when they are alike and near 1 when
    a combination of features (even one each univariate test misses) shifted.

    Args:
        reference: The reference's rows.
        current: The window's rows.
        numeric: Numeric feature columns.
        categories: Categorical feature columns and the reference's categories (encoded as
            their position; other values as -1, missing values as NaN).
        cap: Rows sampled from each side at most.
        folds: Cross-validation folds.
        seed: Seed of the sampling, the folds and the model.

    Returns:
        (ROC AUC, one-sided p-value of AUC > 0.5 from the Mann-Whitney normal
        approximation, reference rows used, current rows used).
    """
    from scipy.stats import norm  # type: ignore[import-untyped]
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    rng = np.random.default_rng(seed)
    sides = []
    for frame in (reference, current):
        if len(frame) > cap:
            frame = frame.iloc[np.sort(rng.choice(len(frame), size=cap, replace=False))]
        sides.append(_encode(frame, numeric, categories))
    features = np.vstack(sides)
    labels = np.concatenate([np.zeros(len(sides[0])), np.ones(len(sides[1]))])
    n_ref, n_cur = len(sides[0]), len(sides[1])
    folds = min(folds, n_ref, n_cur)
    if folds < 2:
        return float("nan"), 1.0, n_ref, n_cur
    model = HistGradientBoostingClassifier(max_iter=50, random_state=seed)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_predict(model, features, labels, cv=splitter, method="predict_proba")
    auc = float(roc_auc_score(labels, scores[:, 1]))
    error = np.sqrt((n_ref + n_cur + 1) / (12.0 * n_ref * n_cur))
    return auc, float(norm.sf((auc - 0.5) / error)), n_ref, n_cur


def _encode(
    frame: pd.DataFrame, numeric: Sequence[str], categories: Mapping[str, Sequence[str]]
) -> FloatArray:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    columns: list[FloatArray] = []
    for name in numeric:
        series = frame[name]
        if pd.api.types.is_datetime64_any_dtype(series.dtype):
            series = series.astype("int64")
        columns.append(
            np.asarray(pd.to_numeric(series, errors="coerce").to_numpy(np.float64, na_value=np.nan))
        )
    for name, known in categories.items():
        # As text the way the summaries spell it (Arrow's casts: bools are "true"/"false").
        array = pa.array(frame[name], from_pandas=True)
        if pa.types.is_dictionary(array.type):
            array = array.dictionary_decode()
        if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
            array = pc.cast(array, pa.string())
        found = pc.index_in(array, value_set=pa.array(list(known), type=array.type))
        codes = np.asarray(found.to_numpy(zero_copy_only=False), dtype=np.float64)
        valid = np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        codes[valid & np.isnan(codes)] = -1.0
        columns.append(codes)
    if not columns:
        return np.zeros((len(frame), 1))
    return np.column_stack(columns)
