"""What changed between two versions of a dataset, computed by DuckDB over the Parquet files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DatasetDiff", "diff_files"]


@dataclass
class DatasetDiff:
    """Schema, row and distribution changes from version ``old`` to version ``new``.

    ``rows_added``/``rows_removed``/``rows_changed`` are counted by ``key`` (the
    contract's key columns unless given) and are None when there is no key.
    """

    old: str
    new: str
    rows_old: int
    rows_new: int
    columns_added: list[str]
    columns_removed: list[str]
    types_changed: dict[str, tuple[str, str]]
    key: list[str] | None
    rows_added: int | None = None
    rows_removed: int | None = None
    rows_changed: int | None = None
    columns: pd.DataFrame = field(default=None, repr=False)  # type: ignore[assignment]

    @property
    def identical_schema(self) -> bool:
        return not (self.columns_added or self.columns_removed or self.types_changed)

    def __str__(self) -> str:
        lines = [f"{self.old} -> {self.new}: rows {self.rows_old:,} -> {self.rows_new:,}"]
        if self.columns_added:
            lines.append(f"  columns added: {', '.join(self.columns_added)}")
        if self.columns_removed:
            lines.append(f"  columns removed: {', '.join(self.columns_removed)}")
        for name, (before, after) in self.types_changed.items():
            lines.append(f"  {name}: type {before} -> {after}")
        if self.key:
            lines.append(
                f"  by key {', '.join(self.key)}: {self.rows_added:,} added, "
                f"{self.rows_removed:,} removed, {self.rows_changed:,} changed"
            )
        return "\n".join(lines)


def diff_files(
    old_ref: str, old: Path, new_ref: str, new: Path, key: list[str] | None
) -> DatasetDiff:
    import duckdb

    connection = duckdb.connect()
    try:
        old_types = _types(connection, old)
        new_types = _types(connection, new)
        common = [c for c in new_types if c in old_types]
        result = DatasetDiff(
            old=old_ref,
            new=new_ref,
            rows_old=_count(connection, old),
            rows_new=_count(connection, new),
            columns_added=[c for c in new_types if c not in old_types],
            columns_removed=[c for c in old_types if c not in new_types],
            types_changed={
                c: (old_types[c], new_types[c]) for c in common if old_types[c] != new_types[c]
            },
            key=key if key and all(k in common for k in key) else None,
        )
        if result.key:
            on = " AND ".join(f"o.{_q(k)} = n.{_q(k)}" for k in result.key)
            src_old, src_new = _read(old), _read(new)
            result.rows_added = _scalar(
                connection,
                f"SELECT count(*) FROM {src_new} n WHERE NOT EXISTS "
                f"(SELECT 1 FROM {src_old} o WHERE {on})",
            )
            result.rows_removed = _scalar(
                connection,
                f"SELECT count(*) FROM {src_old} o WHERE NOT EXISTS "
                f"(SELECT 1 FROM {src_new} n WHERE {on})",
            )
            values = [c for c in common if c not in result.key]
            differs = " OR ".join(f"o.{_q(c)} IS DISTINCT FROM n.{_q(c)}" for c in values)
            result.rows_changed = (
                _scalar(
                    connection,
                    f"SELECT count(*) FROM {src_old} o JOIN {src_new} n ON {on} WHERE {differs}",
                )
                if values
                else 0
            )
        result.columns = _summaries(connection, old, new)
        return result
    finally:
        connection.close()


def _read(path: Path) -> str:
    return "read_parquet('" + str(path).replace("'", "''") + "')"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _types(connection: Any, path: Path) -> dict[str, str]:
    rows = connection.execute(f"DESCRIBE SELECT * FROM {_read(path)}").fetchall()
    return {str(row[0]): str(row[1]) for row in rows}


def _count(connection: Any, path: Path) -> int:
    return _scalar(connection, f"SELECT count(*) FROM {_read(path)}")


def _scalar(connection: Any, sql: str) -> int:
    return int(connection.execute(sql).fetchone()[0])


def _summaries(connection: Any, old: Path, new: Path) -> pd.DataFrame:
    """One row per column: null share, distinct count, mean, std, min and max, old and new."""
    import pandas as pd

    wanted = ["min", "max", "approx_unique", "avg", "std", "null_percentage"]
    frames = []
    for label, path in (("old", old), ("new", new)):
        summary = connection.execute(f"SUMMARIZE SELECT * FROM {_read(path)}").df()
        summary = summary.set_index("column_name")[wanted]
        summary.columns = [f"{name}_{label}" for name in wanted]
        frames.append(summary)
    merged = pd.concat(frames, axis=1)
    order = [f"{name}_{label}" for name in wanted for label in ("old", "new")]
    merged = merged[order].rename(columns=lambda c: c.replace("approx_unique", "distinct"))
    merged.index.name = "column"
    result: pd.DataFrame = merged.reset_index()
    return result
