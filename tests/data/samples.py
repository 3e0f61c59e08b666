"""Sample data shared by the data-layer tests (Python API and CLI)."""

from __future__ import annotations

import numpy as np
import pandas as pd

CONTRACT = """\
columns:
  customer_id: {type: int, nullable: false, unique: true}
  age: {type: int, min: 0, max: 120}
  plan: {type: category, categories: [basic, pro, team]}
  spend: {type: float, min: 0}
dataset:
  key: [customer_id]
"""


def churn(rows: int = 100, start: int = 0) -> pd.DataFrame:
    """Customers with ids ``start..start+rows``, seeded by ``start``, all valid."""
    rng = np.random.default_rng(start)
    return pd.DataFrame(
        {
            "customer_id": np.arange(start, start + rows),
            "age": rng.integers(18, 90, rows),
            "plan": rng.choice(["basic", "pro", "team"], rows),
            "spend": rng.random(rows).round(2) * 100,
        }
    )


def dirty() -> pd.DataFrame:
    """Ten rows, three of them breaking the contract: age 250, plan 'gold', a repeated id."""
    frame = churn(10)
    frame.loc[2, "age"] = 250
    frame.loc[5, "plan"] = "gold"
    frame.loc[7, "customer_id"] = 3
    return frame
