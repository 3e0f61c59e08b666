"""Reproducible splits of a dataset version: random, stratified, by time or by group.

A split is defined by its method, fractions, seed and column; the definition and the
resulting row assignment are stored, so asking again returns exactly the same rows,
even after a library upgrade changes how random numbers are drawn.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from loopml.errors import ValidationError

__all__ = ["SplitDefinition", "assign", "parts_of"]

METHODS = ("random", "stratified", "time", "group")


@dataclass(frozen=True)
class SplitDefinition:
    """How to split: ``fractions`` maps part names to shares that add up to 1."""

    by: str
    fractions: dict[str, float]
    seed: int = 0
    column: str | None = None

    def __post_init__(self) -> None:
        if self.by not in METHODS:
            raise ValidationError(f"by must be one of {', '.join(METHODS)}, got {self.by!r}.")
        if not self.fractions or any(v <= 0 for v in self.fractions.values()):
            raise ValidationError(
                f"fractions must name parts with positive shares, got {self.fractions!r}."
            )
        if abs(sum(self.fractions.values()) - 1.0) > 1e-9:
            raise ValidationError(
                f"fractions must add up to 1, got {sum(self.fractions.values())} from "
                f"{self.fractions!r}."
            )
        if self.by != "random" and not self.column:
            raise ValidationError(
                f"A {self.by} split needs column= (the "
                + {"stratified": "label", "time": "timestamp", "group": "group id"}[self.by]
                + " column)."
            )

    def to_json(self) -> str:
        # fractions as ordered pairs: part numbers in the stored assignment follow their
        # order, so {"train", "test"} and {"test", "train"} are different splits.
        data = {**asdict(self), "fractions": [list(pair) for pair in self.fractions.items()]}
        return json.dumps(data, sort_keys=True)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()


def assign(definition: SplitDefinition, table: pa.Table) -> np.ndarray:
    """The part index (position in ``fractions``) of every row, as int8."""
    rows = table.num_rows
    if rows == 0:
        raise ValidationError("Cannot split a version with no rows.")
    shares = np.array(list(definition.fractions.values()))
    rng = np.random.default_rng(definition.seed)
    if definition.by != "random":
        column = definition.column or ""
        if column not in table.column_names:
            raise ValidationError(
                f"Column {column!r} is not in the data; it has {', '.join(table.column_names)}."
            )
    if definition.by == "random":
        return _by_order(rng.permutation(rows), shares)
    if definition.by == "time":
        values = table.column(column).to_numpy(zero_copy_only=False)
        return _by_order(np.argsort(values, kind="stable"), shares)
    codes, count = _codes(table.column(column))
    if definition.by == "stratified":
        parts = np.empty(rows, dtype=np.int8)
        by_label = np.argsort(codes, kind="stable")
        bounds = np.cumsum(np.bincount(codes, minlength=count))[:-1]
        for members in np.split(by_label, bounds):
            parts[members] = _by_order(rng.permutation(len(members)), shares)
        return parts
    # group: whole groups go to one part, groups shuffled with the seed
    group_parts = _by_order(rng.permutation(count), shares)
    parts_of_groups: np.ndarray = group_parts[codes].astype(np.int8)
    return parts_of_groups


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, int]:
    """A dense integer code per row (missing values form a group of their own), vectorized
    for any column type, and how many codes there are."""
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(column).combine_chunks()
    distinct = len(encoded.dictionary)
    codes = pc.fill_null(encoded.indices, distinct).to_numpy(zero_copy_only=False)
    return codes.astype(np.int64), distinct + 1


def _by_order(order: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """Part indexes for rows taken in ``order``: the first shares[0] of them to part 0..."""
    count = len(order)
    bounds = np.round(np.cumsum(shares) * count).astype(np.int64)
    ranks = np.empty(count, dtype=np.int64)
    ranks[order] = np.arange(count)
    return np.searchsorted(bounds, ranks, side="right").astype(np.int8)


def parts_of(
    definition: SplitDefinition, assignment: np.ndarray, table: pa.Table
) -> dict[str, Any]:
    """The rows of each part, as Arrow tables keyed by part name."""
    return {
        name: table.filter(pa.array(assignment == index))
        for index, name in enumerate(definition.fractions)
    }
