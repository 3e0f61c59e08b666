"""``loopml predict``: batch scoring from the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

import loopml
from tests.cli import assert_clean_failure, invoke


def inputs(rows: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"size": rng.normal(size=rows), "rooms": rng.normal(size=rows)})


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A workspace with ``price`` version 1 at alias production, and an input file."""
    folder = tmp_path / "home"
    train = inputs().assign(price=lambda f: 3 * f["size"] + f["rooms"])
    with loopml.Workspace.open(folder) as ws:
        result = ws.train(LinearRegression(), data=train, target="price", experiment="price")
        ws.registry.register(result, name="price")
        ws.registry.promote("price", 1, "production", force=True, reason="cli tests")
    inputs().to_parquet(tmp_path / "in.parquet")
    return folder


def test_predict_writes_the_output_and_logs_batch_rows(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "preds.parquet"
    result = invoke(
        home, "predict", "models:/price@production", "--input", str(tmp_path / "in.parquet"),
        "--output", str(out), "--chunk-rows", "100",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Scored 300 rows with price version 1" in result.output
    assert len(pd.read_parquet(out)) == 300
    with loopml.Workspace.open(home) as ws:
        assert len(ws.predictions("price", source="batch")) == 300


def test_predict_refuses_an_existing_output_unless_overwrite(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "preds.parquet"
    out.write_text("keep")
    arguments = ["predict", "models:/price/1", "--input", str(tmp_path / "in.parquet"),
                 "--output", str(out), "--no-log"]  # fmt: skip
    assert_clean_failure(invoke(home, *arguments), "already exists", "--overwrite")
    assert out.read_text() == "keep"
    assert invoke(home, *arguments, "--overwrite").exit_code == 0
    with loopml.Workspace.open(home) as ws:
        assert ws.predictions("price").empty


def test_predict_names_an_unknown_model_or_missing_columns(home: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "preds.parquet")
    source = str(tmp_path / "in.parquet")
    assert_clean_failure(
        invoke(home, "predict", "models:/nope/1", "--input", source, "--output", out), "nope"
    )
    inputs().drop(columns="rooms").to_parquet(tmp_path / "partial.parquet")
    partial = str(tmp_path / "partial.parquet")
    assert_clean_failure(
        invoke(home, "predict", "models:/price/1", "--input", partial, "--output", out), "'rooms'"
    )
