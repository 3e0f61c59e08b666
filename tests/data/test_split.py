"""Stored splits: the order of ``fractions`` is part of a split's identity."""

from __future__ import annotations

import pandas as pd

import loopml
from tests.data.samples import churn


def test_the_same_parts_in_another_order_are_another_split(
    sqlite_workspace: loopml.Workspace,
) -> None:
    frame = churn(1000)
    frame["when"] = pd.date_range("2026-01-01", periods=1000, freq="h")
    sqlite_workspace.data.ingest(frame, name="churn")
    forward = sqlite_workspace.data.split(
        "churn@1", by="time", fractions={"train": 0.7, "test": 0.3}, column="when"
    )
    backward = sqlite_workspace.data.split(
        "churn@1", by="time", fractions={"test": 0.3, "train": 0.7}, column="when"
    )
    # A time split gives its first part the earliest rows: the order decides the parts.
    assert forward["train"]["when"].max() < forward["test"]["when"].min()
    assert backward["test"]["when"].max() < backward["train"]["when"].min()
    assert (len(forward["train"]), len(backward["train"])) == (700, 700)
