"""Small, seeded data sets and fitted models for the evaluation tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression, LogisticRegression


def binary_frame(rows: int = 600, seed: int = 0) -> pd.DataFrame:
    """Churn-like rows: the label follows ``tenure``, and is pure noise for region 'south'."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "tenure": rng.normal(size=rows),
            "spend": rng.normal(size=rows),
            "region": rng.choice(["north", "south", "east"], rows),
            "gender": rng.choice(["f", "m"], rows),
        }
    )
    signal = frame["tenure"] + 0.3 * rng.normal(size=rows)
    noise = rng.normal(size=rows)
    frame["churned"] = np.where(frame["region"] == "south", noise > 0, signal > 0).astype(int)
    return frame


def binary_model(frame: pd.DataFrame) -> Any:
    return LogisticRegression().fit(frame[["tenure", "spend"]], frame["churned"])


def regression_frame(rows: int = 400, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"size": rng.normal(size=rows), "rooms": rng.normal(size=rows)})
    frame["price"] = 3 * frame["size"] + frame["rooms"] + 0.5 * rng.normal(size=rows)
    return frame


def regression_model(frame: pd.DataFrame) -> Any:
    return LinearRegression().fit(frame[["size", "rooms"]], frame["price"])
