"""The preprocessing loopml puts in front of a bare estimator, from a contract or the dtypes."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.data.contract import load_contract
from loopml.training._preprocess import build_preprocessor, column_kinds, datetime_parts
from tests.training import customers


def test_dtypes_sort_columns_into_kinds() -> None:
    frame = customers()
    kinds = column_kinds(frame, ["spend", "plan", "trial", "signed_up"], None)
    assert kinds == {
        "numeric": ["spend"],
        "categorical": ["plan", "trial"],
        "datetime": ["signed_up"],
    }


def test_contract_types_override_the_dtypes() -> None:
    contract = load_contract(
        {"columns": {"customer_id": {"type": "category"}, "spend": {"type": "float"}}}
    )
    kinds = column_kinds(customers(), ["customer_id", "spend"], contract)
    assert kinds["categorical"] == ["customer_id"]
    assert kinds["numeric"] == ["spend"]


def test_stored_contract_decides_the_encoding(sqlite_workspace: loopml.Workspace) -> None:
    frame = customers()[["customer_id", "plan", "churned"]].assign(
        tier=lambda f: (f["customer_id"] % 3).astype("int64")
    )
    contract = {
        "columns": {
            "customer_id": {"type": "int"},
            "plan": {"type": "category", "categories": ["basic", "pro", "team"]},
            "churned": {"type": "bool"},
            "tier": {"type": "category"},
        }
    }
    sqlite_workspace.data.ingest(frame, name="tiers", contract=contract)
    result = sqlite_workspace.train(LogisticRegression(), data="tiers", target="churned")
    names = list(result.model[0].get_feature_names_out())
    assert "categorical__tier_0" in names  # an int column, one-hot encoded as its contract says


def test_missing_values_are_imputed_inside_the_model() -> None:
    frame = pd.DataFrame(
        {
            "x": [1.0, np.nan, 3.0, 5.0],
            "c": ["a", None, "b", "a"],
            "flag": [True, None, False, True],
        }
    )
    transformer = build_preprocessor(column_kinds(frame, list(frame.columns), None))
    out = transformer.fit_transform(frame)
    assert not np.isnan(np.asarray(out.todense() if hasattr(out, "todense") else out)).any()


def test_datetimes_become_numeric_parts() -> None:
    frame = pd.DataFrame({"ts": pd.to_datetime(["2024-03-05 07:00", None])})
    parts = datetime_parts(frame)
    assert parts[0].tolist() == [2024, 3, 5, 1, 7]
    assert np.isnan(parts[1]).all()
