"""Validation gates: ``ws.gate(candidate, policy, champion=...)`` passes or fails a model.

A policy is YAML (a file path or text) or the same mapping in Python::

    data: churn@4               # optional: what to evaluate on (ws.gate(data=...) wins)
    target: churned             # optional: the label column (ws.gate(target=...) wins)
    slices: [region]            # optional: passed to ws.evaluate, needed by worst_slice.*
    sensitive: gender           # optional: passed to ws.evaluate, needed by fairness.*
    alpha: 0.05                 # optional: default level of `significantly`
    resamples: 1000             # optional: paired bootstrap resamples for `significantly`
    latency_rows: 200           # optional: rows predicted one at a time for latency.*
    checks:
      - auc >= 0.80
      - roc_auc >= champion.roc_auc - 0.005
      - worst_slice.recall >= 0.6
      - fairness.demographic_parity_difference <= 0.1
      - robustness.noise.degradation <= 0.02
      - latency.p99_ms <= 20
      - model.size_mb <= 50
      - roc_auc > champion.roc_auc significantly            # paired bootstrap, alpha 0.05
      - rmse < champion.rmse significantly at 0.01          # ... at another level
      - {check: "f1 > champion.f1 significantly", alpha: 0.1}
      - better_than_champion: {metric: roc_auc, alpha: 0.05, margin: 0.0}

A check is ``expression OPERATOR expression [significantly [at ALPHA]]`` with operators
``>= <= > < == !=`` and ``+ - * /`` and parentheses in the expressions. Names:

- ``<metric>`` (or ``metrics.<metric>``): a metric of the candidate's evaluation, e.g.
  ``roc_auc`` (alias ``auc``), ``accuracy``, ``f1``, ``log_loss``, ``rmse``, ``r2``.
- ``interval.<metric>.low`` / ``.high``: its 95% bootstrap interval.
- ``worst_slice.<metric>``: the metric on the worst slice (``slices`` in the policy).
- ``fairness.<key>``: ``demographic_parity_difference``, ``equalized_odds_difference``
  or, for a regressor, ``mae_difference`` (``sensitive`` in the policy).
- ``robustness.<perturbation>.<field>``: perturbations ``gaussian_noise`` (alias ``noise``),
  ``missing_values`` (``missing``), ``rare_category_swap`` (``rare_category``); fields
  ``degradation`` (the default; positive is worse), ``value``, ``baseline``.
- ``latency.p50_ms|p90_ms|p95_ms|p99_ms|mean_ms|max_ms``: single-row ``predict`` time,
  measured by the gate on ``latency_rows`` rows of the data.
- ``model.size_mb``: the model serialized with joblib, in 10^6 bytes.
- ``champion.<any of the above>``: the same for the champion, evaluated on the same rows.

``significantly`` turns a check on plain metrics into a paired bootstrap test: the same
resampled rows score both models, and the check passes when it holds on all rows and
fails in at most ``alpha`` of the resamples (the p-value shown in the note).

The result is stored (``gates`` table) and, when the candidate came from a run, logged
on it: tags ``gate.status`` (``passed``/``failed``) and ``gate.id``, and the artifact
``gates/<gate id>.json``.

(This file runs past ~400 lines only because this docstring is the policy reference;
parsing lives in ``_gate_expression``/``_gate_policy``, measuring in ``_gate_measure``.)
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from loopml._time import now_ms
from loopml.errors import NotFoundError, ValidationError
from loopml.evaluation._gate_expression import Check, Reference, compute
from loopml.evaluation._gate_measure import compare, latency, paired_bootstrap, size_mb
from loopml.evaluation._gate_policy import GatePolicy, load_policy
from loopml.evaluation._resolve import ResolvedModel, resolve_data, resolve_model
from loopml.evaluation.evaluate import _features, _predict, evaluate
from loopml.evaluation.result import Evaluation
from loopml.store.repositories.gates import GateRecord, GateRepository

if TYPE_CHECKING:
    from loopml.tracking.run import Run
    from loopml.workspace import Workspace

__all__ = ["CheckResult", "GatePolicy", "GateResult", "gate", "gates", "load_policy"]

_FORMAT = 1


@dataclass
class CheckResult:
    """One check of a gate: the expression, both sides' values and the verdict."""

    expression: str
    value: float | None  # the left side
    threshold: float | None  # the right side
    verdict: str  # "pass" or "fail"
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"


@dataclass
class GateResult:
    """The outcome of :func:`gate`: passed when every check passed."""

    passed: bool
    checks: list[CheckResult]
    gate_id: str | None = None
    run_id: str | None = None  # the candidate's run
    champion_run_id: str | None = None
    evaluation_id: str | None = None  # the candidate's evaluation
    champion_evaluation_id: str | None = None
    dataset: str | None = None
    name: str | None = None
    policy: dict[str, Any] = field(default_factory=dict)
    measurements: dict[str, Any] = field(default_factory=dict)  # latency, size by side
    created_at: int | None = None

    def __repr__(self) -> str:
        failed = sum(not c.passed for c in self.checks)
        state = "passed" if self.passed else f"failed {failed} of {len(self.checks)}"
        return f"GateResult({state}, checks={len(self.checks)})"

    @property
    def failed_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]

    def to_frame(self) -> pd.DataFrame:
        """One row per check: expression, value, threshold, verdict, note."""
        return pd.DataFrame(
            [(c.expression, c.value, c.threshold, c.verdict, c.note) for c in self.checks],
            columns=["expression", "value", "threshold", "verdict", "note"],
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_dict` reads it back."""
        return {
            "format": _FORMAT,
            "gate_id": self.gate_id,
            "name": self.name,
            "passed": self.passed,
            "run_id": self.run_id,
            "champion_run_id": self.champion_run_id,
            "evaluation_id": self.evaluation_id,
            "champion_evaluation_id": self.champion_evaluation_id,
            "dataset": self.dataset,
            "created_at": self.created_at,
            "checks": [
                {
                    "expression": c.expression,
                    "value": _json_number(c.value),
                    "threshold": _json_number(c.threshold),
                    "verdict": c.verdict,
                    "note": c.note,
                }
                for c in self.checks
            ],
            "policy": self.policy,
            "measurements": self.measurements,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateResult:
        return cls(
            passed=bool(data["passed"]),
            checks=[
                CheckResult(
                    expression=c["expression"],
                    value=c.get("value"),
                    threshold=c.get("threshold"),
                    verdict=c["verdict"],
                    note=c.get("note") or "",
                )
                for c in data.get("checks", [])
            ],
            gate_id=data.get("gate_id"),
            run_id=data.get("run_id"),
            champion_run_id=data.get("champion_run_id"),
            evaluation_id=data.get("evaluation_id"),
            champion_evaluation_id=data.get("champion_evaluation_id"),
            dataset=data.get("dataset"),
            name=data.get("name"),
            policy=data.get("policy") or {},
            measurements=data.get("measurements") or {},
            created_at=data.get("created_at"),
        )


@dataclass
class _Side:
    """One model under the gate: its evaluation and what the gate measured of it."""

    resolved: ResolvedModel
    evaluation: Evaluation
    latency: dict[str, float] | None = None
    size_mb: float | None = None


def gate(
    workspace: Workspace,
    candidate: Any,
    policy: Any,
    champion: Any = None,
    data: Any = None,
    target: str | None = None,
) -> GateResult:
    """Evaluates ``candidate`` (and ``champion``) and judges every check of ``policy``.

    Example:
        >>> result = ws.gate(run, "gate.yaml", champion=champion_run)
        >>> result.passed, result.to_frame()

    Args:
        candidate: Anything ``ws.evaluate`` accepts: a fitted model, a training result,
            a Run, a run id (or prefix) or ``"runs:/<run id>/model"``.
        policy: A YAML file path, YAML text or a dict (see this module's docstring).
        champion: The model to compare with, accepted likewise; needed by ``champion.*``.
        data: The data to evaluate on; overrides the policy's ``data``.
        target: The label column; overrides the policy's ``target``.

    Raises:
        ValidationError: A malformed policy or check, an unknown name, a ``champion.*``
            check without a champion, or no data or target.
        NotFoundError: The policy file, the candidate or the champion cannot be found.
    """
    spec = load_policy(policy)
    data = data if data is not None else spec.data
    target = target if target is not None else spec.target
    if data is None or target is None:
        missing = " and ".join(n for n, v in (("data", data), ("target", target)) if v is None)
        raise ValidationError(
            f"The gate needs {missing}: put `data:` and `target:` in the policy or pass "
            "data= and target= (--data and --target on the command line)."
        )
    champion_checks = [c for c in spec.checks if any(r.side == "champion" for r in c.references())]
    if champion_checks and champion is None:
        raise ValidationError(
            f"The check {champion_checks[0].expression!r} compares with the champion, but no "
            "champion was given. Pass champion= (--champion) or remove the champion.* checks."
        )
    candidate_model = resolve_model(workspace, candidate)
    champion_model = _resolve_champion(workspace, champion) if champion is not None else None
    source = resolve_data(workspace, data)
    evaluated_on = source.version if source.version is not None else source.frame

    sides: dict[str, _Side] = {}
    for side, resolved in (("candidate", candidate_model), ("champion", champion_model)):
        if resolved is None or (side == "champion" and not champion_checks):
            continue
        evaluation = evaluate(
            workspace,
            resolved.model,
            evaluated_on,
            target,
            slices=spec.slices,
            sensitive=spec.sensitive,
            robustness=spec.needs(side, "robustness"),
            bootstrap=spec.bootstrap,
            seed=spec.seed,
            log_to=resolved.run if side == "candidate" else None,
        )
        sides[side] = _Side(resolved, evaluation)
        if spec.needs(side, "latency"):
            features = _features(resolved.model, source.frame, target)
            sides[side].latency = latency(resolved.model, features, spec.latency_rows, spec.seed)
        if spec.needs(side, "model"):
            sides[side].size_mb = size_mb(resolved.model)

    predictions: dict[str, Any] = {}
    if any(c.significantly for c in spec.checks):
        for side, found in sides.items():
            model = found.resolved.model
            features = _features(model, source.frame, target)
            predictions[side] = _predict(model, features, source.frame[target])

    checks = [_judge(check, spec, sides, predictions) for check in spec.checks]
    candidate_side = sides["candidate"]
    champion_side = sides.get("champion")
    result = GateResult(
        passed=all(c.passed for c in checks),
        checks=checks,
        gate_id=uuid.uuid4().hex,
        run_id=candidate_model.run.id if candidate_model.run is not None else None,
        champion_run_id=(
            champion_model.run.id
            if champion_model is not None and champion_model.run is not None
            else None
        ),
        evaluation_id=candidate_side.evaluation.evaluation_id,
        champion_evaluation_id=champion_side.evaluation.evaluation_id if champion_side else None,
        dataset=candidate_side.evaluation.dataset,
        name=spec.name,
        policy=spec.source,
        measurements={
            side: {"latency": s.latency, "size_mb": s.size_mb}
            for side, s in sides.items()
            if s.latency is not None or s.size_mb is not None
        },
        created_at=now_ms(),
    )
    _store(workspace, result)
    if candidate_model.run is not None:
        _log(candidate_model.run, result)
    return result


def gates(workspace: Workspace, run: Run | str) -> list[GateResult]:
    """The stored gates of a candidate run (a Run or its id), oldest first."""
    from loopml.tracking.run import Run

    run_id = run.id if isinstance(run, Run) else workspace.get_run(run).id
    return [
        GateResult.from_dict(json.loads(record.result))
        for record in GateRepository(workspace.db).for_run(run_id)
    ]


# -- resolving ---------------------------------------------------------------------------
def _resolve_champion(workspace: Workspace, champion: Any) -> ResolvedModel:
    try:
        return resolve_model(workspace, champion)
    except NotFoundError as error:
        raise NotFoundError(f"The champion {champion!r} cannot be found: {error}") from None
    except ValidationError as error:
        raise ValidationError(f"The champion {champion!r} cannot be used: {error}") from None


# -- judging -----------------------------------------------------------------------------
def _judge(
    check: Check, spec: GatePolicy, sides: dict[str, _Side], predictions: dict[str, Any]
) -> CheckResult:
    notes: list[str] = []

    def lookup(ref: Reference) -> float:
        value, note = _value(ref, sides[ref.side])
        if note:
            notes.append(note)
        return value

    value = float(compute(check.left, lookup))
    threshold = float(compute(check.right, lookup))
    for ref in check.references():
        if ref.side == "champion":
            shown = _value(ref, sides["champion"])[0]
            notes.append(f"{ref} = {shown:.4g}")
    holds = bool(compare(value, check.operator, threshold))
    if math.isnan(value) or math.isnan(threshold):
        notes.append("a value is missing (NaN), so the check fails")
    if check.significantly:
        alpha = check.alpha if check.alpha is not None else spec.alpha
        test = paired_bootstrap(check, predictions, spec.resamples, alpha, spec.seed)
        significant = test.p_value <= alpha
        notes.insert(
            0,
            f"p = {test.p_value:.3g} (paired bootstrap, {test.resamples} resamples, "
            f"alpha {alpha:g}); difference {test.difference:+.4g}, "
            f"{1 - 2 * alpha:.0%} interval [{test.low:+.4g}, {test.high:+.4g}]"
            + ("" if significant else "; not significant"),
        )
        holds = holds and significant
    return CheckResult(
        expression=check.expression,
        value=value,
        threshold=threshold,
        verdict="pass" if holds else "fail",
        note="; ".join(dict.fromkeys(notes)),
    )


def _value(ref: Reference, side: _Side) -> tuple[float, str]:
    """The number a name stands for, and a note when it has none."""
    evaluation = side.evaluation
    who = "the champion" if ref.side == "champion" else "the candidate"
    if ref.kind == "metric":
        if ref.key not in evaluation.metrics:
            raise ValidationError(
                f"{who.capitalize()}'s evaluation has no metric {ref.key!r}: a "
                f"{evaluation.task} model has {', '.join(evaluation.metrics)}."
            )
        return evaluation.metrics[ref.key], ""
    if ref.kind == "interval":
        if ref.key not in evaluation.intervals:
            raise ValidationError(
                f"{who.capitalize()}'s evaluation has no interval of {ref.key!r}; intervals "
                f"exist for {', '.join(evaluation.intervals) or 'no metric (bootstrap: 0)'}."
            )
        low, high = evaluation.intervals[ref.key]
        return (low if ref.detail == "low" else high), ""
    if ref.kind == "worst_slice":
        worst = evaluation.worst_slice.get(ref.key)
        if worst is None:
            return math.nan, f"no slice has {ref.key} (each slice needs min_slice_size rows)"
        return float(worst[ref.key]), f"worst slice {worst['column']}={worst['value']}"
    if ref.kind == "fairness":
        found = (evaluation.fairness or {}).get(ref.key)
        if found is None:
            keys = [k for k in (evaluation.fairness or {}) if k.endswith("_difference")]
            raise ValidationError(
                f"{who.capitalize()}'s fairness report has no {ref.key!r} for a "
                f"{evaluation.task} model; it has {', '.join(keys) or 'nothing'}."
            )
        return float(found), ""
    if ref.kind == "robustness":
        for record in evaluation.robustness or []:
            if record["perturbation"] == ref.key:
                number = record.get(ref.detail)
                if number is None:
                    return math.nan, f"{ref.key}: {record.get('error') or 'no value'}"
                return float(number), ""
        return math.nan, f"{ref.key} was not measured"
    if ref.kind == "latency":
        return (side.latency or {}).get(ref.key, math.nan), ""
    return side.size_mb if side.size_mb is not None else math.nan, ""


# -- recording ---------------------------------------------------------------------------
def _store(workspace: Workspace, result: GateResult) -> None:
    GateRepository(workspace.db).insert(
        GateRecord(
            gate_id=result.gate_id or "",
            run_id=result.run_id,
            champion_run_id=result.champion_run_id,
            evaluation_id=result.evaluation_id,
            passed=result.passed,
            created_at=result.created_at or 0,
            result=json.dumps(result.to_dict()),
        )
    )


def _log(run: Run, result: GateResult) -> None:
    run.set_tags(
        {"gate.status": "passed" if result.passed else "failed", "gate.id": result.gate_id}
    )
    run.log_dict(result.to_dict(), f"gates/{result.gate_id}.json")


def _json_number(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)
