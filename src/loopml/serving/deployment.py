"""Deployments: a server that follows an alias and runs a canary, a shadow or an A/B
test of a candidate version beside the alias's holder.

- canary: the candidate gets ``steps[0]`` percent of the traffic (sticky by the
  ``X-Routing-Key`` header), then each next step once its interval passed with the
  guards holding (:func:`~loopml.serving.policies.canary_decision`); a failing guard
  rolls it back at once; after 100% the alias is promoted to it. Every step is an event
  in the registry's history of the alias.
- shadow: every request is copied to the candidate after the response; its answers are
  logged with arm ``shadow``, never returned (``loopml deploy report`` compares them).
- ab: a fixed split (arms ``a``, the holder, and ``b``, the candidate); once feedback
  arrives ``loopml deploy report`` tests the difference and records the decision.

A candidate that fails to load leaves the deployment on the holder, with the event
recorded.

A deployment starts with the server (``loopml deploy``), or is requested of servers
already running: :func:`request_deployment` stores a pending request, the first server
following the alias claims it (:class:`~loopml.serving.follower.RequestFollower`) and
runs the same :class:`Deployment`, recording its outcome on the request;
:func:`wait_for_deployment` waits for it. Deployments and their requests stay in one
module (over the usual size) so the public surface of both is in one place.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from loopml._identity import current_user
from loopml.errors import ConflictError, ValidationError
from loopml.registry import parse_reference
from loopml.registry._reference import check_alias
from loopml.serving.policies import ArmStats, CanaryPlan, canary_decision, parse_steps
from loopml.serving.router import Arm
from loopml.serving.served import load_served
from loopml.store.repositories.deployments import DeploymentRepository, DeploymentRequestRecord

if TYPE_CHECKING:
    from loopml.serving.served import Prediction
    from loopml.serving.state import ServingState
    from loopml.workspace import Workspace

__all__ = [
    "REQUEST_STATES",
    "STRATEGIES",
    "DeploySpec",
    "Deployment",
    "DeploymentRequest",
    "cancel_deployment",
    "get_deployment",
    "list_deployments",
    "request_deployment",
    "wait_for_deployment",
]

logger = logging.getLogger("loopml.serving")
STRATEGIES = ("canary", "shadow", "ab")
REQUEST_STATES = (
    "pending", "running", "promoted", "rolled_back", "failed", "expired", "cancelled",
)  # fmt: skip
_DONE_STATES = REQUEST_STATES[2:]
# A running request whose server has not reported for this long (or ten checks, if
# longer) lost its server: whoever looks next ends it, so it cannot block the alias.
_STALE_SECONDS = 60.0


@dataclass(frozen=True)
class DeploySpec:
    """What to run beside the alias's holder, and how."""

    strategy: str
    candidate: str  # models:/name/8
    plan: CanaryPlan = field(default_factory=CanaryPlan)
    split: float = 50.0  # ab: percent of the traffic to the candidate
    check_seconds: float = 5.0  # how often the canary's guards are judged

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValidationError(
                f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}."
            )
        reference = parse_reference(self.candidate)
        if reference.version is None:
            raise ValidationError(
                f"The candidate must name a version (models:/name/8), got {self.candidate!r}."
            )
        if not 0 < self.split < 100:
            raise ValidationError(f"The A/B split must be between 0 and 100, got {self.split}.")
        if self.strategy == "canary":
            _check_plan(self.plan, self.check_seconds)


def _check_plan(plan: CanaryPlan, check_seconds: float) -> None:
    """Refuses a canary plan that could never judge, advance or promote sanely."""
    if not isinstance(plan, CanaryPlan):
        raise ValidationError(f"plan must be a CanaryPlan, got {type(plan).__name__}.")
    parse_steps(plan.steps)  # rising, above 0, ending at 100

    def positive(value: Any) -> bool:
        return isinstance(value, (int, float)) and math.isfinite(value) and value > 0

    problems = []
    if not positive(plan.interval_s):
        problems.append(f"interval_s must be a positive number of seconds, got {plan.interval_s}")
    for name in ("min_requests", "min_drift_rows"):
        value = getattr(plan, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            problems.append(f"{name} must be a whole number of at least 1, got {value!r}")
    if not (isinstance(plan.max_error_rate, (int, float)) and 0 <= plan.max_error_rate <= 1):
        problems.append(f"max_error_rate must be a share from 0 to 1, got {plan.max_error_rate}")
    for name in ("max_latency_ratio", "max_prediction_psi"):
        if not positive(getattr(plan, name)):
            problems.append(f"{name} must be a positive number, got {getattr(plan, name)}")
    slack = plan.latency_slack_ms
    if isinstance(slack, bool) or not (positive(slack) or slack == 0):
        problems.append(f"latency_slack_ms must be a number of ms, 0 or more, got {slack!r}")
    if not positive(check_seconds):
        problems.append(f"check_seconds must be a positive number, got {check_seconds}")
    if problems:
        raise ValidationError("Invalid canary plan: " + "; ".join(problems) + ".")


class Deployment:
    """Runs one :class:`DeploySpec` on a serving state whose router holds the stable arm."""

    def __init__(self, state: ServingState, spec: DeploySpec) -> None:
        if state.source.alias is None or state.workspace is None:
            raise ValidationError(
                "A deployment follows an alias: serve models:/<name>@<alias> from a workspace."
            )
        self.state = state
        self.spec = spec
        self.model = state.source.model or state.source.name
        self.alias = state.source.alias
        self.candidate_version = int(parse_reference(spec.candidate).version or 0)
        self.stable_version: int | None = None
        self.step = 0
        self.step_started = time.monotonic()
        self.stats: dict[str, ArmStats] = {}
        self.state_name = "starting"  # running | promoted | rolled_back | cancelled | failed
        self.detail: str | None = None  # what the last event said
        self._cancel: str | None = None

    @property
    def live(self) -> bool:
        """Starting or running: the server holds no other deployment meanwhile."""
        return self.state_name in ("starting", "running")

    def cancel(self, reason: str) -> None:
        """Rolls the canary back at its next check (outcome ``cancelled``); a canary
        that ended already stays as it ended."""
        if self._cancel is None:
            self._cancel = reason

    # -- starting ---------------------------------------------------------------
    async def start(self) -> None:
        """Loads the candidate beside the holder and splits the traffic."""
        registry = self.state.workspace.registry  # type: ignore[union-attr]
        stable = next((arm.served for arm in self.state.router.arms), None)
        if stable is None:
            self._refuse(f"{self.state.source.reference} is not loaded; cannot deploy.")
        self.stable_version = stable.version
        if self.spec.strategy == "canary":
            problem = await asyncio.to_thread(
                registry.protection_problem, self.model, self.candidate_version, self.alias
            )
            if problem is not None:
                self._refuse(f"The canary could never be promoted: {problem}")
        try:
            candidate = await asyncio.to_thread(
                load_served,
                self.state.workspace,
                self.state.source,
                self.state.options.runtime,
                self.candidate_version,
                self.state._batcher,
                self.state.executor,
            )
        except Exception as error:
            self.state_name = "failed"
            logger.error("The candidate %s failed to load: %s", self.spec.candidate, error)
            await self._event(f"{self.spec.strategy}-failed", f"did not load: {error}")
            return
        self.state.router.replace(self._arms(stable, candidate))
        self.state.metrics.served(candidate, True)
        self.state_name = "running"
        self.step_started = time.monotonic()
        detail = {
            "canary": f"step 1: {self.spec.plan.steps[0]:g}% to version {self.candidate_version}",
            "shadow": f"copies of every request to version {self.candidate_version}",
            "ab": f"{self.spec.split:g}% to version {self.candidate_version}",
        }[self.spec.strategy]
        await self._event(f"{self.spec.strategy}-start", detail)

    def _refuse(self, message: str) -> NoReturn:
        self.state_name, self.detail = "failed", message
        raise ValidationError(message)

    def _arms(self, stable: Any, candidate: Any) -> tuple[Arm, ...]:
        if self.spec.strategy == "shadow":
            return (Arm(stable, 1.0, "stable"), Arm(candidate, 0.0, "shadow"))
        if self.spec.strategy == "ab":
            share = self.spec.split / 100
            return (Arm(stable, 1 - share, "a"), Arm(candidate, share, "b"))
        share = self.spec.plan.steps[self.step] / 100
        return (Arm(stable, 1 - share, "stable"), Arm(candidate, share, "canary"))

    # -- observing --------------------------------------------------------------
    def observe(self, arm: str, seconds: float, prediction: Prediction | None) -> None:
        """One answered (or failed, ``prediction`` None) request of ``arm``."""
        if self.state_name != "running":  # an ended deployment keeps no statistics
            return
        stats = self.stats.setdefault(arm, ArmStats())
        stats.requests += 1
        stats.latencies_ms.append(seconds * 1000)
        if prediction is None:
            stats.errors += 1
            return
        scores = prediction.probabilities
        values = scores.max(axis=1) if scores is not None else prediction.predictions
        if np.issubdtype(np.asarray(values).dtype, np.number):
            stats.predictions.extend(np.asarray(values, dtype=float).tolist())

    # -- the canary -------------------------------------------------------------
    async def run(self) -> None:
        """Judges the canary every ``check_seconds`` until it is promoted or rolled back."""
        if self.spec.strategy != "canary":
            return
        try:
            await self._judge()
        except Exception as error:  # a canary left half-way would hold the server
            logger.exception("The canary of version %s stopped", self.candidate_version)
            reason = f"the canary stopped on {type(error).__name__}: {error}"
            try:
                if self.state_name == "running":
                    await self._rollback(reason, "failed")
            finally:
                self.state_name, self.detail = "failed", reason

    async def _judge(self) -> None:
        while self.state_name == "running":
            await asyncio.sleep(self.spec.check_seconds)
            if self._cancel is not None:
                await self._rollback(f"cancelled: {self._cancel}", "cancelled")
                return
            decision = canary_decision(
                self.spec.plan,
                self.step,
                time.monotonic() - self.step_started,
                self.stats.get("stable", ArmStats()),
                self.stats.get("canary", ArmStats()),
            )
            if decision.action == "rollback":
                await self._rollback(decision.reason)
            elif decision.action == "advance":
                self.step += 1
                self._reweigh()
                percent = self.spec.plan.steps[self.step]
                await self._event(
                    "canary-step", f"step {self.step + 1}: {percent:g}%; {decision.reason}"
                )
            elif decision.action == "promote":
                await self._promote(decision.reason)

    def _reweigh(self) -> None:
        arms = self.state.router.arms
        stable = next(a.served for a in arms if a.name == "stable")
        canary = next(a.served for a in arms if a.name == "canary")
        self.state.router.replace(self._arms(stable, canary))
        self.stats = {}
        self.step_started = time.monotonic()

    async def _rollback(self, reason: str, outcome: str = "rolled_back") -> None:
        arms = self.state.router.arms
        stable = next(a for a in arms if a.name == "stable")
        canary = next(a for a in arms if a.name == "canary")
        self.state.router.replace((Arm(stable.served, 1.0, "stable"),))
        self.state_name = outcome
        logger.warning("Canary of version %s rolled back: %s", self.candidate_version, reason)
        await self._event("canary-rollback", reason)
        self.state.metrics.served(canary.served, False)
        await canary.served.close()

    async def _promote(self, reason: str) -> None:
        registry = self.state.workspace.registry  # type: ignore[union-attr]
        try:
            await asyncio.to_thread(
                registry.promote,
                self.model,
                self.candidate_version,
                self.alias,
                reason=f"canary completed: {reason}",
            )
        except Exception as error:  # e.g. the alias became protected meanwhile
            logger.exception("Could not promote the canary of version %s", self.candidate_version)
            await self._rollback(f"could not promote: {error}", "failed")
            return
        self.detail = f"promoted: canary completed: {reason}"
        arms = self.state.router.arms
        canary = next(a for a in arms if a.name == "canary")
        stable = next(a for a in arms if a.name == "stable")
        self.state.router.replace((Arm(canary.served, 1.0, "stable"),))
        self.state_name = "promoted"
        self.state.metrics.served(stable.served, False)
        await stable.served.close()

    async def _event(self, action: str, reason: str) -> None:
        self.detail = reason
        registry = self.state.workspace.registry  # type: ignore[union-attr]
        try:
            await asyncio.to_thread(
                registry.record_event,
                self.model,
                self.alias,
                action,
                self.stable_version,
                self.candidate_version,
                reason,
            )
        except Exception:  # the history is for people; serving goes on without it
            logger.exception("Could not record the %s event", action)


# -- deployments requested of running servers -------------------------------------
@dataclass(frozen=True)
class DeploymentRequest:
    """A deployment asked of the running servers that follow ``model@alias``.

    ``state``: ``pending`` (stored, no server has it yet), ``running`` (claimed by the
    server ``claimed_by``, a ``host:pid``), then one of ``promoted``, ``rolled_back`` (a
    guard failed), ``failed`` (the candidate did not load, or the server stopped),
    ``expired`` (no server picked it up in time) or ``cancelled``. ``detail`` says
    what happened last.
    """

    request_id: str
    model: str
    alias: str
    candidate_version: int
    strategy: str
    state: str
    detail: str | None
    requested_by: str
    requested_at: datetime
    claimed_by: str | None
    updated_at: datetime
    reason: str | None  # why it was requested

    @property
    def done(self) -> bool:
        """Whether the request has ended (it will not change again)."""
        return self.state in _DONE_STATES

    @property
    def candidate(self) -> str:
        return f"models:/{self.model}/{self.candidate_version}"


def request_deployment(
    ws: Workspace,
    candidate: str,
    alias: str = "production",
    *,
    strategy: str = "canary",
    plan: CanaryPlan | None = None,
    check_seconds: float = 5.0,
    reason: str | None = None,
) -> DeploymentRequest:
    """Asks the servers following ``models:/<name>@<alias>`` to run a canary of
    ``candidate`` beside the alias's holder; the first to poll claims it.

    Everything a server would refuse is refused here: an unknown version, the holder
    itself, a version the (protected) alias could never be promoted to, a bad plan,
    and a second live request for the same alias.

    Args:
        ws: The workspace the servers serve from.
        candidate: The version to deploy, ``models:/<name>/<version>``.
        alias: The alias whose holder the candidate runs beside, and takes if promoted.
        strategy: ``canary`` (a shadow or an A/B test has no end to wait for; run those
            with ``loopml deploy``).
        plan: The canary's steps, time per step and guards (default: ``CanaryPlan()``).
        check_seconds: How often the server judges the guards.
        reason: Why, for the people reading the request later.

    Raises:
        ValidationError: a bad reference, strategy or plan; the candidate holds the
            alias already, or could never be promoted to it.
        NotFoundError: no such model, version or alias.
        ConflictError: the alias has a live (pending or running) request already.

    Example:
        >>> request = request_deployment(ws, "models:/churn/8", reason="weekly retrain")
        >>> wait_for_deployment(ws, request.request_id, timeout=3600).state
        'promoted'
    """
    if strategy != "canary":
        raise ValidationError(
            f"A requested deployment is a canary, got strategy {strategy!r}: a shadow or an "
            "A/B test runs until stopped, so start one with `loopml deploy NAME --shadow|--ab`."
        )
    if not isinstance(candidate, str):
        raise ValidationError(
            f"candidate must be a reference like models:/churn/8, got {type(candidate).__name__}."
        )
    spec = DeploySpec(
        strategy, candidate, CanaryPlan() if plan is None else plan, check_seconds=check_seconds
    )
    check_alias(alias)
    version = ws.registry.get(spec.candidate)
    model, number = version.name, int(version.version)
    holder = ws.registry.get(f"models:/{model}@{alias}")
    if holder.version == number:
        raise ValidationError(
            f"Version {number} holds {model}@{alias} already: there is nothing to deploy. "
            "Request a canary of another version."
        )
    problem = ws.registry.protection_problem(model, number, alias)
    if problem is not None:
        raise ValidationError(f"The canary could never be promoted: {problem}")
    repository = DeploymentRepository(ws.db)
    live = repository.live(model, alias)
    if live is not None:
        _end_if_abandoned(repository, live)
    record, created = repository.add(
        uuid.uuid4().hex,
        model=model,
        alias=alias,
        candidate_version=number,
        strategy=strategy,
        plan=dataclasses.asdict(spec.plan),
        check_seconds=float(check_seconds),
        reason=reason,
        requested_by=current_user() or "unknown",
    )
    if not created:
        raise ConflictError(
            f"{model}@{alias} has a live deployment request already: {record.request_id} "
            f"({record.state}, a {record.strategy} of version {record.candidate_version} "
            f"requested by {record.requested_by} at {_time(record.requested_at):%Y-%m-%d %H:%M:%S} "
            "UTC). Wait for it to end (wait_for_deployment, `loopml deploy requests`) or cancel "
            f"it (cancel_deployment, `loopml deploy cancel {record.request_id} --reason ...`)."
        )
    return _public(record)


def get_deployment(ws: Workspace, request_id: str) -> DeploymentRequest:
    """The request ``request_id`` (or a unique prefix of it, 8 characters or more)."""
    return _public(DeploymentRepository(ws.db).get(request_id))


def list_deployments(
    ws: Workspace, model: str | None = None, state: str | None = None
) -> list[DeploymentRequest]:
    """Deployment requests, newest first; of one model and in one state when given."""
    if state is not None and state not in REQUEST_STATES:
        raise ValidationError(f"state must be one of {', '.join(REQUEST_STATES)}, got {state!r}.")
    found = DeploymentRepository(ws.db).find(model, None if state is None else (state,))
    return [_public(record) for record in found]


def wait_for_deployment(
    ws: Workspace,
    request_id: str,
    *,
    timeout: float,
    pickup_timeout: float = 30.0,
    poll: float = 0.5,
) -> DeploymentRequest:
    """Waits until the request has ended, and returns it.

    A request still pending ``pickup_timeout`` seconds after this call started is
    expired (atomically: a server claiming it at that moment either wins, and the wait
    goes on, or finds it expired and never starts it). After ``timeout`` seconds the
    request is returned as it is then, still running (or pending, with a
    ``pickup_timeout`` longer than ``timeout``). A running request whose server stopped
    reporting is ended as ``failed``.
    """
    for name, value in (("timeout", timeout), ("pickup_timeout", pickup_timeout)):
        if not (math.isfinite(value) and value >= 0):
            raise ValidationError(f"{name} must be 0 or more seconds, got {value}.")
    if not (math.isfinite(poll) and poll > 0):
        raise ValidationError(f"poll must be a positive number of seconds, got {poll}.")
    repository = DeploymentRepository(ws.db)
    started = time.monotonic()
    while True:
        record = repository.get(request_id)
        elapsed = time.monotonic() - started
        if record.state == "pending" and elapsed >= pickup_timeout:
            detail = (
                f"no server following models:/{record.model}@{record.alias} picked it up within "
                f"{pickup_timeout:g} s; start one with `loopml serve "
                f"models:/{record.model}@{record.alias}` and request again"
            )
            repository.finish(record.request_id, "expired", detail, when=("pending",))
            continue  # expired, or claimed just before: read it again
        if record.state == "running" and _end_if_abandoned(repository, record):
            continue
        if record.state in _DONE_STATES or elapsed >= timeout:
            return _public(record)
        time.sleep(max(0.0, min(poll, timeout - elapsed)))


def cancel_deployment(ws: Workspace, request_id: str, reason: str) -> DeploymentRequest:
    """Cancels a request: a pending one at once; a running one is rolled back by its
    server at its next check (wait for it with :func:`wait_for_deployment`).

    Raises:
        ValidationError: no reason given.
        ConflictError: the request has ended otherwise already.
    """
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationError("A cancellation needs a reason: the request keeps why.")
    repository = DeploymentRepository(ws.db)
    why = f"{current_user() or 'unknown'}: {reason.strip()}"
    record = repository.get(request_id)
    while True:  # each pass sees the request a step further on; it ends
        if record.state == "pending":
            detail = f"cancelled by {why}, before a server claimed it"
            repository.finish(record.request_id, "cancelled", detail, when=("pending",))
        elif record.state == "running":
            if _abandoned(record):
                detail = f"cancelled by {why}; its server {record.claimed_by} had stopped reporting"
                repository.finish(
                    record.request_id,
                    "cancelled",
                    detail,
                    when=("running",),
                    heartbeat_at=record.heartbeat_at,
                )
            elif repository.ask_cancel(record.request_id, why):
                return _public(repository.get(record.request_id))
        elif record.state == "cancelled":
            return _public(record)
        else:
            undo = (
                f" To undo it: `loopml models rollback {record.model} --alias {record.alias}`."
                if record.state == "promoted"
                else ""
            )
            raise ConflictError(
                f"Deployment request {record.request_id} has ended already ({record.state}: "
                f"{record.detail or 'no detail'}); there is nothing to cancel.{undo}"
            )
        record = repository.get(record.request_id)


def _abandoned(record: DeploymentRequestRecord) -> bool:
    """Whether a running request's server stopped reporting (crashed or was killed)."""
    limit = max(_STALE_SECONDS, 10 * record.check_seconds) * 1000
    beat = record.heartbeat_at or record.claimed_at or record.updated_at
    return record.state == "running" and time.time() * 1000 - beat > limit


def _end_if_abandoned(repository: DeploymentRepository, record: DeploymentRequestRecord) -> bool:
    """Ends a running request whose server stopped reporting as ``failed``; True if so."""
    if not _abandoned(record):
        return False
    last = _time(record.heartbeat_at or record.updated_at)
    detail = (
        f"its server {record.claimed_by} stopped reporting at {last:%Y-%m-%d %H:%M:%S} UTC "
        f"before the canary ended; `loopml models history {record.model}` shows where "
        f"{record.alias} is"
    )
    return repository.finish(
        record.request_id,
        "failed",
        detail,
        when=("running",),
        heartbeat_at=record.heartbeat_at,
    )


def _time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _public(record: DeploymentRequestRecord) -> DeploymentRequest:
    return DeploymentRequest(
        record.request_id,
        record.model,
        record.alias,
        record.candidate_version,
        record.strategy,
        record.state,
        record.detail,
        record.requested_by,
        _time(record.requested_at),
        record.claimed_by,
        _time(record.updated_at),
        record.reason,
    )
