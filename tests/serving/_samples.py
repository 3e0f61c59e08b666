"""Registered models for the serving tests: real ws.train runs on data with contracts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

import loopml

PLANS_CONTRACT = {
    "columns": {
        "age": {"type": "int", "nullable": False},
        "income": {"type": "float", "nullable": True},
        "score": {"type": "float", "nullable": False},
        "city": {"type": "category", "nullable": False},
        "active": {"type": "bool", "nullable": False},
        "plan": {"type": "string", "nullable": False},
    }
}


def plans_frame(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    """Customers and the plan they chose: string classes basic / pro / team."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, rows),
            "income": rng.normal(50, 15, rows),
            "score": rng.normal(size=rows),
            "city": rng.choice(["paris", "lyon", "nantes"], rows),
            "active": rng.random(rows) > 0.3,
        }
    )
    frame["plan"] = np.where(
        frame["income"] > 60, "team", np.where(frame["score"] > 0, "pro", "basic")
    )
    return frame


def plans_version(ws: loopml.Workspace, trees: int = 10) -> Any:
    """A random forest with string classes, its inputs never missing except ``income``."""
    from sklearn.ensemble import RandomForestClassifier

    data = ws.data.ingest(plans_frame(), name="plans", contract=PLANS_CONTRACT).ref
    result = ws.train(
        RandomForestClassifier(n_estimators=trees, random_state=0),
        data=data,
        target="plan",
        experiment="plans",
    )
    return ws.registry.register(result, name="plans")


PLAN_ROW = {"age": 40, "income": 70.5, "score": 0.3, "city": "paris", "active": True}
CHURN_ROW = {"tenure": 1.5, "spend": -0.2, "region": "north"}


class Failing:
    """A model that answers its (calm) input example and raises on real traffic."""

    classes_ = np.array([0, 1])

    def predict(self, frame: Any) -> Any:
        if (frame["spend"] > 0.5).any():
            raise RuntimeError("canary bug")
        return np.zeros(len(frame), dtype=int)


def failing_version(ws: loopml.Workspace, name: str) -> int:
    """Registers a :class:`Failing` model as the next version of the churn-like ``name``
    (with version 1's signature); its number."""
    calm = [{**CHURN_ROW, "spend": 0.0}]
    good = ws.registry.load(f"models:/{name}/1")
    version = ws.registry.register(
        Failing(), name=name, signature=good.signature, input_example=calm
    ).version
    return int(version)
