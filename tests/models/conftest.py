"""Small real data and fitted models of each flavor, and helpers to edit a bundle."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from loopml.models import MANIFEST_NAME


def customers(rows: int = 120) -> pd.DataFrame:
    """Features of a churn problem: a float, an int and a category; plus the target."""
    generator = np.random.default_rng(0)
    spend = generator.gamma(2.0, 30.0, rows).round(2)
    tenure = generator.integers(1, 60, rows)
    plan = generator.choice(["basic", "pro", "team"], rows)
    churned = ((spend < 50) & (tenure < 24)).astype(int)
    return pd.DataFrame({"spend": spend, "tenure": tenure, "plan": plan, "churned": churned})


@pytest.fixture
def frame() -> pd.DataFrame:
    return customers()


@pytest.fixture
def features(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[["spend", "tenure"]]


@pytest.fixture
def classifier(frame: pd.DataFrame, features: pd.DataFrame) -> Pipeline:
    return Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())]).fit(
        features, frame["churned"]
    )


def edit_manifest(folder: Path, **changes: Any) -> None:
    """Rewrites fields of a bundle's manifest (which is not hashed)."""
    path = folder / MANIFEST_NAME
    manifest = yaml.safe_load(path.read_text())
    manifest.update(changes)
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))


def rewrite_file(folder: Path, name: str, data: bytes) -> None:
    """Replaces a bundle file and records its new sha256, as a consistent bundle would."""
    (folder / name).write_bytes(data)
    manifest = yaml.safe_load((folder / MANIFEST_NAME).read_text())
    edit_manifest(folder, files={**manifest["files"], name: hashlib.sha256(data).hexdigest()})
