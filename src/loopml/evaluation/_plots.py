"""Plotly figures of an evaluation, drawn from its pre-aggregated curves, never raw rows
(see ``loopml.evaluation``)."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopml.evaluation.result import Evaluation

__all__ = ["figures"]


def figures(evaluation: Evaluation) -> dict[str, Any]:
    """The evaluation's figures by name (``confusion_matrix``, ``roc``, ``pr``,
    ``calibration``, ``residuals``, ``feature_importance``), those that apply."""
    import plotly.graph_objects as go

    curves = evaluation.curves
    found: dict[str, Any] = {}
    if "confusion_matrix" in curves:
        labels = [str(c) for c in curves.get("classes", [])]
        found["confusion_matrix"] = go.Figure(
            go.Heatmap(
                z=curves["confusion_matrix"],
                x=labels,
                y=labels,
                colorscale="Blues",
                texttemplate="%{z}",
            ),
            layout={
                "title": "Confusion matrix",
                "xaxis": {"title": "predicted"},
                "yaxis": {"title": "actual", "autorange": "reversed"},
            },
        )
    if "roc" in curves:
        auc = evaluation.metrics.get("roc_auc", float("nan"))
        figure = go.Figure(
            go.Scatter(x=curves["roc"]["fpr"], y=curves["roc"]["tpr"], name=f"AUC {auc:.3f}")
        )
        figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], line={"dash": "dash"}, name="chance"))
        figure.update_layout(
            title="ROC curve", xaxis_title="false positive rate", yaxis_title="true positive rate"
        )
        found["roc"] = figure
    if "pr" in curves:
        found["pr"] = go.Figure(
            go.Scatter(x=curves["pr"]["recall"], y=curves["pr"]["precision"]),
            layout={
                "title": "Precision-recall curve",
                "xaxis": {"title": "recall"},
                "yaxis": {"title": "precision"},
            },
        )
    if "calibration" in curves:
        figure = go.Figure(
            go.Scatter(
                x=curves["calibration"]["mean_predicted"],
                y=curves["calibration"]["fraction_positive"],
                mode="lines+markers",
                name="model",
            )
        )
        figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], line={"dash": "dash"}, name="perfect"))
        figure.update_layout(
            title="Calibration", xaxis_title="mean predicted probability",
            yaxis_title="fraction positive",
        )  # fmt: skip
        found["calibration"] = figure
    if "residuals" in curves:
        histogram = curves["residuals"]["histogram"]
        edges = histogram["edges"]
        centers = [(a + b) / 2 for a, b in itertools.pairwise(edges)]
        found["residuals"] = go.Figure(
            go.Bar(x=centers, y=histogram["counts"]),
            layout={"title": "Residuals (actual - predicted)", "xaxis": {"title": "residual"}},
        )
    if evaluation.importance:
        names = list(evaluation.importance)[::-1]
        found["feature_importance"] = go.Figure(
            go.Bar(
                x=[evaluation.importance[n]["mean"] for n in names],
                y=names,
                orientation="h",
                error_x={"array": [evaluation.importance[n]["std"] for n in names]},
            ),
            layout={"title": "Permutation importance"},
        )
    return found
