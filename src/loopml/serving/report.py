"""``loopml deploy report``: a deployment's arms compared from the prediction log.

A shadow's answers pair with the primary's by request id and row; an A/B test's arms are
scored on the rows that have feedback (accuracy for labels, absolute error for numbers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from loopml.serving.policies import ABResult, ShadowReport, ab_test, shadow_report

if TYPE_CHECKING:
    import pandas as pd

    from loopml.workspace import Workspace

__all__ = ["DeploymentReport", "deployment_report"]


@dataclass
class DeploymentReport:
    shadow: ShadowReport | None = None
    ab: ABResult | None = None
    notes: list[str] = field(default_factory=list)


def deployment_report(
    workspace: Workspace,
    model: str,
    alias: str = "production",
    since: str | None = None,
    record: bool = False,
) -> DeploymentReport:
    """Compares the arms of ``model``'s deployment over the logged predictions."""
    window = _since(since)
    report = DeploymentReport()
    logged = workspace.predictions(model, since=window)
    arms = logged["arm"] if "arm" in logged.columns else None
    if arms is None or arms.isna().all():
        report.notes.append(f"No deployment arms in the prediction log of {model!r} yet.")
        return report
    if (arms == "shadow").any():
        report.shadow = _shadow(logged)
    if arms.isin(["a", "b"]).any():
        labelled = workspace.predictions_with_feedback(model, since=window)
        labelled = labelled[labelled["arm"].isin(["a", "b"]) & labelled["label"].notna()]
        if labelled["arm"].nunique() < 2 or labelled.groupby("arm").size().min() < 2:
            report.notes.append(
                "The A/B test has too little feedback yet: POST /feedback with the request "
                "ids (or ws.log_feedback) to score the arms."
            )
        else:
            report.ab = _ab(labelled)
            if record and report.ab.decision != "inconclusive":
                versions = labelled.groupby("arm")["version"].first()
                workspace.registry.record_event(
                    model,
                    alias,
                    "ab-decision",
                    int(versions["a"]),
                    int(versions["b"]),
                    f"{report.ab.metric}: arm {report.ab.decision} wins "
                    f"(B - A = {report.ab.difference:+.4f}, p = {report.ab.p_value:.3g})",
                )
                report.notes.append("The decision is recorded in the alias history.")
    return report


def _shadow(logged: pd.DataFrame) -> ShadowReport:
    keys = ["request_id", "row"]
    shadow = logged[logged["arm"] == "shadow"]
    primary = logged[logged["arm"] != "shadow"]
    pairs = primary.merge(shadow, on=keys, suffixes=("", "_shadow"))
    probabilities = [c for c in logged.columns if c.startswith("proba_")]
    scores: dict[str, Any] = {}
    if probabilities:
        scores = {
            "primary_scores": pairs[probabilities].to_numpy(float).max(axis=1),
            "shadow_scores": pairs[[f"{c}_shadow" for c in probabilities]]
            .to_numpy(float)
            .max(axis=1),
        }
    return shadow_report(
        pairs["prediction"].to_numpy(),
        pairs["prediction_shadow"].to_numpy(),
        pairs["latency_ms"].to_numpy(float),
        pairs["latency_ms_shadow"].to_numpy(float),
        **scores,
    )


def _ab(labelled: pd.DataFrame) -> ABResult:
    predictions, labels = labelled["prediction"], labelled["label"]
    numeric = str(predictions.dtype).startswith("float")
    if numeric:
        outcome = (predictions.astype(float) - labels.astype(float)).abs()
        metric, higher = "mean absolute error", False
    else:
        outcome = (predictions.astype(str) == labels.astype(str)).astype(float)
        metric, higher = "accuracy", True
    return ab_test(
        outcome[labelled["arm"] == "a"].to_numpy(),
        outcome[labelled["arm"] == "b"].to_numpy(),
        metric,
        higher_is_better=higher,
    )


def _since(text: str | None) -> Any:
    if text is None:
        return None
    units = {"m": 60, "h": 3600, "d": 86400}
    if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
        return timedelta(seconds=float(text[:-1]) * units[text[-1]])
    return text  # an ISO time: ws.predictions parses it
