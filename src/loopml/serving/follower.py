"""The server side of deployment requests: a running server that follows an alias
claims the pending requests of that alias and runs them (see
:func:`loopml.serving.deployment.request_deployment`).

Internal: :func:`loopml.serving.create_app` starts a :class:`RequestFollower` beside the
alias follower.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from loopml.errors import ValidationError
from loopml.serving.deployment import Deployment, DeploySpec
from loopml.serving.health import instance_id
from loopml.serving.policies import CanaryPlan
from loopml.store.repositories.deployments import (
    LIVE_STATES,
    DeploymentRepository,
    DeploymentRequestRecord,
)

if TYPE_CHECKING:
    from loopml.serving.state import ServingState

__all__ = ["RequestFollower"]

logger = logging.getLogger("loopml.serving")


def _plan(values: dict[str, Any]) -> CanaryPlan:
    """The stored plan (fields a newer loopml added are left out)."""
    known = {f.name for f in dataclasses.fields(CanaryPlan)}
    kept = {key: value for key, value in values.items() if key in known}
    if "steps" in kept:
        kept["steps"] = tuple(float(step) for step in kept["steps"])
    return CanaryPlan(**kept)


class RequestFollower:
    """Runs the deployment requests of the alias a server follows, one at a time.

    Every ``poll_seconds`` it looks for a pending request of the served ``model@alias``
    (one indexed read) unless the server runs a deployment already or serves nothing;
    it claims one with a conditional UPDATE, so of several servers (or workers) exactly
    one runs it, and runs the same :class:`Deployment` as ``loopml deploy``. While it
    runs, a heartbeat every ``check_seconds`` records its progress and picks up a
    cancellation; its outcome ends the request.

    Args:
        state: The serving state, following an alias of a workspace's model.
        poll_seconds: How often to look for a pending request.
    """

    def __init__(self, state: ServingState, poll_seconds: float) -> None:
        if state.workspace is None or state.source.alias is None or state.source.model is None:
            raise ValidationError(
                "Deployment requests are for a server of models:/<name>@<alias> from a workspace."
            )
        self.state = state
        self.workspace = state.workspace
        self.model = state.source.model
        self.alias = state.source.alias
        self.poll_seconds = poll_seconds
        self.owner = instance_id()
        self.repository = DeploymentRepository(state.workspace.db)
        self.active: DeploymentRequestRecord | None = None  # the request it runs now
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Starts following (on the running event loop)."""
        self._task = asyncio.get_running_loop().create_task(
            self._follow(), name="loopml-deployment-requests"
        )

    async def stop(self) -> None:
        """Stops following; a request running here ends as ``failed`` (the alias is left
        where the canary was: the holder keeps it unless the canary was promoted)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        active, self.active = self.active, None
        if active is not None:
            deployment = self.state.deployment
            live = isinstance(deployment, Deployment) and deployment.live
            at = deployment.detail if live else None
            detail = f"the server {self.owner} stopped before the canary ended" + (
                f" (last: {at})" if at else ""
            )
            await asyncio.to_thread(self._finish, active, "failed", detail)

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                await self.poll()
            except Exception as error:  # the database may be briefly unreachable
                logger.warning("Could not look for deployment requests: %s", error)

    async def poll(self) -> bool:
        """Claims and runs one pending request, if there is one for this server; True if
        it ran one (returning once it ended)."""
        deployment = self.state.deployment
        if (deployment is not None and deployment.live) or not self.state.router.ready:
            return False
        record = await asyncio.to_thread(self.repository.live, self.model, self.alias)
        if record is None or record.state != "pending":
            return False
        self.active = record  # before the claim: a stop in between still ends it
        try:
            claimed = await asyncio.to_thread(
                self.repository.claim, record.request_id, self.owner, "loading the candidate"
            )
        except Exception:
            self.active = None
            raise
        if not claimed:  # another server won it, or it expired or was cancelled
            self.active = None
            return False
        logger.info(
            "Claimed deployment request %s: a %s of version %s of %s@%s.",
            record.request_id, record.strategy, record.candidate_version, self.model, self.alias,
        )  # fmt: skip
        try:
            state, detail = await self._run(record)
        except Exception as error:
            logger.exception("Deployment request %s failed", record.request_id)
            state, detail = "failed", f"{type(error).__name__}: {error}"
        self.active = None
        await asyncio.to_thread(self._finish, record, state, detail)
        return True

    async def _run(self, record: DeploymentRequestRecord) -> tuple[str, str | None]:
        """Runs the request's deployment to its end; its outcome and detail."""
        arms = self.state.router.arms
        if not arms:  # the server is shutting down
            return "failed", f"the server {self.owner} stopped serving before the canary started"
        stable = arms[0].served.version
        if stable == record.candidate_version:
            return "failed", f"version {stable} serves {self.model}@{self.alias} already"
        spec = DeploySpec(
            record.strategy,
            f"models:/{self.model}/{record.candidate_version}",
            _plan(record.plan),
            check_seconds=record.check_seconds,
        )
        deployment = Deployment(self.state, spec)
        self.state.deployment = deployment
        beating = asyncio.create_task(self._beat(record, deployment), name="loopml-request-beat")
        try:
            try:
                await deployment.start()
            except Exception as error:  # e.g. the alias became protected since the request
                return "failed", str(error)
            await deployment.run()
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
        return deployment.state_name, deployment.detail

    async def _beat(self, record: DeploymentRequestRecord, deployment: Deployment) -> None:
        """Records progress every check; hands a cancellation to the deployment."""
        while True:
            await asyncio.sleep(record.check_seconds)
            try:
                mine, cancel = await asyncio.to_thread(
                    self.repository.beat, record.request_id, self.owner, deployment.detail
                )
            except Exception as error:
                logger.warning("Could not record the deployment's progress: %s", error)
                continue
            if not mine:  # ended elsewhere (its server was taken for gone): stop too
                deployment.cancel("the request was ended outside this server")
            elif cancel is not None:
                deployment.cancel(cancel)

    def _finish(self, record: DeploymentRequestRecord, state: str, detail: str | None) -> None:
        if state in LIVE_STATES:  # a deployment that never started its canary
            state = "failed"
        try:
            ended = self.repository.finish(
                record.request_id, state, detail, when=("running",), owner=self.owner
            )
        except Exception:
            logger.exception("Could not record the end of deployment request %s", record.request_id)
            return
        if not ended:
            logger.warning(
                "Deployment request %s had been ended elsewhere; its outcome here was %s.",
                record.request_id,
                state,
            )
