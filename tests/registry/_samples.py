"""Small trained models for the registry tests: real runs with data inputs and bundles."""

from __future__ import annotations

from typing import Any

import loopml
from tests.evaluation._samples import binary_frame

PASSING = {"checks": ["roc_auc >= 0.5"]}
FAILING = {"checks": ["roc_auc >= 0.999"]}


def churn_data(ws: loopml.Workspace) -> str:
    """Ingests the churn-like frame once; returns its reference."""
    return ws.data.ingest(binary_frame(400), name="churn").ref


def trained(ws: loopml.Workspace, c: float = 1.0) -> Any:
    """A logistic regression trained by ``ws.train`` on the stored churn data."""
    from sklearn.linear_model import LogisticRegression

    return ws.train(
        LogisticRegression(C=c, max_iter=500),
        data=churn_data(ws),
        target="churned",
        features=["tenure", "spend", "region"],
        experiment="churn",
    )


def registered(ws: loopml.Workspace, count: int, name: str = "churn") -> list[Any]:
    """``count`` versions of ``name``, each from its own training run."""
    return [ws.registry.register(trained(ws, c=0.5 + i), name=name) for i in range(count)]


def gate(ws: loopml.Workspace, candidate: str, policy: dict[str, Any], champion: str | None) -> Any:
    return ws.gate(candidate, policy, champion=champion, data=churn_data(ws), target="churned")
