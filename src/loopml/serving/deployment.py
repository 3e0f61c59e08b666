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
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.errors import ValidationError
from loopml.registry import parse_reference
from loopml.serving.policies import ArmStats, CanaryPlan, canary_decision
from loopml.serving.router import Arm
from loopml.serving.served import load_served

if TYPE_CHECKING:
    from loopml.serving.served import Prediction
    from loopml.serving.state import ServingState

__all__ = ["STRATEGIES", "DeploySpec", "Deployment"]

logger = logging.getLogger("loopml.serving")
STRATEGIES = ("canary", "shadow", "ab")


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
        self.state_name = "starting"  # running | promoted | rolled_back | failed

    # -- starting ---------------------------------------------------------------
    async def start(self) -> None:
        """Loads the candidate beside the holder and splits the traffic."""
        registry = self.state.workspace.registry  # type: ignore[union-attr]
        stable = next((arm.served for arm in self.state.router.arms), None)
        if stable is None:
            raise ValidationError(f"{self.state.source.reference} is not loaded; cannot deploy.")
        self.stable_version = stable.version
        if self.spec.strategy == "canary":
            problem = await asyncio.to_thread(
                registry.protection_problem, self.model, self.candidate_version, self.alias
            )
            if problem is not None:
                raise ValidationError(f"The canary could never be promoted: {problem}")
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
        while self.state_name == "running":
            await asyncio.sleep(self.spec.check_seconds)
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

    async def _rollback(self, reason: str) -> None:
        arms = self.state.router.arms
        stable = next(a for a in arms if a.name == "stable")
        canary = next(a for a in arms if a.name == "canary")
        self.state.router.replace((Arm(stable.served, 1.0, "stable"),))
        self.state_name = "rolled_back"
        logger.warning("Canary of version %s rolled back: %s", self.candidate_version, reason)
        await self._event("canary-rollback", reason)
        self.state.metrics.served(canary.served, False)
        await canary.served.close()

    async def _promote(self, reason: str) -> None:
        registry = self.state.workspace.registry  # type: ignore[union-attr]
        await asyncio.to_thread(
            registry.promote,
            self.model,
            self.candidate_version,
            self.alias,
            reason=f"canary completed: {reason}",
        )
        arms = self.state.router.arms
        canary = next(a for a in arms if a.name == "canary")
        stable = next(a for a in arms if a.name == "stable")
        self.state.router.replace((Arm(canary.served, 1.0, "stable"),))
        self.state_name = "promoted"
        self.state.metrics.served(stable.served, False)
        await stable.served.close()

    async def _event(self, action: str, reason: str) -> None:
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
