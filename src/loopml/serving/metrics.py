"""The model server's Prometheus metrics, in a registry of their own per app.

Requests by model, version, route and status; latency; batch sizes and queue waits;
queue depth; the distribution of predictions; the prediction log's backlog and drops.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

if TYPE_CHECKING:
    from loopml.serving.health import TrafficWindow
    from loopml.serving.served import Prediction, ServedModel

__all__ = ["CONTENT_TYPE_LATEST", "ServingMetrics"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
_WAIT_BUCKETS = (0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
_PROBABILITY_BUCKETS = tuple(round(0.1 * step, 1) for step in range(1, 11))


class ServingMetrics:
    """Every metric the server exports; ``render()`` is the ``/metrics`` body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "loopml_requests", "HTTP requests.", ["model", "version", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "loopml_request_latency_seconds",
            "Time from request to response.",
            ["model", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_rows = Histogram(
            "loopml_batch_rows",
            "Rows per model call.",
            ["model", "version"],
            buckets=_SIZE_BUCKETS,
            registry=r,
        )
        self.batch_requests = Histogram(
            "loopml_batch_requests",
            "Requests gathered into one model call.",
            ["model", "version"],
            buckets=_SIZE_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "loopml_batch_queue_wait_seconds",
            "Time a request waited for its batch.",
            ["model", "version"],
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "loopml_batch_queue_rows",
            "Rows waiting for a model call.",
            ["model", "version"],
            registry=r,
        )
        self.predicted_class = Counter(
            "loopml_predictions_by_class",
            "Predicted rows per class (classifiers).",
            ["model", "version", "class_"],
            registry=r,
        )
        self.confidence = Histogram(
            "loopml_prediction_confidence",
            "Probability of the predicted class (classifiers).",
            ["model", "version"],
            buckets=_PROBABILITY_BUCKETS,
            registry=r,
        )
        self.predicted_value = Histogram(
            "loopml_prediction_value",
            "Predicted values (regressors).",
            ["model", "version"],
            buckets=(-1e3, -1e2, -10, -1, -0.1, 0, 0.1, 1, 10, 1e2, 1e3, 1e4),
            registry=r,
        )
        self.model_info = Gauge(
            "loopml_model_served",
            "1 for each model version being served.",
            ["model", "version", "runtime"],
            registry=r,
        )
        self.load_seconds = Gauge(
            "loopml_model_load_seconds",
            "Time to load and warm up the served version.",
            ["model", "version"],
            registry=r,
        )
        self.swaps = Counter(
            "loopml_model_swaps",
            "Hot swaps to a new version, by outcome.",
            ["model", "outcome"],
            registry=r,
        )
        self.batch_limit_rows = Gauge(
            "loopml_batch_max_rows", "The max_batch_size limit (0: batching off).", registry=r
        )
        self.batch_limit_wait = Gauge(
            "loopml_batch_max_wait_seconds", "The max_latency_ms limit, in seconds.", registry=r
        )
        self.log_dropped = Gauge(
            "loopml_prediction_log_dropped_rows",
            "Predictions the log did not store (queue full, logged after close, failed writes).",
            registry=r,
        )
        self.log_queued = Gauge(
            "loopml_prediction_log_queued_rows", "Predictions waiting to be written.", registry=r
        )
        # Per-version traffic for the health series; set while a HealthRecorder runs.
        self.traffic: TrafficWindow | None = None

    def observer(self, served: ServedModel) -> _BatchMetrics:
        return _BatchMetrics(self, served.name, served.label)

    def served(self, served: ServedModel, serving: bool) -> None:
        labels = (served.name, served.label, served.runtime)
        if serving:
            self.model_info.labels(*labels).set(1)
            self.load_seconds.labels(served.name, served.label).set(served.loaded_seconds)
        else:
            self.model_info.remove(*labels)

    def predictions(self, served: ServedModel, prediction: Prediction) -> None:
        """Counts one model call's answers (per batch when batching, else per request)."""
        self._predictions(served.name, served.label, prediction)

    def _predictions(self, model: str, version: str, prediction: Prediction) -> None:
        labels = (model, version)
        predictions = prediction.predictions
        if prediction.probabilities is not None:
            # Counter over a batch's few dozen values: np.unique costs several times more.
            for value, count in collections.Counter(predictions.tolist()).items():
                self.predicted_class.labels(*labels, str(value)).inc(count)
            confidence = self.confidence.labels(*labels)
            for top in prediction.probabilities.max(axis=1).tolist():
                confidence.observe(top)
        elif predictions.dtype.kind in "iuf":
            value_histogram = self.predicted_value.labels(*labels)
            for value in predictions.tolist():
                value_histogram.observe(value)

    def watch_log(self, dropped: Callable[[], float], queued: Callable[[], float]) -> None:
        self.log_dropped.set_function(dropped)
        self.log_queued.set_function(queued)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _BatchMetrics:
    """The batch observer of one served version."""

    def __init__(self, metrics: ServingMetrics, model: str, version: str) -> None:
        self._metrics = metrics
        self._model = model
        self._version = version
        self._rows = metrics.batch_rows.labels(model, version)
        self._requests = metrics.batch_requests.labels(model, version)
        self._wait = metrics.queue_wait.labels(model, version)
        self._depth = metrics.queue_depth.labels(model, version)

    def batch_started(self, rows: int, requests: int, waits: list[float]) -> None:
        self._rows.observe(rows)
        self._requests.observe(requests)
        for wait in waits:
            self._wait.observe(wait)

    def queue_changed(self, rows: int) -> None:
        self._depth.set(rows)

    def predicted(self, prediction: Prediction) -> None:
        self._metrics._predictions(self._model, self._version, prediction)
