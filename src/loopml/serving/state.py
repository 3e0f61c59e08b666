"""The running server's state: the served models, their loading and hot swap, and the
prediction path every route shares (model call, metrics, prediction log).

Internal: :func:`loopml.serving.create_app` builds it; routes reach it as
``request.app.state.serving``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

import pandas as pd

from loopml.errors import NotFoundError
from loopml.serving.inputs import RowBlock
from loopml.serving.microbatch import MicroBatcher
from loopml.serving.options import ServeOptions
from loopml.serving.router import Arm, Router
from loopml.serving.served import ModelSource, Prediction, ServedModel, load_served

if TYPE_CHECKING:
    from loopml.serving.metrics import ServingMetrics
    from loopml.workspace import Workspace

__all__ = ["ROUTING_HEADER", "ModelFailed", "ServingState"]

# Requests carrying this header (an entity id) stay on one arm of a canary or A/B test.
ROUTING_HEADER = "x-routing-key"

logger = logging.getLogger("loopml.serving")


class ModelFailed(Exception):
    """The model raised on a request's rows; ``error_id`` ties the 500 to the log."""

    def __init__(self, error_id: str, detail: str) -> None:
        super().__init__(detail)
        self.error_id = error_id
        self.detail = detail


class ServingState:
    """What one app serves and how: source, options, router, metrics, prediction log."""

    def __init__(
        self,
        workspace: Workspace | None,
        source: ModelSource,
        options: ServeOptions,
        metrics: ServingMetrics,
        executor: Executor,
        prediction_log: Any = None,
    ) -> None:
        self.workspace = workspace
        self.source = source
        self.options = options
        self.metrics = metrics
        self.executor = executor
        self.prediction_log = prediction_log
        self.router = Router(source.name)
        self.on_swap: list[Callable[[], None]] = []  # e.g. the OpenAPI cache reset
        self.deployment: Any = None  # a loopml.serving.deployment.Deployment, when running one
        self._failed_version: int | None = None

    # -- loading and hot swap ---------------------------------------------------
    async def load(self, version: int | None = None) -> bool:
        """Loads and warms up ``version`` in a thread, then serves it; False (and the
        current model kept) when it fails to load."""
        what = self.source.reference + (f" (version {version})" if version is not None else "")
        try:
            served = await asyncio.to_thread(
                load_served,
                self.workspace,
                self.source,
                self.options.runtime,
                version,
                self._batcher,
                self.executor,
            )
        except Exception as error:
            self._failed_version = version
            self.metrics.swaps.labels(self.source.name, "failed").inc()
            logger.error(
                "Could not load %s: %s: %s. %s",
                what,
                type(error).__name__,
                error,
                "Still serving the current version." if self.router.ready else "Not ready.",
                exc_info=not isinstance(error, (NotFoundError,)),
            )
            if not self.router.ready:
                self.router.reason = f"Could not load {what}: {error}"
            return False
        old = self.router.replace((Arm(served),))
        self.metrics.served(served, True)
        self.metrics.swaps.labels(self.source.name, "loaded").inc()
        logger.info(
            "Serving %s version %s (%s runtime), loaded and warmed up in %.2f s.",
            served.name,
            served.label,
            served.runtime,
            served.loaded_seconds,
        )
        for callback in self.on_swap:
            callback()
        for arm in old:  # requests already queued for the old version finish on it
            self.metrics.served(arm.served, False)
            await arm.served.close()
        return True

    def _batcher(self, served: ServedModel) -> MicroBatcher | None:
        if not self.options.batching:
            return None
        return MicroBatcher(
            served.run,
            self.executor,
            max_batch_size=self.options.max_batch_size,
            max_latency_ms=self.options.max_latency_ms,
            observer=self.metrics.observer(served),
        )

    async def start(self) -> None:
        """Loads the model the reference names now (an alias: its current holder)."""
        version = None
        if self.source.alias is not None:
            try:
                version = await asyncio.to_thread(self._resolve)
            except Exception as error:
                logger.error("Could not resolve %s: %s", self.source.reference, error)
                self.router.reason = f"Could not resolve {self.source.reference}: {error}"
                return
        await self.load(version)

    async def follow_alias(self) -> None:
        """Re-resolves the alias every ``poll_seconds`` and swaps to its new holder.

        A version that failed to load is not retried until the alias moves again. While
        a canary runs, a move to another version cancels it, and the swap waits for its
        rollback: the canary's arms are never replaced under it.
        """
        while True:
            await asyncio.sleep(self.options.poll_seconds)
            arms = self.router.arms
            try:
                version = await asyncio.to_thread(self._resolve)
            except Exception as error:  # the database may be briefly unreachable
                logger.warning("Could not re-resolve %s: %s", self.source.reference, error)
                continue
            if self.router.arms is not arms:
                # Swapped while resolving (a canary's promotion): the answer may predate
                # it, and acting on it would load the old holder back.
                continue
            serving = {arm.served.version for arm in arms}
            if version in serving or version == self._failed_version:
                continue
            deployment = self.deployment
            if deployment is not None and deployment.live and deployment.spec.strategy == "canary":
                deployment.cancel(f"{self.source.reference} moved to version {version}")
                continue
            logger.info("%s moved to version %s; loading it.", self.source.reference, version)
            await self.load(version)

    def _resolve(self) -> int:
        assert self.workspace is not None
        return self.workspace.registry.get(self.source.reference).version

    async def close(self) -> None:
        for arm in self.router.replace(()):
            await arm.served.close()
        self.router.reason = "the server is shutting down"

    # -- predicting -------------------------------------------------------------
    async def predict(
        self,
        served: ServedModel,
        frame: pd.DataFrame | RowBlock,
        request_id: str,
        arm: Arm | None = None,
    ) -> Prediction:
        """The model's answers for checked rows; a model error becomes ModelFailed."""
        started = time.perf_counter()
        try:
            prediction = await served.predict(frame)
        except Exception as error:
            if self.deployment is not None and arm is not None:
                self.deployment.observe(arm.name, time.perf_counter() - started, None)
            error_id = uuid.uuid4().hex[:12]
            logger.exception(
                "Model %s version %s failed on request %s (error id %s)",
                served.name,
                served.label,
                request_id,
                error_id,
            )
            raise ModelFailed(
                error_id,
                f"The model raised {type(error).__name__}: {error}. Error id {error_id}; the "
                "server log has the traceback.",
            ) from None
        if served.batcher is None:  # a batcher counts each model call's answers itself
            self.metrics.predictions(served, prediction)
        if self.deployment is not None and arm is not None:
            self.deployment.observe(arm.name, time.perf_counter() - started, prediction)
        return prediction

    async def finish(
        self,
        served: ServedModel,
        arm: Arm,
        frame: pd.DataFrame | RowBlock,
        prediction: Prediction,
        request_id: str,
        started: float,
    ) -> None:
        """After the response is sent: log the predictions, and copy the request to a
        shadow version (its answers are logged, never returned)."""
        self.log(served, arm, frame, prediction, request_id, started)
        shadow = self.router.shadow()
        if shadow is None or shadow is served:
            return
        shadow_started = time.perf_counter()
        try:
            answer = await shadow.predict(frame)
        except Exception:  # a failing shadow must never touch the primary path
            logger.exception("Shadow version %s failed on request %s", shadow.label, request_id)
            return
        self.log(shadow, Arm(shadow, 0.0, "shadow"), frame, answer, request_id, shadow_started)

    def log(
        self,
        served: ServedModel,
        arm: Arm,
        frame: pd.DataFrame | RowBlock,
        prediction: Prediction,
        request_id: str,
        started: float,
    ) -> None:
        """Appends to the prediction log (after the response is sent); never blocks."""
        if self.prediction_log is None:
            return
        try:
            self.prediction_log.log(
                model=served.name,
                version=served.version or 0,
                request_id=request_id,
                inputs=frame,
                predictions=prediction.predictions,
                probabilities=prediction.probabilities,
                classes=served.classes,
                latency_ms=(time.perf_counter() - started) * 1000,
                arm=arm.name if len(self.router.arms) > 1 or arm.name != "stable" else None,
                source="online",
            )
        except Exception:  # logging must never break serving
            logger.exception("Could not log the predictions of request %s", request_id)
