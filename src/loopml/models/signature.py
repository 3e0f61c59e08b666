"""A model's signature: the columns it takes and what its predict returns.

Input types use the data contract's vocabulary (``int``, ``float``, ``string``, ``bool``,
``datetime``, ``date``, ``category``; see :mod:`loopml.data.contract`), so a signature
can come straight from the contract of the data a model was trained on, or be inferred
from an input example.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopml.errors import ValidationError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from loopml.data.contract import Contract

__all__ = ["ColumnSpec", "OutputSpec", "Signature"]


@dataclass(frozen=True)
class ColumnSpec:
    """One input column: its name, contract type, and whether values may be missing.

    ``nullable`` is recorded for the serving layer's schema; loading does not refuse
    missing values, since the model's own imputation decides what it can take.
    """

    name: str
    type: str
    nullable: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "nullable": self.nullable}


@dataclass(frozen=True)
class OutputSpec:
    """What ``predict`` returns; for a classifier also its classes and ``predict_proba``."""

    type: str
    name: str = "prediction"
    classes: list[Any] | None = None
    predict_proba: bool = False

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.classes is not None:
            data["classes"] = list(self.classes)
        data["predict_proba"] = self.predict_proba
        return data


@dataclass(frozen=True)
class Signature:
    """The inputs a model takes (None when unknown: nothing is checked) and its output.

    Example:
        >>> Signature([ColumnSpec("age", "int"), ColumnSpec("plan", "category")])
    """

    inputs: list[ColumnSpec] | None = None
    outputs: OutputSpec | None = field(default=None)

    @property
    def input_names(self) -> list[str]:
        return [column.name for column in self.inputs or []]

    @classmethod
    def from_contract(cls, contract: Contract, columns: Sequence[str] | None = None) -> Signature:
        """The inputs a contract describes, limited to and ordered as ``columns`` if given
        (leave the target out this way)."""
        if columns is None:
            chosen = list(contract.columns)
        else:
            known = {column.name: column for column in contract.columns}
            missing = [name for name in columns if name not in known]
            if missing:
                raise ValidationError(
                    f"The model takes columns the contract does not describe: "
                    f"{', '.join(missing)}. The contract has {', '.join(known)}; pass the "
                    "contract of the data the model was trained on."
                )
            chosen = [known[name] for name in columns]
        return cls([ColumnSpec(c.name, c.type, c.nullable) for c in chosen])

    @classmethod
    def from_example(cls, example: pd.DataFrame) -> Signature:
        """The inputs an example frame shows. Every column is nullable: a few rows
        cannot show that a value is never missing."""
        from loopml.data.contract import infer_contract

        inferred = infer_contract(example)
        return cls([ColumnSpec(c.name, c.type) for c in inferred.columns])

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": None if self.inputs is None else [c.to_dict() for c in self.inputs],
            "outputs": None if self.outputs is None else self.outputs.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        inputs = data.get("inputs")
        outputs = data.get("outputs")
        return cls(
            None if inputs is None else [ColumnSpec(**column) for column in inputs],
            None if outputs is None else OutputSpec(**outputs),
        )


def output_type(values: np.ndarray[Any, Any]) -> str:
    """The contract type of an array's values."""
    kind = values.dtype.kind
    if kind == "b":
        return "bool"
    if kind in "iu":
        return "int"
    if kind == "f":
        return "float"
    if kind == "M":
        return "datetime"
    return "string"
