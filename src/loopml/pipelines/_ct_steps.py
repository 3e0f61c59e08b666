"""The steps of the continuous-training pipeline, each over the Workspace API.

Internal: :mod:`loopml.pipelines.ct` assembles them (its docstring tells the story). Each
takes what it needs of the project as literal params (part of its cache key) and returns
a small JSON value, as the built-in steps do. A step that stops the run (a failed gate,
a canary that did not promote) or makes it wait (a missing approval) raises an alert first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from loopml.errors import ConflictError, LoopmlError, NotFoundError, ValidationError
from loopml.pipelines.builtin import GateFailedError
from loopml.pipelines.records import StepWaiting
from loopml.pipelines.step import Step

if TYPE_CHECKING:
    import pandas as pd

    from loopml.registry import ModelVersion
    from loopml.workspace import Workspace

__all__ = [
    "APPROVAL",
    "CANARY",
    "CT_RULES",
    "EVALUATE",
    "GATE",
    "INGEST",
    "PROMOTE",
    "REGISTER",
    "TRAIN",
    "ApprovalPendingError",
    "CanaryFailedError",
]

CT_RULES = {
    "gate": "ct-gate-failed",
    "approval": "ct-awaiting-approval",
    "canary": "ct-canary-failed",
}
"""The rules of the alerts a stopped CT run raises, by the step that stopped it."""


class ApprovalPendingError(StepWaiting, RuntimeError):
    """The candidate has fewer approvals than ``deploy.approvals``: the run waits."""

    headline = "awaiting approval"


class CanaryFailedError(LoopmlError, RuntimeError):
    """The canary rolled back (or failed, or was never picked up): the alias stays."""

    headline = "canary rolled back"


# -- the steps ------------------------------------------------------------------------------
def _ingest(
    ws: Workspace,
    name: str,
    source: str | None = None,
    sql_url: str | None = None,
    contract: Any = None,
    on_invalid: str = "fail",
    version: str | None = None,
) -> dict[str, Any]:
    """The training data: ``version`` if given, else ``source`` ingested, else the newest."""
    if version is not None:
        found = ws.data.version(version)
        if found.name != name:
            raise ValidationError(
                f"data {version!r} is a version of {found.name!r}, but the project trains on "
                f"{name!r} (data.name); pass a version of {name!r}."
            )
    elif source is not None:
        found = ws.data.ingest(
            source,
            name=name,
            contract=contract,
            on_invalid=on_invalid,  # type: ignore[arg-type]
            sql_url=sql_url,
        )
    else:
        try:
            found = ws.data.version(name)
        except NotFoundError:
            raise NotFoundError(
                f"Dataset {name!r} has no version to train on: ingest one (`loopml data ingest "
                f"FILE --name {name}`), or set data.source in loopml.yaml."
            ) from None
    quarantined = found.quarantine.rows if found.quarantine is not None else 0
    print(f"training data: {found}" + (f"; {quarantined} rows quarantined" if quarantined else ""))
    return {
        "data": found.ref,
        "rows": found.rows,
        "content_hash": found.content_hash,
        "quarantined": quarantined,
    }


def _train(
    ws: Workspace,
    data: dict[str, Any],
    target: str,
    estimator: str,
    split: dict[str, Any],
    experiment: str,
    params: dict[str, Any] | None = None,
    features: list[str] | None = None,
    search: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``ws.train`` (``ws.tune`` with a search) on the train and valid parts."""
    from loopml.pipelines.builtin import _model

    model = _model(estimator, params)
    options: dict[str, Any] = {"features": features, "split": split, "experiment": experiment}
    if search is not None:
        tuned = ws.tune(
            model,
            space=search["space"],
            data=data["data"],
            target=target,
            n_trials=search["trials"],
            metric=search.get("metric"),
            direction=search.get("direction"),
            run_name="ct-search",
            **options,
        )
        run, metrics = tuned.run, tuned.best_metrics
    else:
        trained = ws.train(model, data=data["data"], target=target, **options)
        run, metrics = trained.run, trained.metrics
    return {
        "model": f"runs:/{run.id}/model",
        "run_id": run.id,
        "metrics": {k: float(v) for k, v in metrics.items()},
    }


def _evaluate(
    ws: Workspace, model: dict[str, Any], data: dict[str, Any], target: str, split: dict[str, Any]
) -> dict[str, Any]:
    """``ws.evaluate`` on the held-out part of the split."""
    part, frame = _held_out(ws, data["data"], split)
    found = ws.evaluate(model["model"], data=frame, target=target)
    return {
        "model": model["model"],
        "evaluation_id": found.evaluation_id,
        "part": part,
        "rows": len(frame),
        "metrics": {k: float(v) for k, v in found.metrics.items()},
    }


def _gate(
    ws: Workspace,
    model: dict[str, Any],
    data: dict[str, Any],
    evaluation: dict[str, Any],
    policy: dict[str, Any],
    target: str,
    split: dict[str, Any],
    name: str,
    alias: str,
    notify: list[Any],
) -> dict[str, Any]:
    """``ws.gate`` on the held-out part against the alias's holder; a failure stops the run
    and raises an alert."""
    from loopml.evaluation.gate import load_policy

    holder = _holder(ws, name, alias)
    if holder is None:  # the first model: only the checks that need no champion
        parsed = load_policy(policy).checks
        checks = [
            raw
            for raw, check in zip(policy["checks"], parsed, strict=True)
            if not any(r.side == "champion" for r in check.references())
        ]
        policy = {**policy, "checks": checks}
    part, frame = _held_out(ws, data["data"], split)
    champion = holder.uri if holder is not None else None
    result = ws.gate(model["model"], policy, champion=champion, data=frame, target=target)
    failed = [c.expression for c in result.failed_checks]
    outcome = {
        "model": model["model"],
        "passed": result.passed,
        "gate_id": result.gate_id,
        "champion": champion,
        "failed": failed,
        "evaluation_id": evaluation["evaluation_id"],  # of the candidate alone, on these rows
    }
    if not result.passed:
        stays = f"@{alias} stays on {champion}" if champion else f"nothing takes @{alias}"
        message = (
            f"gate {str(result.gate_id)[:8]} failed: the candidate {model['model']} of {name}, "
            f"trained on {data['data']}, failed {'; '.join(failed)} on its {part} rows "
            f"(against {champion or 'no champion'}); {stays}. {_run_note()}"
        )
        _alert(
            ws,
            name,
            "gate",
            message,
            notify,
            {
                "gate_id": result.gate_id,
                "failed": failed,
                "candidate": model["model"],
                "champion": champion,
                "data": data["data"],
            },
        )
        raise GateFailedError(message)
    return outcome


def _register(
    ws: Workspace,
    model: dict[str, Any],
    data: dict[str, Any],
    gate: dict[str, Any],
    name: str,
    split: dict[str, Any],
) -> dict[str, Any]:
    """``ws.registry.register`` with the champion as the parent and the training rows as
    the reference profile (``ws.train`` puts one in the bundle; set here if missing)."""
    champion = ws.registry.get(gate["champion"]) if gate.get("champion") else None
    run_id = _pipeline_run_id()
    reason = _pipeline_reason(ws, run_id)
    description = f"continuous training on {data['data']}" + (
        f" (pipeline run {run_id[:8]}{': ' + reason if reason else ''})" if run_id else ""
    )
    version = ws.registry.register(
        model["model"],
        name=name,
        description=description,
        tags={"ct.data": data["data"], "ct.pipeline_run": run_id or ""},
        parent=champion if champion is not None and champion.run_id != model["run_id"] else None,
    )
    if ws.registry.reference(version) is None:
        ws.registry.set_reference(version, ws.data.split(data["data"], **split)["train"])
    return {
        "model": version.uri,
        "name": version.name,
        "version": version.version,
        "parent": champion.uri if champion is not None else None,
    }


def _approval(
    ws: Workspace, model: dict[str, Any], alias: str, approvals: int, notify: list[Any]
) -> dict[str, Any]:
    """Passes once the version has ``approvals`` approvals for ``alias``; until then the
    run ends WAITING, awaiting approval, and says how to approve and resume."""
    name, number = model["name"], model["version"]
    have = ws.registry.approvals(name, number, alias)
    if len(have) >= approvals:
        return {"model": model["model"], "approved_by": have}
    who = f" ({', '.join(have)})" if have else ""
    run_id = _pipeline_run_id()
    resume = f"`loopml pipeline resume {run_id[:8]}`" if run_id else "`loopml pipeline resume`"
    message = (
        f"awaiting approval: {model['model']} passed its gate and needs {approvals} "
        f"approval(s) for @{alias}; it has {len(have)}{who}. Approve with `loopml models "
        f"approve {name} {number} --alias {alias}`, then continue with {resume}."
    )
    _alert(
        ws,
        name,
        "approval",
        message,
        notify,
        {"candidate": model["model"], "approvals": have, "needed": approvals},
        severity="info",
    )
    raise ApprovalPendingError(message)


def _canary(
    ws: Workspace,
    model: dict[str, Any],
    alias: str,
    canary: dict[str, Any],
    notify: list[Any],
) -> dict[str, Any]:
    """Asks the server following ``models:/<name>@<alias>`` to release the version as a
    canary and waits for the end; anything but a promotion stops the run with an alert.
    Without a holder of the alias (the first model) nothing serves it: the step passes."""
    from loopml.serving.deployment import (
        cancel_deployment,
        request_deployment,
        wait_for_deployment,
    )
    from loopml.serving.policies import CanaryPlan

    name, number = model["name"], model["version"]
    holder = _holder(ws, name, alias)
    if holder is None or holder.version == number:
        why = "already holds" if holder is not None else "is the first version to take"
        print(f"no canary: {model['model']} {why} @{alias}")
        return {"model": model["model"], "state": "skipped"}
    options = dict(canary.get("plan") or {})
    if "steps" in options:
        options["steps"] = tuple(options["steps"])
    run_id = _pipeline_run_id()
    details = {"candidate": model["model"], "stable": holder.uri}
    try:
        request = request_deployment(
            ws,
            model["model"],
            alias,
            strategy="canary",
            plan=CanaryPlan(**options),
            check_seconds=canary["check_every"],
            reason=f"continuous training run {run_id[:8]}" if run_id else "continuous training",
        )
    except LoopmlError as error:  # another deployment of the alias is live, say
        message = (
            f"the canary of {model['model']} on @{alias} could not be requested: {error} "
            f"@{alias} stays on {holder.uri}. {_run_note()}"
        )
        _alert(ws, name, "canary", message, notify, {**details, "state": "refused"})
        raise CanaryFailedError(message) from None
    print(f"deployment request {request.request_id}: canary of {model['model']} on @{alias}")
    done = wait_for_deployment(
        ws, request.request_id, timeout=canary["timeout"], pickup_timeout=canary["pickup_timeout"]
    )
    if not done.done:  # out of time: the server rolls it back at its next check
        with contextlib.suppress(ConflictError):  # it ended a moment ago
            cancel_deployment(ws, done.request_id, f"took longer than {canary['timeout']:g} s")
        done = wait_for_deployment(
            ws, done.request_id, timeout=max(60.0, 10 * canary["check_every"])
        )
    outcome = {
        "model": model["model"],
        "request_id": done.request_id,
        "state": done.state,
        "detail": done.detail,
    }
    if done.state == "promoted":
        return outcome
    message = (
        f"the canary of {model['model']} on @{alias} ended {done.state}: {done.detail}; "
        f"@{alias} stays on {holder.uri}. {_run_note()}"
    )
    _alert(
        ws,
        name,
        "canary",
        message,
        notify,
        {**details, "request_id": done.request_id, "state": done.state},
    )
    raise CanaryFailedError(message)


def _promote(ws: Workspace, model: dict[str, Any], alias: str) -> dict[str, Any]:
    """Moves the alias to the version (a canary that promoted it already: confirms it) and
    resolves the alerts earlier stopped runs raised."""
    from loopml.store.repositories.monitoring import MonitorRepository

    name, number = model["name"], model["version"]
    run_id = _pipeline_run_id()
    reason = _pipeline_reason(ws, run_id)
    said = f"continuous training run {run_id[:8]}" if run_id else "continuous training"
    event = ws.registry.promote(
        name, number, alias, reason=said + (f": {reason}" if reason else "")
    )
    holder = ws.registry.model(name).aliases.get(alias)
    if holder != number:
        raise ConflictError(
            f"@{alias} of {name!r} points at version {holder} after promoting {number}: "
            "another promotion moved it meanwhile; run the pipeline again."
        )
    repository = MonitorRepository(ws.db)
    for rule in CT_RULES.values():
        for alert in repository.alerts(model=name, state="firing", rule=rule):
            repository.resolve_alert(alert.alert_id)
    return {
        "model": model["model"],
        "alias": alias,
        "version": number,
        "previous": event.from_version if event is not None else None,
        "moved": event is not None,
    }


INGEST = Step(_ingest, name="ingest", cache=False)  # a source's content may change
TRAIN = Step(_train, name="train")
EVALUATE = Step(_evaluate, name="evaluate")
GATE = Step(_gate, name="gate", cache=False)  # the champion changes
REGISTER = Step(_register, name="register", cache=False)
APPROVAL = Step(_approval, name="approval", cache=False)
CANARY = Step(_canary, name="canary", cache=False)
PROMOTE = Step(_promote, name="promote", cache=False)


# -- helpers ------------------------------------------------------------------------------
def _held_out(ws: Workspace, ref: str, split: Mapping[str, Any]) -> tuple[str, pd.DataFrame]:
    """The part of the stored split neither training nor model choice read."""
    parts = ws.data.split(ref, **split)
    part = "test" if "test" in parts else "valid"
    return part, parts[part]


def _holder(ws: Workspace, name: str, alias: str) -> ModelVersion | None:
    """The version ``alias`` points at (the champion), or None."""
    try:
        number = ws.registry.model(name).aliases.get(alias)
    except NotFoundError:
        return None
    return None if number is None else ws.registry.get(f"models:/{name}/{number}")


def _pipeline_run_id() -> str | None:
    """The pipeline run of the step executing in this context."""
    from loopml.pipelines._worker import _STEP

    active = _STEP.get()
    return active[0].run_id if active is not None else None


def _pipeline_reason(ws: Workspace, run_id: str | None) -> str | None:
    from loopml.pipelines._driver import repository

    found = repository(ws).get_run(run_id) if run_id else None
    return found.reason if found is not None else None


def _run_note() -> str:
    run_id = _pipeline_run_id()
    return f"(CT pipeline run {run_id[:8]})" if run_id else ""


def _alert(
    ws: Workspace,
    name: str,
    step: str,
    message: str,
    notify: list[Any],
    details: dict[str, Any],
    *,
    severity: str = "critical",
) -> None:
    details = {"pipeline_run": _pipeline_run_id(), "step": step, **details}
    alert = ws.monitor.raise_alert(
        name, CT_RULES[step], message, severity=severity, details=details, notify=notify
    )
    print(f"raised alert {alert.alert_id} ({alert.rule}): {message}")
