"""Data drift: does a window of current rows still look like the reference?

``drift(reference, current)`` summarises both sides into pre-binned per-column summaries
(:mod:`loopml.data.summary`; the current side binned on the reference's edges), computes
every statistic for every column at once (:mod:`loopml.monitoring.stats`), picks a test
per feature and returns a :class:`DriftReport`.

Default tests, in the spirit of Evidently's, by type and size (n = the fewer values of
the two sides):

- n <= 1000: Kolmogorov-Smirnov (numeric) and chi-square (categorical) p-values, with a
  Bonferroni correction across every test of the report (each has a p-value), so that
  stable data flags a window (any feature) with probability at most ``alpha`` = 0.005;
- n > 1000: effect sizes, which do not flag negligible shifts at a million rows: the
  normalized Wasserstein distance (numeric) and the Jensen-Shannon distance
  (categorical), drifted above 0.1. An effect size flags only when the KS (numeric) or
  chi-square (categorical) p-value is also under the corrected alpha (the row's
  ``p_value``): at a thousand or so rows, noise alone moves a distance near 0.1.

Every feature also gets ``missing`` (drifted when its missing share moved by at least
0.05 and the two-proportion test's p-value is under the corrected alpha) and every
categorical feature ``categories`` (drifted when values outside the reference's
categories rose by at least 1 % of rows with a p-value under the corrected alpha; the
names of new and vanished categories are in the test's ``detail``). A feature drifted when
any of its tests did. Override the test with ``tests=`` and thresholds with
``thresholds=`` (keys: ``alpha`` for p-value tests, or ``ks``/``chisquare`` for the alpha
of just that test; ``psi`` 0.1, ``wasserstein`` 0.1, ``jensenshannon`` 0.1, ``missing``
0.05, ``categories`` 0.01, ``domain_classifier`` 0.55 for its AUC).

Documented behaviour on awkward input:

- an empty window or reference raises :class:`~loopml.errors.ValidationError` naming it;
- a column with fewer than 10 values on either side (a one-row window, say) gets its
  statistics computed but no test on it flags (``detail`` says why);
- an all-missing column: its distribution statistics are NaN and never flag; ``missing``
  still compares missing shares. A constant column: one bin; any other value in the window
  moves mass to the under- or overflow bin, which the tests see; its Wasserstein
  distance is in the column's units (there is no std to divide by);
- a reference column absent from the current data is reported as drifted with test
  ``missing``, statistic = the rise in missing share to 100 %, ``detail={"absent": True}``,
  and listed in ``DriftReport.absent_columns``; current columns the reference lacks are
  ignored;
- a value never seen in the reference is reported under ``categories``;
- a numeric reference column whose current values are text: text that parses as numbers
  is used as numbers; other text raises ValidationError naming the column.

The report never holds raw rows: its HTML page draws from the summaries alone. This module
runs past ~400 lines because the report's table, time-series points and HTML page are
views of one result and change together.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.data.summary import ColumnSummary, FrameSummary, summarize, summarize_chunks
from loopml.errors import ValidationError
from loopml.monitoring import stats
from loopml.monitoring.series import Point

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["DEFAULT_THRESHOLDS", "TESTS", "DriftReport", "DriftTest", "drift"]

TESTS = {
    "numeric": ("ks", "psi", "wasserstein", "jensenshannon"),
    "categorical": ("chisquare", "psi", "jensenshannon"),
}
DEFAULT_THRESHOLDS: dict[str, float] = {
    "alpha": 0.005,
    "psi": 0.1,
    "wasserstein": 0.1,
    "jensenshannon": 0.1,
    "missing": 0.05,
    "categories": 0.01,
    "domain_classifier": 0.55,
}
SMALL_SAMPLE = 1_000  # at most this many values: p-value tests; more: effect sizes
MIN_VALUES = 10  # fewer values than this on a side: nothing flags
_P_VALUE_TESTS = ("ks", "chisquare")
_PARQUET_BATCH_ROWS = 262_144
_CLASSIFIER_CAP = 5_000
_SEED = 0


@dataclass(frozen=True)
class DriftTest:
    """One test of one feature in one window: a row of :meth:`DriftReport.to_frame`.

    Attributes:
        feature: The column.
        role: ``feature``, ``prediction`` or ``multivariate`` (the domain classifier).
        kind: ``numeric``, ``categorical`` or ``multivariate``.
        test: ``ks``, ``psi``, ``wasserstein``, ``jensenshannon``, ``chisquare``,
            ``missing``, ``categories`` or ``domain_classifier``.
        statistic: The test's statistic (NaN when it cannot be computed).
        p_value: The test's p-value; for an effect size (``psi``, ``wasserstein``,
            ``jensenshannon``) the KS or chi-square p-value that must also be under the
            corrected alpha for it to flag. None for an absent column.
        threshold: What the statistic was compared with: the corrected alpha for ``ks``
            and ``chisquare``, else the statistic's threshold.
        drifted: Whether the test flagged the feature.
        n_reference: Reference rows.
        n_current: Current rows.
        missing_reference: Reference share of rows missing the feature.
        missing_current: Current share of rows missing the feature.
        detail: Small JSON-able extras: new and vanished categories, why nothing flagged.
    """

    feature: str
    role: str
    kind: str
    test: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    n_reference: int
    n_current: int
    missing_reference: float
    missing_current: float
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class DriftReport:
    """The result of :func:`drift`.

    Attributes:
        tests: Every test, one per feature and test, in column order.
        features: The features compared (prediction columns excluded).
        predictions: The prediction columns (reported apart from the features).
        absent_columns: Reference columns the current data did not have.
        reference: The reference's summary.
        current: The current window's summary, binned like the reference.
    """

    tests: tuple[DriftTest, ...]
    features: tuple[str, ...]
    predictions: tuple[str, ...]
    absent_columns: tuple[str, ...]
    reference: FrameSummary
    current: FrameSummary

    @property
    def drifted_features(self) -> list[str]:
        """Names of the features with at least one drifted test, in column order."""
        flagged = {t.feature for t in self.tests if t.drifted and t.role == "feature"}
        return [name for name in self.features if name in flagged]

    @property
    def share(self) -> float:
        """Drifted share of the features (0.0 with no features)."""
        return len(self.drifted_features) / len(self.features) if self.features else 0.0

    @property
    def drifted(self) -> bool:
        """Whether any feature drifted."""
        return bool(self.drifted_features)

    @property
    def prediction_drifted(self) -> bool | None:
        """Whether a prediction column drifted; None when none was named."""
        if not self.predictions:
            return None
        return any(t.drifted for t in self.tests if t.role == "prediction")

    @property
    def multivariate(self) -> DriftTest | None:
        """The domain classifier's result, when ``multivariate=True`` ran it."""
        return next((t for t in self.tests if t.role == "multivariate"), None)

    def to_frame(self) -> pd.DataFrame:
        """One row per feature and test (the fields of :class:`DriftTest`)."""
        import pandas as pd

        columns = list(DriftTest.__dataclass_fields__)
        rows = [[getattr(test, name) for name in columns] for test in self.tests]
        return pd.DataFrame(rows, columns=columns)

    def to_points(
        self, model: str, version: int | None, start: dt.datetime, end: dt.datetime
    ) -> list[Point]:
        """The report as monitored series points of kind ``drift``.

        One point per feature and test (``name`` the feature; a single prediction column is
        ``prediction``, several are ``prediction.<column>``; the domain classifier is
        ``multivariate``), plus ``share`` (the drifted share of features; its ``detail``
        lists them). Tests whose statistic is NaN (nothing to compare) are left out.
        """
        drift_point = functools.partial(
            Point, model=model, version=version, start=start, end=end, kind="drift"
        )
        points: list[Point] = []
        for test in self.tests:
            if math.isnan(test.statistic):
                continue
            name = test.feature
            if test.role == "prediction":
                name = "prediction" if len(self.predictions) == 1 else f"prediction.{name}"
            elif test.role == "multivariate":
                name = "multivariate"
            detail = {
                "n_reference": test.n_reference,
                "n_current": test.n_current,
                "missing_reference": test.missing_reference,
                "missing_current": test.missing_current,
                **test.detail,
            }
            if test.role == "prediction" and len(self.predictions) == 1:
                detail["column"] = test.feature
            points.append(
                drift_point(
                    name=name,
                    value=float(test.statistic),
                    test=test.test,
                    p_value=test.p_value,
                    threshold=test.threshold,
                    flagged=test.drifted,
                    detail=detail,
                )
            )
        drifted = {"drifted": self.drifted_features, "features": len(self.features)}
        points.append(drift_point(name="share", value=self.share, detail=drifted))
        return points

    def figure(self, column: str) -> dict[str, Any]:
        """A Plotly figure (``data`` and ``layout``) of one column's reference and current
        distributions, drawn from the summaries; for report writers.

        Raises:
            ValidationError: The column is not in both summaries.
        """
        if column not in self.reference or column not in self.current:
            raise ValidationError(
                f"Column {column!r} is not in both summaries of this report; pick one of "
                f"{[name for name in self.reference if name in self.current]}."
            )
        return _distribution_figure(self.reference[column], self.current[column])

    def to_html(self, title: str = "Data drift") -> str:
        """A self-contained HTML page (works offline): a table of every test, and per
        feature its reference and current distributions, drawn from the summaries only."""
        return _render_html(self, title)


# -- the entry point --------------------------------------------------------------------------


def drift(
    reference: pd.DataFrame | pa.Table | FrameSummary,
    current: pd.DataFrame | pa.Table | FrameSummary | Sequence[str | os.PathLike[str]],
    *,
    columns: Sequence[str] | None = None,
    tests: str | Sequence[str] | Mapping[str, str | Sequence[str]] | None = None,
    thresholds: Mapping[str, float] | None = None,
    categorical: Iterable[str] | None = None,
    sample: int | None = None,
    multivariate: bool = False,
    prediction: str | Sequence[str] | None = None,
) -> DriftReport:
    """Compares a window of current rows with a reference; see the module docstring.

    Args:
        reference: The reference rows (a DataFrame or Arrow Table), or its stored
            summary (:class:`~loopml.data.summary.FrameSummary`).
        current: The window: a DataFrame, an Arrow Table, its summary (binned like the
            reference), or a list of Parquet files (read in row batches and summarised
            batch by batch, so it need not fit in memory).
        columns: The columns to compare; default every column of the reference (summary)
            that summaries support.
        tests: The test per feature instead of the default: one name for every feature
            it applies to, several names, or a mapping of column to name(s). Names: for
            numeric ``ks``, ``psi``, ``wasserstein``, ``jensenshannon``; for categorical
            ``chisquare``, ``psi``, ``jensenshannon``.
        thresholds: Thresholds by test name, over :data:`DEFAULT_THRESHOLDS`.
        categorical: Numeric columns to compare as categories (codes, small integers).
        sample: Compare a seeded random sample of at most this many rows of each side
            (raw rows only); default: every row.
        multivariate: Also train a domain classifier to tell reference rows from current
            rows (needs raw rows on both sides); its test is ``domain_classifier``.
        prediction: The model's prediction column(s): compared like features but reported
            apart (``prediction_drifted``), not counted in ``share``.

    Returns:
        The report.

    Raises:
        ValidationError: An empty side, an unknown column or test, a bad threshold, text
            where the reference has numbers, or ``multivariate`` without raw rows.

    Example:
        >>> import numpy as np, pandas as pd
        >>> rng = np.random.default_rng(0)
        >>> ref = pd.DataFrame({"x": rng.normal(size=5000), "y": rng.normal(size=5000)})
        >>> cur = pd.DataFrame({"x": rng.normal(1.0, size=5000), "y": rng.normal(size=5000)})
        >>> drift(ref, cur).drifted_features
        ['x']
    """
    limits = _thresholds(thresholds)
    predictions = _names("prediction", prediction)
    wanted = None if columns is None else list(dict.fromkeys([*columns, *predictions]))
    reference_rows = _sampled(reference, sample)
    if isinstance(reference, FrameSummary):
        ref_summary = reference
        if wanted is not None:
            missing = [name for name in wanted if name not in reference]
            if missing:
                raise ValidationError(
                    f"Columns {missing} are not in the reference summary; it has "
                    f"{list(reference.columns)}."
                )
            ref_summary = FrameSummary(
                rows=reference.rows, columns={name: reference[name] for name in wanted}
            )
    else:
        ref_summary = summarize(
            _checked(reference_rows, "reference"), wanted, categorical=categorical
        )
    if ref_summary.rows == 0:
        raise ValidationError("The reference is empty (0 rows); drift needs reference rows.")
    unknown = [name for name in predictions if name not in ref_summary]
    if unknown:
        raise ValidationError(f"Prediction columns {unknown} are not in the reference.")

    current_rows = _sampled(current, sample) if not _is_paths(current) else None
    cur_summary = _current_summary(current, current_rows, ref_summary)
    if cur_summary.rows == 0:
        raise ValidationError(
            "The current window is empty (0 rows); widen the window or wait for traffic."
        )
    absent = tuple(name for name in ref_summary if name not in cur_summary)
    chosen = _chosen_tests(ref_summary, cur_summary, tests)
    results = _run_tests(ref_summary, cur_summary, chosen, absent, predictions, limits)
    if multivariate:
        results.append(
            _multivariate(reference_rows, current_rows, ref_summary, predictions, limits)
        )
        results = _correct(results, limits)
    features = tuple(name for name in ref_summary if name not in predictions)
    return DriftReport(
        tests=tuple(results),
        features=features,
        predictions=tuple(name for name in ref_summary if name in predictions),
        absent_columns=absent,
        reference=ref_summary,
        current=cur_summary,
    )


# -- inputs -----------------------------------------------------------------------------------


def _names(parameter: str, value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(item) for item in value]


def _thresholds(given: Mapping[str, float] | None) -> dict[str, float]:
    limits = dict(DEFAULT_THRESHOLDS)
    for name, value in (given or {}).items():
        if name not in limits and name not in _P_VALUE_TESTS:
            raise ValidationError(
                f"Unknown threshold {name!r}; use one of "
                f"{sorted([*DEFAULT_THRESHOLDS, *_P_VALUE_TESTS])}."
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise ValidationError(
                f"The threshold {name!r} must be a number >= 0. Got {value!r} instead."
            )
        limits[name] = float(value)
    for name in _P_VALUE_TESTS:
        limits.setdefault(name, limits["alpha"])
    return limits


def _is_paths(value: object) -> bool:
    return isinstance(value, list | tuple) and all(
        isinstance(item, str | os.PathLike) for item in value
    )


def _checked(data: object, side: str) -> Any:
    import pandas as pd
    import pyarrow as pa

    if not isinstance(data, pd.DataFrame | pa.Table | pa.RecordBatch):
        raise ValidationError(
            f"The {side} must be a pandas DataFrame, a pyarrow Table or a FrameSummary"
            f"{' (or a list of Parquet files)' if side == 'current window' else ''}; "
            f"got {type(data).__name__}."
        )
    return data


def _sampled(data: Any, sample: int | None) -> Any:
    """A seeded random sample of at most ``sample`` rows of raw data; anything else as is."""
    import pandas as pd
    import pyarrow as pa

    if sample is None:
        return data
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 1:
        raise ValidationError(f"sample must be an int >= 1 or None. Got {sample!r} instead.")
    if isinstance(data, pd.DataFrame | pa.Table) and len(data) > sample:
        rng = np.random.default_rng(_SEED)
        rows = np.sort(rng.choice(len(data), size=sample, replace=False))
        return data.iloc[rows] if isinstance(data, pd.DataFrame) else data.take(rows)
    return data


def _current_summary(current: Any, rows: Any, reference: FrameSummary) -> FrameSummary:
    if isinstance(current, FrameSummary):
        for name, column in current.columns.items():
            if name in reference and not reference[name].same_binning(column):
                raise ValidationError(
                    f"The current summary's column {name!r} is binned differently from the "
                    "reference; summarise the window with like=<the reference summary>."
                )
        return FrameSummary(
            rows=current.rows,
            columns={name: current[name] for name in reference if name in current},
        )
    if _is_paths(current):
        return _parquet_summary([os.fspath(path) for path in current], reference)
    return summarize(_checked(rows, "current window"), like=reference)


def _parquet_summary(paths: list[str], reference: FrameSummary) -> FrameSummary:
    from loopml.data.sources import open_parquet

    if not paths:
        raise ValidationError("The current window is an empty list of files; pass at least one.")

    def batches() -> Iterable[pa.RecordBatch]:
        for path in paths:
            try:
                handle = open_parquet(path)
            except (OSError, ValueError) as error:
                raise ValidationError(f"Cannot read Parquet file {path!r}: {error}") from error
            names = [name for name in reference if name in handle.schema_arrow.names]
            if handle.metadata.num_rows == 0:
                continue
            yield from handle.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=names)

    iterator = iter(batches())
    first = next(iterator, None)
    if first is None:
        return FrameSummary(rows=0, columns={})
    chunks = [first]
    return summarize_chunks(_chain(chunks, iterator), like=reference)


def _chain(head: list[Any], tail: Iterable[Any]) -> Iterable[Any]:
    yield from head
    yield from tail


# -- choosing and running tests -------------------------------------------------------------


def _chosen_tests(
    reference: FrameSummary,
    current: FrameSummary,
    tests: str | Sequence[str] | Mapping[str, str | Sequence[str]] | None,
) -> dict[str, list[str]]:
    """The distribution test(s) per column present on both sides."""
    if isinstance(tests, Mapping):
        unknown = [name for name in tests if name not in reference]
        if unknown:
            raise ValidationError(f"tests= names columns {unknown} that are not compared.")
    chosen: dict[str, list[str]] = {}
    for name, ref in reference.columns.items():
        if name not in current:
            continue
        allowed = TESTS[ref.kind]
        wanted: list[str]
        explicit = False
        if isinstance(tests, Mapping) and name in tests:
            wanted, explicit = _names("tests", tests[name]), True
        elif isinstance(tests, str | list | tuple):
            wanted = [t for t in _names("tests", tests) if t in allowed]
            _check_test_names(_names("tests", tests))
        else:
            wanted = []
        if explicit:
            bad = [t for t in wanted if t not in allowed]
            if bad:
                raise ValidationError(
                    f"Tests {bad} do not apply to {ref.kind} column {name!r}; use {allowed}."
                )
        if not wanted:
            small = min(ref.present, current[name].present) <= SMALL_SAMPLE
            if ref.kind == "numeric":
                wanted = ["ks" if small else "wasserstein"]
            else:
                wanted = ["chisquare" if small else "jensenshannon"]
        chosen[name] = wanted
    return chosen


def _check_test_names(names: list[str]) -> None:
    known = set(TESTS["numeric"]) | set(TESTS["categorical"])
    bad = [name for name in names if name not in known]
    if bad:
        raise ValidationError(f"Unknown tests {bad}; use some of {sorted(known)}.")


def _run_tests(
    reference: FrameSummary,
    current: FrameSummary,
    chosen: dict[str, list[str]],
    absent: tuple[str, ...],
    predictions: list[str],
    limits: dict[str, float],
) -> list[DriftTest]:
    by_kind: dict[str, list[str]] = {"numeric": [], "categorical": []}
    for name in chosen:
        by_kind[reference[name].kind].append(name)
    values: dict[tuple[str, str], tuple[float, float | None, dict[str, Any]]] = {}
    for kind, names in by_kind.items():
        if not names:
            continue
        refs = [reference[name] for name in names]
        curs = [current[name] for name in names]
        computed = (
            stats.numeric_statistics(refs, curs)
            if kind == "numeric"
            else stats.categorical_statistics(refs, curs)
        )
        # Effect sizes carry the p-value of their kind's test: noise must not flag them.
        gate = computed["ks" if kind == "numeric" else "chisquare"].p_value
        assert gate is not None
        for test, result in computed.items():
            for i, name in enumerate(names):
                p_values = gate if result.p_value is None else result.p_value
                values[(name, test)] = (float(result.statistic[i]), float(p_values[i]), {})
        missing = stats.missing_change(refs, curs)
        for i, name in enumerate(names):
            values[(name, "missing")] = (
                float(missing.statistic[i]),
                float(missing.p_value[i]) if missing.p_value is not None else None,
                {},
            )
        if kind == "categorical":
            changes = stats.category_changes(refs, curs)
            for i, name in enumerate(names):
                detail: dict[str, Any] = {"new": changes.new[i], "vanished": changes.vanished[i]}
                if not refs[i].complete:
                    detail["reference_complete"] = False
                values[(name, "categories")] = (
                    float(changes.statistic[i]),
                    float(changes.p_value[i]),
                    detail,
                )

    results: list[DriftTest] = []
    for name, ref in reference.columns.items():
        role = "prediction" if name in predictions else "feature"
        if name in absent:
            results.append(
                DriftTest(
                    feature=name,
                    role=role,
                    kind=ref.kind,
                    test="missing",
                    statistic=1.0 - ref.missing_share,
                    p_value=None,
                    threshold=limits["missing"],
                    drifted=True,
                    n_reference=ref.rows,
                    n_current=current.rows,
                    missing_reference=ref.missing_share,
                    missing_current=1.0,
                    detail={"absent": True},
                )
            )
            continue
        cur = current[name]
        tests = [*chosen[name], "missing"] + (["categories"] if ref.kind == "categorical" else [])
        for test in tests:
            statistic, p_value, detail = values[(name, test)]
            few = min(ref.present, cur.present) < MIN_VALUES
            if test == "missing":
                few = min(ref.rows, cur.rows) < MIN_VALUES
            results.append(
                DriftTest(
                    feature=name,
                    role=role,
                    kind=ref.kind,
                    test=test,
                    statistic=statistic,
                    p_value=p_value,
                    threshold=limits[test] if test in limits else limits["alpha"],
                    drifted=False,
                    n_reference=ref.rows,
                    n_current=cur.rows,
                    missing_reference=ref.missing_share,
                    missing_current=cur.missing_share,
                    detail={**detail, "too_few_values": True} if few else dict(detail),
                )
            )
    return _correct(results, limits)


def _gated(test: DriftTest) -> bool:
    """Whether the test's flag needs a p-value under the corrected alpha (all but absent)."""
    return test.p_value is not None


def _correct(results: list[DriftTest], limits: dict[str, float]) -> list[DriftTest]:
    """Decides ``drifted`` for every test, Bonferroni-correcting p-values across the report."""
    from dataclasses import replace

    family = max(1, sum(1 for test in results if _gated(test)))
    alpha = limits["alpha"] / family
    decided: list[DriftTest] = []
    for test in results:
        if test.detail.get("absent"):
            decided.append(test)
            continue
        statistic = test.statistic
        p_value = 1.0 if test.p_value is None else test.p_value
        few = bool(test.detail.get("too_few_values"))
        if test.test in _P_VALUE_TESTS:
            threshold = limits[test.test] / family
            flag = p_value < threshold
        elif test.test == "missing":
            threshold = limits["missing"]
            flag = abs(statistic) >= threshold and p_value < alpha
        elif test.test in ("categories", "domain_classifier"):
            threshold = limits[test.test]
            flag = statistic >= threshold and p_value < alpha
        else:  # an effect size: large enough to matter, and unlikely to be noise
            threshold = limits[test.test]
            flag = statistic > threshold and p_value < alpha
        flag = bool(flag) and math.isfinite(statistic) and not few
        decided.append(replace(test, threshold=threshold, drifted=flag))
    return decided


def _multivariate(
    reference: Any,
    current: Any,
    ref_summary: FrameSummary,
    predictions: list[str],
    limits: dict[str, float],
) -> DriftTest:
    import pandas as pd
    import pyarrow as pa

    frames = []
    for side, data in (("reference", reference), ("current window", current)):
        if isinstance(data, pa.Table):
            data = data.to_pandas()
        if not isinstance(data, pd.DataFrame):
            raise ValidationError(
                f"multivariate=True needs raw rows of both sides, but the {side} is a "
                f"{type(data).__name__}; pass DataFrames or Arrow tables, or drop multivariate."
            )
        frames.append(data)
    names = [name for name in ref_summary if name not in predictions and name in frames[1].columns]
    numeric = [name for name in names if ref_summary[name].kind == "numeric"]
    categories = {
        name: ref_summary[name].categories
        for name in names
        if ref_summary[name].kind == "categorical"
    }
    auc, p_value, n_ref, n_cur = stats.domain_classifier(
        frames[0],
        frames[1],
        numeric=numeric,
        categories=categories,
        cap=_CLASSIFIER_CAP,
        seed=_SEED,
    )
    few = min(n_ref, n_cur) < MIN_VALUES
    return DriftTest(
        feature="multivariate",
        role="multivariate",
        kind="multivariate",
        test="domain_classifier",
        statistic=auc,
        p_value=p_value,
        threshold=limits["domain_classifier"],
        drifted=False,
        n_reference=len(frames[0]),
        n_current=len(frames[1]),
        missing_reference=0.0,
        missing_current=0.0,
        detail={"sampled_reference": n_ref, "sampled_current": n_cur}
        | ({"too_few_values": True} if few else {}),
    )


# -- the HTML page ----------------------------------------------------------------------------

_DISPLAY_BINS = 40
_DISPLAY_CATEGORIES = 20
_REFERENCE_COLOR = "#3566c9"
_CURRENT_COLOR = "#d9692b"


def _distribution_figure(ref: ColumnSummary, cur: ColumnSummary) -> dict[str, Any]:
    if ref.kind == "categorical":
        return _categorical_figure(ref, cur)
    return _numeric_figure(ref, cur)


def _numeric_figure(ref: ColumnSummary, cur: ColumnSummary) -> dict[str, Any]:
    """Densities over display bins of about equal reference mass, plus the window's
    values below and above the reference's range."""
    layout: dict[str, Any] = {
        "barmode": "overlay",
        "bargap": 0,
        "margin": {"l": 50, "r": 10, "t": 10, "b": 40},
        "height": 260,
        "legend": {"orientation": "h", "y": 1.12},
        "yaxis": {"title": {"text": "density"}},
    }
    edges = ref.edges
    if len(edges) < 2:
        return {"data": [], "layout": layout}
    ref_share = ref.counts / max(ref.present, 1)
    cur_share = cur.counts / max(cur.present, 1)
    cumulative = np.cumsum(ref_share[1:-1]) - ref_share[1:-1]
    group = np.minimum((cumulative * _DISPLAY_BINS).astype(int), _DISPLAY_BINS - 1)
    starts = np.flatnonzero(np.diff(np.concatenate([[-1], group])))
    bounds = np.concatenate([edges[starts], [edges[-1]]])
    ref_bins = np.add.reduceat(ref_share[1:-1], starts)
    cur_bins = np.add.reduceat(cur_share[1:-1], starts)
    lows, highs = list(bounds[:-1]), list(bounds[1:])
    if cur.counts[0] and cur.min is not None and math.isfinite(cur.min):
        lows.insert(0, cur.min)
        highs.insert(0, float(edges[0]))
        ref_bins = np.concatenate([[0.0], ref_bins])
        cur_bins = np.concatenate([[cur_share[0]], cur_bins])
    if cur.counts[-1] and cur.max is not None and math.isfinite(cur.max):
        lows.append(float(edges[-1]))
        highs.append(cur.max)
        ref_bins = np.concatenate([ref_bins, [0.0]])
        cur_bins = np.concatenate([cur_bins, [cur_share[-1]]])
    low, high = np.array(lows), np.array(highs)
    width = np.maximum(high - low, (edges[-1] - edges[0]) * 1e-3 or 1e-9)
    data = [
        {
            "type": "bar",
            "name": label,
            "x": ((low + high) / 2).tolist(),
            "width": width.tolist(),
            "y": (shares / width).tolist(),
            "customdata": shares.tolist(),
            "hovertemplate": "%{x:.4g}: %{customdata:.2%} of values<extra>" + label + "</extra>",
            "marker": {"color": color},
            "opacity": 0.55,
        }
        for label, shares, color in (
            ("reference", ref_bins, _REFERENCE_COLOR),
            ("current", cur_bins, _CURRENT_COLOR),
        )
    ]
    return {"data": data, "layout": layout}


def _categorical_figure(ref: ColumnSummary, cur: ColumnSummary) -> dict[str, Any]:
    names = list(ref.categories[:_DISPLAY_CATEGORIES])
    ref_share = ref.counts / max(ref.present, 1)
    cur_share = cur.counts / max(cur.present, 1)
    ref_values = list(ref_share[: len(names)])
    cur_values = list(cur_share[: len(names)])
    rest = len(ref.categories) - len(names)
    ref_other = float(ref_share[len(names) : -1].sum() + ref_share[-1])
    cur_seen_rest = float(cur_share[len(names) : -1].sum())
    new = sorted(cur.unseen.items(), key=lambda item: -item[1])[:5] if ref.complete else []
    cur_other = float(cur_share[-1]) - sum(count for _, count in new) / max(cur.present, 1)
    if rest or ref_other or cur_other > 1e-12 or cur_seen_rest:
        names.append("(other)")
        ref_values.append(ref_other)
        cur_values.append(cur_seen_rest + max(cur_other, 0.0))
    for value, count in new:
        names.append(f"{value} (new)")
        ref_values.append(0.0)
        cur_values.append(count / max(cur.present, 1))
    data = [
        {
            "type": "bar",
            "name": label,
            "x": names,
            "y": [float(v) for v in values],
            "hovertemplate": "%{x}: %{y:.2%}<extra>" + label + "</extra>",
            "marker": {"color": color},
        }
        for label, values, color in (
            ("reference", ref_values, _REFERENCE_COLOR),
            ("current", cur_values, _CURRENT_COLOR),
        )
    ]
    layout = {
        "barmode": "group",
        "margin": {"l": 50, "r": 10, "t": 10, "b": 60},
        "height": 260,
        "legend": {"orientation": "h", "y": 1.12},
        "yaxis": {"title": {"text": "share"}, "tickformat": ".0%"},
    }
    return {"data": data, "layout": layout}


def _number(value: float | None) -> str:
    if value is None:
        return "\u2013"
    if not math.isfinite(value):
        return "\u2013" if math.isnan(value) else str(value)
    return f"{value:.4g}"


def _render_html(report: DriftReport, title: str) -> str:
    from loopml.monitoring._report_html import page

    figures: list[dict[str, Any]] = []
    rows: list[str] = []
    cards: list[str] = []
    for test in report.tests:
        mark = '<span class="flag">drifted</span>' if test.drifted else "ok"
        extra = ", ".join(
            f"{key}: {', '.join(map(str, value[:10])) if isinstance(value, list) else value}"
            for key, value in test.detail.items()
            if value not in ([], None)
        )
        rows.append(
            f'<tr class="{"drifted" if test.drifted else ""}">'
            f"<td>{html.escape(test.feature)}</td><td>{html.escape(test.role)}</td>"
            f"<td>{html.escape(test.kind)}</td><td>{html.escape(test.test)}</td>"
            f'<td class="num">{_number(test.statistic)}</td>'
            f'<td class="num">{_number(test.p_value)}</td>'
            f'<td class="num">{_number(test.threshold)}</td><td>{mark}</td>'
            f'<td class="num">{test.missing_reference:.1%} \u2192 {test.missing_current:.1%}</td>'
            f"<td>{html.escape(extra)}</td></tr>"
        )
    drifted = set(report.drifted_features)
    for index, name in enumerate([*report.features, *report.predictions]):
        if name not in report.current:
            continue
        chart = f"chart-{index}"
        figure = report.figure(name)
        figures.append({"id": chart, **figure})
        badge = '<span class="flag">drifted</span>' if name in drifted else ""
        cards.append(
            f'<div class="card"><h3>{html.escape(name)} {badge}</h3><div id="{chart}"></div></div>'
        )
    tiles = [
        (f"{len(report.features)}", "features"),
        (f"{len(report.drifted_features)}", "drifted"),
        (f"{report.share:.0%}", "drifted share"),
        (f"{report.reference.rows:,}", "reference rows"),
        (f"{report.current.rows:,}", "current rows"),
    ]
    if report.prediction_drifted is not None:
        tiles.append(("yes" if report.prediction_drifted else "no", "prediction drift"))
    tile_html = "".join(
        f'<div class="tile"><div class="value">{value}</div><div class="label">{label}</div></div>'
        for value, label in tiles
    )
    absent = (
        f'<p class="flag-text">Absent from the current data: '
        f"{html.escape(', '.join(report.absent_columns))}</p>"
        if report.absent_columns
        else ""
    )
    body = (
        f'<h1>{html.escape(title)}</h1><div class="tiles">{tile_html}</div>{absent}'
        '<h2>Tests</h2><div class="wrap"><table><thead><tr><th>feature</th><th>role</th>'
        "<th>kind</th><th>test</th><th>statistic</th><th>p-value</th><th>threshold</th>"
        "<th>result</th><th>missing</th><th>detail</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
        f'<h2>Distributions</h2><div class="cards">{"".join(cards)}</div>'
    )
    # The monitoring report's page: plotly.js gzip-compressed (2 MB, not 4.8), inflated
    # by the browser.
    return page(title, body, figures, css=_CSS)


_CSS = """
* { box-sizing: border-box; }
body { margin: 0; background: #f4f6f9; color: #1f2933;
  font: 14px/1.5 system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif; }
.page { max-width: 1240px; margin: 0 auto; padding: 28px 24px 40px; }
h1 { font-size: 24px; margin: 0 0 16px; } h2 { font-size: 17px; margin: 24px 0 10px; }
h3 { font-size: 15px; margin: 0 0 6px; }
.tiles { display: flex; flex-wrap: wrap; gap: 12px; }
.tile { background: #fff; border: 1px solid #e2e6ec; border-radius: 10px; padding: 10px 16px; }
.value { font-size: 22px; font-weight: 650; } .label { color: #64707d; font-size: 12px; }
.wrap { overflow-x: auto; background: #fff; border: 1px solid #e2e6ec; border-radius: 10px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { padding: 5px 10px; border-bottom: 1px solid #eef1f4; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.drifted td { background: #fff4ec; }
.flag { background: #fcebdf; color: #b35015; border-radius: 999px; padding: 1px 8px;
  font-size: 11.5px; font-weight: 600; }
.flag-text { color: #b35015; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(380px, 1fr)); gap: 14px; }
.card { background: #fff; border: 1px solid #e2e6ec; border-radius: 10px; padding: 12px; }
.muted { color: #64707d; margin-top: 24px; font-size: 12.5px; }
"""
