"""Reads, splits and checks the data of a training run, before any run is started.

Not public: :func:`loopml.training.train` is the interface. Every check here raises a
ValidationError naming the column or class at fault and the fix, so bad input never
leaves a half-written run behind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.errors import ValidationError

if TYPE_CHECKING:
    import pandas as pd

    from loopml.data.catalog import DatasetVersion
    from loopml.data.contract import Contract
    from loopml.workspace import Workspace

__all__ = [
    "SPLIT_KEYS",
    "TrainingData",
    "check_classes",
    "check_target",
    "resolve_data",
    "split_spec",
]

SPLIT_KEYS = ("by", "column", "fractions", "seed")
DEFAULT_FRACTIONS = {"train": 0.8, "valid": 0.2}


@dataclass
class TrainingData:
    """The rows a run trains on, where they came from and what describes them."""

    frame: pd.DataFrame | None  # the whole data (cross-validation without a holdout)
    parts: dict[str, pd.DataFrame] | None  # "train" and "valid" (a holdout split)
    version: DatasetVersion | None
    contract: Contract | None
    description: str  # a dataset reference, or "DataFrame(rows x columns)"

    @property
    def fit_rows(self) -> pd.DataFrame:
        """The rows the final model is fit on: the train part, else all rows."""
        if self.parts is not None:
            return self.parts["train"]
        if self.frame is None:
            raise ValueError("TrainingData holds neither parts nor a frame.")
        return self.frame

    def log_model(
        self,
        run: Any,
        model: Any,
        features: list[str],
        outputs: Mapping[str, Any] | None = None,
    ) -> None:
        """Stores ``model`` on ``run`` as a bundle whose input signature is the contract
        (else a few rows) limited to ``features``: served, it checks requests against
        the training data's columns and types. The bundle's reference profile summarises
        the rows it was fit on and its predictions on the validation rows (``outputs``:
        those predictions, when the metrics made them already)."""
        from loopml.models import Signature
        from loopml.models.reference import build_reference, outputs_frame

        signature = (
            Signature.from_contract(self.contract, features) if self.contract is not None else None
        )
        holdout = self.parts["valid"] if self.parts is not None else None
        predicted = None
        if outputs is not None and holdout is not None:
            predicted = outputs_frame(
                outputs["predicted"], outputs.get("probabilities"), outputs.get("classes")
            )
        reference = build_reference(
            model,
            self.fit_rows,
            holdout,
            columns=features,
            source=self.description,
            predictions=predicted,
        )
        run.log_model(
            model,
            signature=signature,
            input_example=self.fit_rows[features].head(5),
            reference=reference,
        )


def split_spec(split: Any, task: str, target: str) -> dict[str, Any]:
    """The split to make: ``split`` completed with the defaults (stratified on the target
    for classification, random for regression; 80 % train, 20 % valid; seed 0). A
    ``test`` part may be named too; it is held out: training reads train and valid."""
    if split is None:
        by = "stratified" if task == "classification" else "random"
        split = {"by": by}
    elif isinstance(split, str):
        split = {"by": split}
    if not isinstance(split, Mapping):
        raise ValidationError(
            f"split must be a mapping such as {{'by': 'time', 'column': 'ts'}}, got {split!r}."
        )
    unknown = sorted(set(split) - set(SPLIT_KEYS))
    if unknown:
        raise ValidationError(
            f"Unknown split key(s) {', '.join(unknown)}; a split takes {', '.join(SPLIT_KEYS)}."
        )
    spec = {"by": split.get("by", "random"), "seed": int(split.get("seed", 0))}
    spec["fractions"] = dict(split.get("fractions") or DEFAULT_FRACTIONS)
    if set(spec["fractions"]) - {"test"} != {"train", "valid"}:
        raise ValidationError(
            f"split fractions must name exactly the parts 'train' and 'valid' (and "
            f"optionally 'test', held out), got {sorted(spec['fractions'])}; e.g. "
            "{'train': 0.8, 'valid': 0.2}."
        )
    column = split.get("column")
    if column is None and spec["by"] == "stratified":
        column = target
    spec["column"] = column
    return spec


def resolve_data(workspace: Workspace, data: Any, spec: dict[str, Any] | None) -> TrainingData:
    """Loads ``data`` whole (``spec`` None) or as its train and valid parts."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        description = f"DataFrame({len(data)} rows x {len(data.columns)} columns)"
        if spec is None:
            return TrainingData(data, None, None, None, description)
        return TrainingData(None, _split_frame(data, spec), None, None, description)
    from loopml.data.catalog import DatasetVersion

    if not isinstance(data, (str, DatasetVersion)):
        raise ValidationError(
            "data must be a dataset reference such as 'churn@4', a DatasetVersion or a "
            f"pandas DataFrame, got {type(data).__name__}."
        )
    version = workspace.data.version(data)
    contract = None
    if version.contract_version is not None:
        contract = workspace.data.contract(version.name, version.contract_version)
    if spec is None:
        return TrainingData(workspace.data.get(version), None, version, contract, version.ref)
    parts = workspace.data.split(
        version,
        by=spec["by"],
        fractions=spec["fractions"],
        seed=spec["seed"],
        column=spec["column"],
    )
    return TrainingData(None, parts, version, contract, version.ref)


def _split_frame(frame: pd.DataFrame, spec: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """The same split as ``ws.data.split`` would store, made on an in-memory frame
    (reading only the split column)."""
    import pyarrow as pa

    from loopml.data.split import SplitDefinition, assign

    definition = SplitDefinition(spec["by"], spec["fractions"], spec["seed"], spec["column"])
    column = spec["column"]
    if column is not None and column not in frame.columns:
        raise ValidationError(
            f"Split column {column!r} is not in the data; it has {_names(frame.columns)}."
        )
    table = (
        pa.table({column: frame[column]})
        if column is not None
        else pa.table({"row": np.zeros(len(frame), dtype=np.int8)})
    )
    assignment = assign(definition, table)
    return {
        name: frame.iloc[np.flatnonzero(assignment == index)]
        for index, name in enumerate(definition.fractions)
    }


def check_columns(columns: Any, target: str, features: list[str] | None) -> list[str]:
    """The feature columns (every column but the target when ``features`` is None)."""
    names = list(columns)
    if target not in names:
        raise ValidationError(
            f"Target column {target!r} is not in the data; it has {_names(names)}. "
            "Pass target= one of them."
        )
    if features is None:
        return [name for name in names if name != target]
    if isinstance(features, str):
        features = [features]
    missing = [name for name in features if name not in names]
    if missing:
        raise ValidationError(
            f"Feature(s) {', '.join(map(repr, missing))} not in the data; it has "
            f"{_names(names)}. Fix features= or ingest a version with those columns."
        )
    if target in features:
        raise ValidationError(
            f"The target {target!r} is also listed in features=; remove it from the features."
        )
    return list(features)


def check_target(values: pd.Series, target: str) -> None:
    """No missing values, and at least two distinct ones."""
    missing = int(values.isna().sum())
    if missing:
        rows = np.flatnonzero(values.isna().to_numpy())[:5].tolist()
        raise ValidationError(
            f"Target {target!r} has {missing} missing value(s) (e.g. at rows {rows}); a "
            "model cannot learn from them. Drop or fill those rows and ingest a new version "
            f"(a contract with {target}: {{nullable: false}} keeps them out)."
        )
    if values.nunique() < 2:
        only: Any = values.iloc[0] if len(values) else None
        only = only.item() if hasattr(only, "item") else only  # numpy scalars read plainly
        raise ValidationError(
            f"Target {target!r} holds a single value ({only!r}) in every row; there is "
            "nothing to learn. Check the dataset version or choose another target column."
        )


def check_classes(train: pd.Series, valid: pd.Series, target: str, by: str) -> None:
    """Every class of the validation part also occurs in the training part."""
    unseen = sorted(set(valid.unique()) - set(train.unique()), key=str)
    if unseen:
        advice = (
            "Use split={'by': 'stratified'} so each class is in both parts"
            if by != "stratified"
            else "Each of these classes has too few rows to be in both parts; add rows "
            "or merge rare classes"
        )
        raise ValidationError(
            f"Class(es) {', '.join(map(repr, unseen))} of target {target!r} occur only in "
            f"the validation split (a {by} split), so the model never sees them in "
            f"training. {advice}."
        )


def _names(columns: Any) -> str:
    names = [str(name) for name in columns]
    return ", ".join(names[:20]) + (f" ... ({len(names)} columns)" if len(names) > 20 else "")
