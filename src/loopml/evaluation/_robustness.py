"""The headline metric under perturbed inputs, and permutation importance (see
``loopml.evaluation``). Both run on a seeded sample capped in size, because each
perturbation needs a fresh prediction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["permutation_importance", "robustness_report"]

ROBUSTNESS_MAX_ROWS = 50_000
IMPORTANCE_MAX_ROWS = 10_000
NOISE_SCALE = 0.1  # Gaussian noise with this fraction of each numeric column's std
MISSING_RATE = 0.1
SWAP_RATE = 0.1


def sample_index(n: int, cap: int, seed: int) -> Any:
    if n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=cap, replace=False))


def _numeric(frame: pd.DataFrame) -> list[str]:
    return [
        c
        for c in frame.columns
        if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
    ]


def _categorical(frame: pd.DataFrame) -> list[str]:
    numeric = set(_numeric(frame))
    return [c for c in frame.columns if c not in numeric]


def _gaussian_noise(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame | None:
    columns = _numeric(frame)
    if not columns:
        return None
    out = frame.copy()
    for column in columns:
        values = out[column].to_numpy(dtype=np.float64)
        std = float(np.nanstd(values)) or 1.0
        out[column] = values + rng.normal(0.0, NOISE_SCALE * std, size=len(values))
    return out


def _missing_values(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame | None:
    if frame.empty or not len(frame.columns):
        return None
    out = frame.copy()
    for column in out.columns:
        mask = rng.random(len(out)) < MISSING_RATE
        if pd.api.types.is_integer_dtype(out[column]) or pd.api.types.is_bool_dtype(out[column]):
            out[column] = out[column].astype("float64")
        out.loc[mask, column] = np.nan
    return out


def _rare_category_swap(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame | None:
    columns = [c for c in _categorical(frame) if frame[c].nunique(dropna=True) > 1]
    if not columns:
        return None
    out = frame.copy()
    for column in columns:
        counts = out[column].value_counts(dropna=True)
        rarest = counts.index[-1]
        mask = rng.random(len(out)) < SWAP_RATE
        out.loc[mask, column] = rarest
    return out


PERTURBATIONS: dict[str, Callable[[pd.DataFrame, np.random.Generator], pd.DataFrame | None]] = {
    "gaussian_noise": _gaussian_noise,
    "missing_values": _missing_values,
    "rare_category_swap": _rare_category_swap,
}


def robustness_report(
    features: pd.DataFrame,
    score: Callable[[pd.DataFrame, Any], float],
    metric: str,
    lower_is_better: bool,
    seed: int,
) -> list[dict[str, Any]]:
    """One record per perturbation: the metric before and after, and the degradation

    ``score(frame, positions)`` scores the model on ``frame``, whose rows are the rows at
    ``positions`` of ``features``.
    (positive means worse). A model that cannot predict on a perturbed input gets the
    error in its record instead of failing the whole evaluation."""
    index = sample_index(len(features), ROBUSTNESS_MAX_ROWS, seed)
    sample = features.iloc[index]
    baseline = score(sample, index)
    records: list[dict[str, Any]] = []
    for offset, (name, perturb) in enumerate(PERTURBATIONS.items()):
        # A spawned stream: a bare seed would replay the stream that may have made the data.
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(offset + 1,)))
        perturbed = perturb(sample, rng)
        record: dict[str, Any] = {"perturbation": name, "metric": metric, "baseline": baseline}
        if perturbed is None:
            record.update(value=None, degradation=None, error="no column to perturb")
        else:
            try:
                value = score(perturbed, index)
            except Exception as error:  # the model's own failure is the finding
                cause = error.__cause__ or error
                text = f"{type(cause).__name__}: {str(cause).splitlines()[0][:200]}"
                record.update(value=None, degradation=None, error=text)
            else:
                change = value - baseline
                record.update(
                    value=value, degradation=change if lower_is_better else -change, error=None
                )
        records.append(record)
    return records


def permutation_importance(
    model: Any, features: pd.DataFrame, y: Any, scoring: str, seed: int, repeats: int = 5
) -> dict[str, dict[str, float]]:
    """scikit-learn's permutation importance on a sample of at most 10,000 rows."""
    from sklearn.inspection import permutation_importance as sklearn_importance

    index = sample_index(len(features), IMPORTANCE_MAX_ROWS, seed)
    found = sklearn_importance(
        model,
        features.iloc[index],
        np.asarray(y)[index],
        scoring=scoring,
        n_repeats=repeats,
        random_state=seed,
    )
    pairs = sorted(
        zip(features.columns, found.importances_mean, found.importances_std, strict=True),
        key=lambda item: -item[1],
    )
    return {str(name): {"mean": float(mean), "std": float(std)} for name, mean, std in pairs}
