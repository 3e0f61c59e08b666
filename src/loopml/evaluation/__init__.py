"""Model evaluation: metrics with bootstrap intervals, slices, fairness, robustness.

Start from ``ws.evaluate(model, data, target)``; the result is an :class:`Evaluation`,
stored in the workspace and logged to the model's run. ``ws.gate(candidate, policy,
champion=...)`` decides from a declared policy whether a candidate may replace it.
"""

from loopml.evaluation.evaluate import evaluate, evaluations
from loopml.evaluation.gate import GateResult, gate, gates, load_policy
from loopml.evaluation.result import Evaluation

__all__ = ["Evaluation", "GateResult", "evaluate", "evaluations", "gate", "gates", "load_policy"]
