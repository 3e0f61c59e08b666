"""Tests of loopml.training, and the small deterministic sample data they share."""

from __future__ import annotations

import numpy as np
import pandas as pd


def customers(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    """Customers with a number, a category, a bool, a timestamp and a learnable ``churned``."""
    rng = np.random.default_rng(seed)
    spend = rng.random(rows) * 100
    plan = rng.choice(["basic", "pro", "team"], rows)
    churned = (spend < 40) | (plan == "basic")
    spend[::17] = np.nan  # missing numbers are imputed inside the model
    return pd.DataFrame(
        {
            "customer_id": np.arange(rows),
            "spend": spend,
            "plan": plan,
            "trial": rng.random(rows) < 0.3,
            "signed_up": pd.Timestamp("2024-01-01")
            + pd.to_timedelta(rng.integers(0, 365, rows), unit="D"),
            "churned": churned,
        }
    )


def cancer() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    frame: pd.DataFrame = load_breast_cancer(as_frame=True).frame
    return frame


def diabetes() -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    frame: pd.DataFrame = load_diabetes(as_frame=True).frame
    return frame
