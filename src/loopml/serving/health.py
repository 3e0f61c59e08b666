"""Service health in the monitored series: every ``health_interval`` seconds, the server's
traffic since the last snapshot becomes ``health`` points per model version.

The middleware feeds a :class:`TrafficWindow` (per-version request counts by status class
and a log-bucketed latency sketch); a :class:`HealthRecorder` task swaps it out on the
event loop (so the two never race), adds queue depth and the prediction log's drops and
backlog from :class:`~loopml.serving.metrics.ServingMetrics`, and writes the points in a
thread. Points are written straight through the store: serving sits below
``loopml.monitoring`` and never imports it.

Series (``health.<name>``): ``requests``, ``throughput_rps``, ``error_rate`` (5xx share),
``client_error_rate`` (4xx share), ``p50_ms``, ``p95_ms``, ``p99_ms``, ``queue_depth``,
and for the whole server ``log_dropped`` (rows dropped in the window) and
``log_backlog``. Each model version gets its points; version 0 holds the whole server's
(every version, plus requests refused before a version was picked). ``test`` is the
instance (``host:pid``), so the workers of one server never overwrite each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from loopml.store.repositories.monitoring import MonitorRepository, PointRecord

if TYPE_CHECKING:
    from prometheus_client.metrics import MetricWrapperBase

    from loopml.serving.metrics import ServingMetrics
    from loopml.workspace import Workspace

__all__ = ["HEALTH_SERIES", "HealthRecorder", "TrafficWindow", "VersionTraffic", "instance_id"]

logger = logging.getLogger("loopml.serving")

HEALTH_SERIES = (
    "requests", "throughput_rps", "error_rate", "client_error_rate", "p50_ms", "p95_ms",
    "p99_ms", "queue_depth", "log_dropped", "log_backlog",
)  # fmt: skip

# Latency buckets grow by 2%: a percentile is within 1% of the true value, and a
# minute's traffic needs a few hundred buckets at most, whatever the request rate.
_GROWTH = 1.02
_SCALE = 1 / math.log(_GROWTH)
_FLOOR_SECONDS = 1e-6
_PREDICTION_ROUTES = ("/predict", "/infer")
_PERCENTILES = (("p50_ms", 0.50), ("p95_ms", 0.95), ("p99_ms", 0.99))
# Snapshots kept for a retry while the store is unavailable (a day at the default interval).
_MAX_PENDING_POINTS = 24 * 60 * 16


def instance_id() -> str:
    """This process as ``host:pid``, cut to the store's 32 characters."""
    pid = str(os.getpid())
    return f"{socket.gethostname()[: 31 - len(pid)]}:{pid}"


@dataclass
class VersionTraffic:
    """One version's requests in one window: counts by status class, latency buckets."""

    requests: int = 0
    errors: int = 0  # 5xx
    client_errors: int = 0  # 4xx
    latency: dict[int, int] = field(default_factory=dict)  # bucket index -> requests

    def add(self, other: VersionTraffic) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.client_errors += other.client_errors
        for index, count in other.latency.items():
            self.latency[index] = self.latency.get(index, 0) + count

    def percentile_ms(self, share: float) -> float:
        """The latency below which ``share`` of the requests finished (nearest rank)."""
        total = sum(self.latency.values())
        if total == 0:
            return math.nan
        rank = max(1, math.ceil(share * total))
        seen = 0
        for index in sorted(self.latency):
            seen += self.latency[index]
            if seen >= rank:
                return math.exp((index + 0.5) / _SCALE) * 1000
        raise AssertionError("unreachable")


class TrafficWindow:
    """Prediction requests per version since the last :meth:`take`.

    :meth:`observe` is the request path's whole cost (a dict lookup, three integer
    additions and a logarithm); it and :meth:`take` run on the event loop's thread.
    """

    def __init__(self) -> None:
        self._versions: dict[str, VersionTraffic] = {}

    def observe(self, version: str, route: str, status: int, seconds: float) -> None:
        """Counts one answered request; routes other than predictions are not traffic."""
        if not route.endswith(_PREDICTION_ROUTES):
            return
        traffic = self._versions.get(version)
        if traffic is None:
            traffic = self._versions[version] = VersionTraffic()
        traffic.requests += 1
        if status >= 500:
            traffic.errors += 1
        elif status >= 400:
            traffic.client_errors += 1
        index = math.floor(math.log(max(seconds, _FLOOR_SECONDS)) * _SCALE)
        traffic.latency[index] = traffic.latency.get(index, 0) + 1

    def take(self) -> dict[str, VersionTraffic]:
        """The window's traffic by version label; the next window starts empty."""
        taken, self._versions = self._versions, {}
        return taken


class HealthRecorder:
    """Writes the server's health points every ``interval`` seconds and once at stop.

    Args:
        workspace: Where the points go (``MonitorRepository(workspace.db)``).
        model: The model the points belong to (the registered name).
        metrics: The app's metrics: its ``traffic`` window is attached here, and queue
            depth, served versions and the prediction log's counters are read from it.
        served_name: The name the metrics label the model with (default ``model``).
        interval: Seconds between snapshots; must be positive.
        instance: The ``test`` column of every point (default ``host:pid``).
    """

    def __init__(
        self,
        workspace: Workspace,
        model: str,
        metrics: ServingMetrics,
        *,
        served_name: str | None = None,
        interval: float = 60.0,
        instance: str | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        self.workspace = workspace
        self.model = model
        self.metrics = metrics
        self.served_name = served_name or model
        self.interval = interval
        self.instance = instance or instance_id()
        self.window = TrafficWindow()
        self.pending: list[PointRecord] = []  # written at the next flush (store was down)
        self._started = time.time()
        self._dropped = 0.0
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle --------------------------------------------------------------
    def start(self) -> None:
        """Attaches the traffic window to the metrics and starts snapshotting (on the
        running event loop)."""
        self.metrics.traffic = self.window
        self._started = time.time()
        self._dropped = _total(self.metrics.log_dropped)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="loopml-health")

    async def stop(self) -> None:
        """Stops snapshotting and writes the last window."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
        if self.metrics.traffic is self.window:
            self.metrics.traffic = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def flush(self) -> bool:
        """Snapshots now (on the loop) and writes in a thread; False if the write failed
        (the points are kept for the next flush)."""
        self.pending.extend(self.snapshot())
        if not self.pending:
            return True
        points = list(self.pending)
        # Cancelled at stop, the thread may still finish this write: stop() then writes
        # the same points again, which replaces them (same window, name and instance).
        written = await asyncio.to_thread(self.write, points)
        if written:
            self.pending = self.pending[len(points) :]
        elif len(self.pending) > _MAX_PENDING_POINTS:
            del self.pending[: len(self.pending) - _MAX_PENDING_POINTS]
        return written

    # -- snapshots --------------------------------------------------------------
    def snapshot(self, now: float | None = None) -> list[PointRecord]:
        """The points of the window since the last snapshot; starts the next window."""
        end = time.time() if now is None else now
        start, self._started = self._started, end
        traffic = self.window.take()
        start_ms, end_ms = int(start * 1000), int(end * 1000)
        if end_ms <= start_ms:
            return []
        seconds = (end_ms - start_ms) / 1000
        depth = {
            labels["version"]: value
            for labels, value in _samples(self.metrics.queue_depth)
            if labels.get("model") == self.served_name
        }
        served = {
            labels["version"]
            for labels, value in _samples(self.metrics.model_info)
            if labels.get("model") == self.served_name and value
        }
        dropped = _total(self.metrics.log_dropped)
        dropped_delta, self._dropped = max(0.0, dropped - self._dropped), dropped
        everything = VersionTraffic()
        for version_traffic in traffic.values():
            everything.add(version_traffic)
        points: list[PointRecord] = []

        def add(version: int, values: dict[str, float], requests: int) -> None:
            window = (self.model, version, start_ms, end_ms, "health")
            detail = {"requests": requests}  # to weigh rates when instances are combined
            points.extend(
                PointRecord(*window, name, self.instance, value, detail=detail)
                for name, value in values.items()
            )

        for label in sorted(set(traffic) | served):
            if label.isdigit() and int(label) > 0:  # not "bundle", nor "" (no version picked)
                one = traffic.get(label, VersionTraffic())
                add(int(label), _values(one, seconds, depth.get(label, 0.0)), one.requests)
        totals = _values(everything, seconds, sum(depth.get(label, 0.0) for label in served))
        totals.update(log_dropped=dropped_delta, log_backlog=_total(self.metrics.log_queued))
        add(0, totals, everything.requests)
        return points

    def write(self, points: list[PointRecord]) -> bool:
        """Stores ``points``; logs and returns False instead of raising (serving goes on)."""
        try:
            MonitorRepository(self.workspace.db).record_points(points)
        except Exception as error:
            logger.warning(
                "Could not store %d health points (%s: %s); retrying at the next snapshot.",
                len(points),
                type(error).__name__,
                error,
            )
            return False
        return True


def _values(traffic: VersionTraffic, seconds: float, depth: float) -> dict[str, float]:
    """A window's series values; rates and percentiles only when there were requests."""
    values = {"requests": float(traffic.requests), "throughput_rps": traffic.requests / seconds}
    if traffic.requests:
        values["error_rate"] = traffic.errors / traffic.requests
        values["client_error_rate"] = traffic.client_errors / traffic.requests
        for name, share in _PERCENTILES:
            values[name] = traffic.percentile_ms(share)
    values["queue_depth"] = depth
    return values


def _samples(metric: MetricWrapperBase) -> Iterable[tuple[dict[str, str], float]]:
    for family in metric.collect():
        for sample in family.samples:
            yield sample.labels, sample.value


def _total(metric: MetricWrapperBase) -> float:
    return sum(value for _, value in _samples(metric))
