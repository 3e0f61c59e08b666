"""Metrics per slice of the data and per sensitive group (see ``loopml.evaluation``).

Slices are integer codes per row; counts-based metrics for every slice of a column
come from one ``bincount`` each, so a column with many slices costs one pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from loopml.evaluation._metrics import (
    LOWER_IS_BETTER,
    Predictions,
    classification_metrics,
    regression_metrics,
)

__all__ = ["fairness_report", "slice_codes", "slice_frame", "worst_slices"]

_QUANTILE_BINS = 5
_MAX_DISTINCT_AS_CATEGORIES = 20


def slice_codes(column: pd.Series) -> tuple[Any, list[str]]:
    """Integer codes per row (-1 for missing) and the label of each code.

    Numeric columns with many distinct values are cut at quantiles; others slice by value.
    """
    if (
        pd.api.types.is_numeric_dtype(column)
        and not pd.api.types.is_bool_dtype(column)
        and column.nunique(dropna=True) > _MAX_DISTINCT_AS_CATEGORIES
    ):
        binned = pd.qcut(column, _QUANTILE_BINS, duplicates="drop")
        codes = np.asarray(binned.cat.codes, dtype=np.int64)
        return codes, [str(c) for c in binned.cat.categories]
    codes, uniques = pd.factorize(column, sort=True)
    return np.asarray(codes, dtype=np.int64), [str(u) for u in uniques]


def _metrics_for(p: Predictions) -> dict[str, float]:
    if p.task == "regression":
        return regression_metrics(p)
    found = classification_metrics(p)
    keep = ("accuracy", "precision", "recall", "f1", "roc_auc")
    return {k: v for k, v in found.items() if k in keep}


def slice_frame(
    data: pd.DataFrame, columns: list[str], p: Predictions, min_size: int
) -> pd.DataFrame:
    """One row per slice with at least ``min_size`` rows: column, value, n, metrics."""
    rows: list[dict[str, Any]] = []
    for name in columns:
        codes, labels = slice_codes(data[name])
        order = np.argsort(codes, kind="stable")
        sizes = np.bincount(codes[codes >= 0], minlength=len(labels))
        starts = np.concatenate([[0], np.cumsum(sizes)]) + int(np.sum(codes < 0))
        for code, label in enumerate(labels):
            if sizes[code] < min_size:
                continue
            index = order[starts[code] : starts[code + 1]]
            rows.append(
                {
                    "column": name,
                    "value": label,
                    "n": int(sizes[code]),
                    **_metrics_for(p.subset(index)),
                }
            )
    frame = pd.DataFrame(rows, columns=["column", "value", "n", *_metric_columns(rows)])
    return _sort_worst_first(frame, p.task)


def _metric_columns(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            if key not in ("column", "value", "n"):
                seen[key] = None
    return list(seen)


def _sort_worst_first(frame: pd.DataFrame, task: str) -> pd.DataFrame:
    if frame.empty:
        return frame
    key = "rmse" if task == "regression" else ("roc_auc" if "roc_auc" in frame else "f1")
    if key not in frame:
        key = "accuracy"
    ascending = key not in LOWER_IS_BETTER
    return frame.sort_values(key, ascending=ascending, na_position="last").reset_index(drop=True)


def worst_slices(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """For each metric, the slice where it is worst."""
    worst: dict[str, dict[str, Any]] = {}
    for metric in frame.columns:
        if metric in ("column", "value", "n") or frame[metric].isna().all():
            continue
        values = frame[metric].to_numpy(dtype=np.float64)
        at = int(np.nanargmax(values) if metric in LOWER_IS_BETTER else np.nanargmin(values))
        row = frame.iloc[at]
        worst[metric] = {
            "column": str(row["column"]),
            "value": str(row["value"]),
            "n": int(row["n"]),
            metric: float(row[metric]),
        }
    return worst


def fairness_report(data: pd.DataFrame, column: str, p: Predictions) -> dict[str, Any]:
    """Metrics by group, demographic parity difference and equalized odds difference.

    For a binary classifier: selection rate, true and false positive rates per group;
    demographic parity difference is the spread of selection rates, equalized odds
    difference the larger spread of true and false positive rates (as fairlearn defines
    them). A regressor gets its error metrics by group and the spread of MAE.
    """
    codes, labels = slice_codes(data[column])
    valid = codes >= 0
    codes = codes[valid]
    by_group: dict[str, dict[str, float]] = {}
    k = len(labels)
    n = np.bincount(codes, minlength=k).astype(np.float64)
    if p.task == "regression":
        for code, label in enumerate(labels):
            if n[code]:
                by_group[label] = {
                    "n": float(n[code]),
                    **regression_metrics(p.subset(np.flatnonzero(valid)[codes == code])),
                }
        maes = [g["mae"] for g in by_group.values()]
        return {
            "column": column,
            "by_group": by_group,
            "mae_difference": float(max(maes) - min(maes)) if maes else 0.0,
        }
    y = np.asarray(p.y)[valid]
    predicted = np.asarray(p.predicted)[valid]
    positive = predicted == 1
    actual = y == 1
    selected = np.bincount(codes, weights=positive, minlength=k)
    tp = np.bincount(codes, weights=positive & actual, minlength=k)
    fp = np.bincount(codes, weights=positive & ~actual, minlength=k)
    actual_pos = np.bincount(codes, weights=actual, minlength=k)
    actual_neg = n - actual_pos
    correct = np.bincount(codes, weights=y == predicted, minlength=k)
    present = n > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        selection_rate = selected / n
        tpr = tp / actual_pos
        fpr = fp / actual_neg
        accuracy = correct / n
    for code, label in enumerate(labels):
        if present[code]:
            by_group[label] = {
                "n": float(n[code]),
                "selection_rate": float(selection_rate[code]),
                "true_positive_rate": float(tpr[code]),
                "false_positive_rate": float(fpr[code]),
                "accuracy": float(accuracy[code]),
            }

    def spread(values: Any) -> float:
        values = values[present & ~np.isnan(values)]
        return float(values.max() - values.min()) if len(values) else 0.0

    return {
        "column": column,
        "by_group": by_group,
        "demographic_parity_difference": spread(selection_rate),
        "equalized_odds_difference": max(spread(tpr), spread(fpr)),
    }
