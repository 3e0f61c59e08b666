"""The result of ``ws.evaluate``: metrics with intervals, slices, fairness, robustness."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["Evaluation"]

_FORMAT = 1


@dataclass
class Evaluation:
    """One evaluation of a model on data.

    Attributes:
        task: ``"binary"``, ``"multiclass"`` or ``"regression"``.
        metrics: Metric name to value on all rows.
        intervals: Bootstrap percentile intervals (95%) of the headline metrics.
        slices: One row per slice (column, value, n, metrics), worst first.
        worst_slice: For each metric, the slice where it is worst.
        fairness: Metrics by sensitive group and the parity differences, if asked.
        robustness: The headline metric under each perturbation, if asked.
        importance: Permutation importance per feature (mean, std), if asked.
        curves: Pre-aggregated plot data (ROC, PR, calibration, confusion, residuals).
    """

    task: str
    target: str
    n_rows: int
    metrics: dict[str, float]
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    slices: pd.DataFrame = field(default_factory=pd.DataFrame)
    worst_slice: dict[str, dict[str, Any]] = field(default_factory=dict)
    fairness: dict[str, Any] | None = None
    robustness: list[dict[str, Any]] | None = None
    importance: dict[str, dict[str, float]] | None = None
    curves: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    evaluation_id: str | None = None
    run_id: str | None = None
    dataset: str | None = None  # "name@version" when the data was a stored version
    created_at: int | None = None  # milliseconds since the epoch

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in list(self.metrics.items())[:4])
        return f"Evaluation(task={self.task!r}, n_rows={self.n_rows}, {shown})"

    def to_frame(self) -> pd.DataFrame:
        """One row per metric: metric, value, low, high (NaN where no interval)."""
        rows = [
            (name, value, *self.intervals.get(name, (math.nan, math.nan)))
            for name, value in self.metrics.items()
        ]
        return pd.DataFrame(rows, columns=["metric", "value", "low", "high"])

    def figures(self) -> dict[str, Any]:
        """Plotly figures by name, drawn from the stored curves."""
        from loopml.evaluation._plots import figures

        return figures(self)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_dict` reads it back."""
        return {
            "format": _FORMAT,
            "evaluation_id": self.evaluation_id,
            "run_id": self.run_id,
            "dataset": self.dataset,
            "created_at": self.created_at,
            "task": self.task,
            "target": self.target,
            "n_rows": self.n_rows,
            "metrics": {k: _json_number(v) for k, v in self.metrics.items()},
            "intervals": {
                k: [_json_number(a), _json_number(b)] for k, (a, b) in self.intervals.items()
            },
            "slices": _records(self.slices),
            "worst_slice": _clean(self.worst_slice),
            "fairness": _clean(self.fairness),
            "robustness": _clean(self.robustness),
            "importance": _clean(self.importance),
            "curves": _clean(self.curves),
            "settings": _clean(self.settings),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evaluation:
        return cls(
            task=data["task"],
            target=data["target"],
            n_rows=int(data["n_rows"]),
            metrics={k: _number(v) for k, v in data["metrics"].items()},
            intervals={
                k: (_number(a), _number(b)) for k, (a, b) in data.get("intervals", {}).items()
            },
            slices=pd.DataFrame(data.get("slices") or []),
            worst_slice=data.get("worst_slice") or {},
            fairness=data.get("fairness"),
            robustness=data.get("robustness"),
            importance=data.get("importance"),
            curves=data.get("curves") or {},
            settings=data.get("settings") or {},
            evaluation_id=data.get("evaluation_id"),
            run_id=data.get("run_id"),
            dataset=data.get("dataset"),
            created_at=data.get("created_at"),
        )


def _json_number(value: Any) -> float | None:
    """NaN and infinities become None, so the JSON is standard."""
    number = float(value)
    return number if math.isfinite(number) else None


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return _clean(value.item())
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [_clean(row) for row in frame.to_dict(orient="records")]
