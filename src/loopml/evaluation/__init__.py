"""Model evaluation: metrics with bootstrap intervals, slices, fairness, robustness.

Start from ``ws.evaluate(model, data, target)``; the result is an :class:`Evaluation`,
stored in the workspace and logged to the model's run.
"""

from loopml.evaluation.evaluate import evaluate, evaluations
from loopml.evaluation.result import Evaluation

__all__ = ["Evaluation", "evaluate", "evaluations"]
