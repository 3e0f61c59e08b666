"""Uniqueness across batches: each row's value as a 64-bit key, and the keys seen so far.

Internal: use ``loopml.data.validation``, whose docstring states what counts as a repeat
and the odds that two distinct texts share a hash.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    from loopml.data.validation import _Plan  # the compiled column; validation imports this

__all__ = ["EXACT_KINDS", "KeyEncoder", "LaterKeys", "SeenSet", "key_values", "mix"]


# Column types whose 64-bit key is the value itself (category: its position in the
# contract's categories), so a key turns back into the value it came from.
EXACT_KINDS = frozenset({"int", "float", "bool", "datetime", "date"})


class KeyEncoder:
    """Turns a column's values into one uint64 key per row (text through DuckDB's hash)."""

    def __init__(self) -> None:
        self._duckdb: Any = None

    def encode(
        self, values: pa.Array, plan: _Plan
    ) -> tuple[np.ndarray[Any, np.dtype[np.uint64]], np.ndarray[Any, np.dtype[np.bool_]] | None]:
        """A uint64 per row (exact for numbers and dates, a hash for text) and which
        rows have a value (None: all)."""
        present = values.is_valid().to_numpy(zero_copy_only=False) if values.null_count else None
        kind = plan.column.type
        if kind == "category" and plan.categories is not None:
            values = values.indices  # positions in the contract's categories: exact
            kind = "int"
        if kind in ("string", "category"):
            return self._hash_text(values), present
        if kind == "bool":
            return values.fill_null(False).to_numpy(zero_copy_only=False).astype(np.uint64), present
        if values.null_count == len(values):
            return np.zeros(len(values), np.uint64), present
        dtype = np.dtype(np.float64 if kind == "float" else f"int{values.type.bit_width}")
        numbers = np.frombuffer(
            values.buffers()[1],
            dtype=dtype,
            count=len(values),
            offset=values.offset * dtype.itemsize,
        )
        if kind == "float":
            return (numbers + 0.0).view(np.uint64), present  # -0.0 and 0.0 are one value
        return numbers.astype(np.int64, copy=False).view(np.uint64), present

    def _hash_text(self, values: pa.Array) -> np.ndarray[Any, np.dtype[np.uint64]]:
        if self._duckdb is None:
            import duckdb

            self._duckdb = duckdb.connect()
        if pa.types.is_dictionary(values.type):
            values = values.dictionary_decode()
        relation = self._duckdb.from_arrow(pa.table({"v": values}))
        hashed = relation.project("hash(v) AS h").to_arrow_table().column(0)
        return np.asarray(hashed.to_numpy(), dtype=np.uint64)


_MARK_BITS = 25  # 32 MiB of marks: under a fifth of slots taken at 10M keys on average


class SeenSet:
    """Every key seen so far, as sorted uint64 runs merged like a binary counter.

    A byte per hashed slot marks the keys already seen: only keys whose slot is marked
    need the binary searches through the runs, which for new keys is rarely the case.
    """

    def __init__(self) -> None:
        self._runs: list[np.ndarray[Any, np.dtype[np.uint64]]] = []
        self._marks: np.ndarray[Any, np.dtype[np.uint8]] | None = None

    def repeats(
        self,
        keys: np.ndarray[Any, np.dtype[np.uint64]],
        present: np.ndarray[Any, np.dtype[np.bool_]] | None,
    ) -> np.ndarray[Any, np.dtype[np.bool_]] | None:
        """Marks each row whose key appeared before (earlier in this batch or in an
        earlier batch) and remembers the keys; None when nothing repeats."""
        rows = np.flatnonzero(present) if present is not None else None
        candidates = keys[rows] if rows is not None else keys
        ordered = np.sort(candidates)
        later = np.zeros(len(ordered), dtype=np.bool_)
        later[1:] = ordered[1:] == ordered[:-1]
        earlier = self._earlier(ordered)
        if not later.any() and (earlier is None or not earlier.any()):
            self._add(ordered)
            return None
        order = np.argsort(candidates, kind="stable")  # equal keys keep their row order
        ordered = candidates[order]
        later[1:] = ordered[1:] == ordered[:-1]
        earlier = self._earlier(ordered)
        repeated_sorted = later if earlier is None else later | earlier
        self._add(ordered[~later])
        repeated = np.empty(len(candidates), dtype=np.bool_)
        repeated[order] = repeated_sorted
        if rows is None:
            return repeated
        full = np.zeros(len(keys), dtype=np.bool_)
        full[rows] = repeated
        return full

    def _earlier(
        self, ordered: np.ndarray[Any, np.dtype[np.uint64]]
    ) -> np.ndarray[Any, np.dtype[np.bool_]] | None:
        """Which of the sorted keys were seen before; None when none can have been."""
        if self._marks is None or not len(ordered):
            return None
        maybe = np.flatnonzero(self._marks[_slots(ordered)])
        if not len(maybe):
            return None
        inside = self._contains(ordered[maybe])  # a subset of sorted keys stays sorted
        if inside is None:
            return None
        found = np.zeros(len(ordered), dtype=np.bool_)
        found[maybe] = inside
        return found

    def _contains(
        self, ordered: np.ndarray[Any, np.dtype[np.uint64]]
    ) -> np.ndarray[Any, np.dtype[np.bool_]] | None:
        """Which of the sorted keys are in a run; None when none can be."""
        found = None
        for run in self._runs:
            # Only keys inside the run's range can be in it: ascending ids skip the search.
            start = int(np.searchsorted(ordered, run[0]))
            stop = int(np.searchsorted(ordered, run[-1], side="right"))
            if start >= stop:
                continue
            inside = ordered[start:stop]
            where = np.searchsorted(run, inside)
            np.minimum(where, len(run) - 1, out=where)
            if found is None:
                found = np.zeros(len(ordered), dtype=np.bool_)
            found[start:stop] |= run[where] == inside
        return found

    def _add(self, ordered: np.ndarray[Any, np.dtype[np.uint64]]) -> None:
        run = ordered
        if not len(run):
            return
        if self._marks is None:
            self._marks = np.zeros(1 << _MARK_BITS, dtype=np.uint8)
        self._marks[_slots(run)] = 1
        while self._runs and len(self._runs[-1]) <= 2 * len(run):
            older = self._runs.pop()
            run = np.concatenate([older, run])
            if older[-1] >= run[len(older)]:  # ascending keys need no sort
                run.sort(kind="stable")  # timsort merges the two sorted runs in one pass
        self._runs.append(run)


def _slots(keys: np.ndarray[Any, np.dtype[np.uint64]]) -> np.ndarray[Any, np.dtype[np.uint64]]:
    return mix(keys) >> np.uint64(64 - _MARK_BITS)


_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


def mix(keys: np.ndarray[Any, np.dtype[np.uint64]]) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """splitmix64's finalizer: spreads a key's bits before combining key columns."""
    keys = (keys ^ (keys >> np.uint64(30))) * _MIX_1
    keys = (keys ^ (keys >> np.uint64(27))) * _MIX_2
    return keys ^ (keys >> np.uint64(31))


class LaterKeys:
    """Every key in row order, searched for repeats once, at the end: one sort of all
    the keys instead of a binary search through the earlier keys for every batch.

    The batches are not told which of their rows repeat; ``repeats()`` names the rows.
    Memory: 8 bytes per row with a value, twice that while ``repeats()`` sorts.
    """

    def __init__(self) -> None:
        self._chunks: list[np.ndarray[Any, np.dtype[np.uint64]]] = []
        self._batches: list[tuple[int, int, np.ndarray[Any, np.dtype[np.int64]] | None]] = []
        self._keys = 0
        self._checked: (
            tuple[int, np.ndarray[Any, np.dtype[np.int64]], np.ndarray[Any, np.dtype[np.uint64]]]
            | None
        ) = None

    def add(
        self,
        keys: np.ndarray[Any, np.dtype[np.uint64]],
        present: np.ndarray[Any, np.dtype[np.bool_]] | None,
        offset: int,
    ) -> None:
        """Keeps the keys of one batch whose first row is row ``offset`` overall;
        ``present`` tells which rows have a value (None: all)."""
        rows = None if present is None else np.flatnonzero(present)
        kept = keys if rows is None else keys[rows]
        if not len(kept):
            return
        self._chunks.append(kept)
        self._batches.append((self._keys, offset, rows))  # first key, first row, rows
        self._keys += len(kept)

    def repeats(
        self,
    ) -> tuple[np.ndarray[Any, np.dtype[np.int64]], np.ndarray[Any, np.dtype[np.uint64]]]:
        """The row numbers (from 0, ascending) of the rows whose key appeared in an
        earlier row, and their keys; the first occurrence of a key is not a repeat."""
        if self._checked is not None and self._checked[0] == self._keys:
            return self._checked[1], self._checked[2]
        ordered = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.uint64)
        ordered.sort()  # in place: no memory beyond this one copy of the keys
        repeated = ordered[1:][ordered[1:] == ordered[:-1]]
        del ordered
        positions = np.zeros(0, np.int64)
        keys = np.zeros(0, np.uint64)
        if len(repeated):  # rare: the search for the rows only runs when something repeats
            keys = np.concatenate(self._chunks)  # in row order
            values = np.unique(repeated)
            spot = np.minimum(np.searchsorted(values, keys), len(values) - 1)
            where = np.flatnonzero(values[spot] == keys)  # every row of a repeated key
            grouped = keys[where]
            order = np.argsort(grouped, kind="stable")  # equal keys keep their row order
            grouped = grouped[order]
            later = np.zeros(len(grouped), dtype=np.bool_)
            later[1:] = grouped[1:] == grouped[:-1]
            positions = np.sort(where[order[later]])
        self._checked = (self._keys, self._row_numbers(positions), keys[positions])
        return self._checked[1], self._checked[2]

    def _row_numbers(
        self, positions: np.ndarray[Any, np.dtype[np.int64]]
    ) -> np.ndarray[Any, np.dtype[np.int64]]:
        """The row number of each position among the kept keys."""
        firsts = np.array([first for first, _, _ in self._batches], dtype=np.int64)
        batch = np.searchsorted(firsts, positions, side="right") - 1
        within = positions - firsts[batch]
        offsets = np.array([offset for _, offset, _ in self._batches], dtype=np.int64)
        numbers = offsets[batch] + within
        for index, (_, offset, rows) in enumerate(self._batches):
            if rows is not None:  # a batch with missing values kept only some rows
                mine = batch == index
                numbers[mine] = offset + rows[within[mine]]
        return numbers


def key_values(keys: np.ndarray[Any, np.dtype[np.uint64]], plan: _Plan) -> pa.Array:
    """The values that ``KeyEncoder.encode`` turned into these keys, for a column of
    one of ``EXACT_KINDS`` or a category column with its categories listed."""
    kind = plan.column.type
    numbers = keys.view(np.int64)
    if kind == "category":
        assert plan.categories is not None
        return plan.categories.take(pa.array(numbers))
    if kind == "float":
        return pa.array(keys.view(np.float64))
    if kind == "bool":
        return pa.array(numbers != 0)
    if kind == "date":
        return pa.array(numbers.astype(np.int32)).view(pa.date32())
    return pa.array(numbers).view(plan.type)  # int64, or timestamp[us]
