"""``ws.monitor``: windows of a served model's traffic judged against its reference.

One window ``[start, end)`` of a model version's prediction log is evaluated in one
pass over its Parquet files, batch by batch (memory holds one batch and the summaries,
never the window): the inputs are binned on the reference profile's edges and compared
with it (data drift), the outputs likewise (prediction drift); the labels that have
arrived so far give windowed metrics with intervals and an error stream for the
change detectors. Every result is recorded as points of the monitored series, and the
alert rules are judged on them. Re-evaluating a window replaces its points and fires
nothing twice, so a monitor that crashed mid-window just runs it again.

``loopml monitor run`` evaluates aligned windows (``--window 1h``: each clock hour) as
they close, holding a lease on a cursor in the metadata store, so a restart resumes
after the last finished window and two monitors never judge the same one.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
import pickle
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml._time import to_ms, utc
from loopml.errors import NotFoundError, ValidationError
from loopml.monitoring.series import Point, record, series

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from loopml.data.summary import FrameSummary
    from loopml.models.reference import Reference
    from loopml.monitoring.alerts import AlertChange
    from loopml.monitoring.detectors import ChangeDetector
    from loopml.monitoring.drift import DriftReport
    from loopml.monitoring.performance import PerformanceReport
    from loopml.registry.registry import ModelVersion
    from loopml.store.repositories.monitoring import AlertRecord
    from loopml.workspace import Workspace

__all__ = ["Monitor", "WindowResult", "parse_window"]

_logger = logging.getLogger("loopml.monitoring")
_BATCH_ROWS = 131_072
_ALL_ROWS = 10**15


@dataclass
class WindowResult:
    """What one evaluated window found."""

    model: str
    version: int
    start: dt.datetime
    end: dt.datetime
    rows: int
    drift: DriftReport | None = None
    prediction_drift: DriftReport | None = None
    performance: PerformanceReport | None = None
    concept: list[Point] = field(default_factory=list)
    alerts: list[AlertChange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def points(self) -> list[Point]:
        """Every point this window produced (what ``record`` stores)."""
        found: list[Point] = []
        if self.drift is not None:
            found += self.drift.to_points(self.model, self.version, self.start, self.end)
        if self.prediction_drift is not None:
            found += [
                p
                for p in self.prediction_drift.to_points(
                    self.model, self.version, self.start, self.end
                )
                if p.name != "share"  # the share is of the input features only
            ]
        if self.performance is not None:
            found += self.performance.to_points(self.model, self.version)
        found += self.concept
        return found

    @property
    def firing(self) -> list[AlertChange]:
        """The alerts open after this window (fired now or still firing)."""
        return [change for change in self.alerts if change.status in ("fired", "firing")]


class Monitor:
    """Monitoring of one workspace's models; ``ws.monitor``."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws

    # -- building blocks ------------------------------------------------------------
    def drift(self, reference: Any, current: Any, **options: Any) -> DriftReport:
        """Data drift of ``current`` against ``reference`` (see
        :func:`loopml.monitoring.drift.drift` for the tests and options).

        Either side may be a DataFrame, an Arrow table or a summary; ``reference`` may
        also be a model reference (``models:/churn@production``: its reference profile)
        and ``current`` a dataset reference (``churn@4``) or a list of Parquet files.
        """
        from loopml.monitoring.drift import drift
        from loopml.registry import ModelVersion

        if isinstance(reference, ModelVersion) or (
            isinstance(reference, str) and reference.startswith("models:/")
        ):
            reference = self.reference(reference).features
        if isinstance(current, str):
            current = self._ws.data.get(current)
        return drift(reference, current, **options)

    def reference(self, ref: Any) -> Reference:
        """The version's reference profile; an error saying how to set one if it has none."""
        version = self._ws.registry.get(ref)
        found = self._ws.registry.reference(version)
        if found is None:
            raise NotFoundError(
                f"{version.uri} has no reference profile to monitor against (it was not trained "
                f"by ws.train or ws.tune). Set one from its training data: "
                f"ws.registry.set_reference('{version.uri}', training_frame)."
            )
        return found

    def series(self, model: str, key: str | None = None, **filters: Any) -> pd.DataFrame:
        """The model's monitored series (``drift.share``, ``performance.roc_auc``, ...)."""
        return series(self._ws, model, key, **filters)

    def alerts(self, model: str | None = None, state: str | None = None) -> list[AlertRecord]:
        """Alerts, newest first; ``state``: firing or resolved."""
        from loopml.store.repositories.monitoring import MonitorRepository

        return MonitorRepository(self._ws.db).alerts(model=model, state=state)

    def raise_alert(
        self,
        model: str,
        rule: str,
        message: str,
        *,
        severity: str = "critical",
        details: Mapping[str, Any] | None = None,
        notify: Mapping[str, Any] | Sequence[Any] | None = None,
    ) -> AlertRecord:
        """Raises an alert that no series condition fired (a stopped retraining run, say),
        tells the notifiers and returns it; ``loopml monitor alerts`` lists it.

        One alert of a rule and model is open at a time: while it is, raising it again
        replaces its message and tells the notifiers again, without a new alert.

        Args:
            model: The registered model's name.
            rule: What raised it, e.g. ``ct-gate-failed``.
            message: One line for people, saying what to do.
            severity: ``info``, ``warning`` or ``critical``.
            details: JSON-able facts kept on the alert (as its ``action``, kind ``raised``).
            notify: Notifiers by name (configurations as alert rules take them), or a list
                of names and configurations; default ``log``.
        """
        from loopml.monitoring.alerts import SEVERITIES, AlertChange, _notify
        from loopml.monitoring.notify import build_notifier
        from loopml.store.repositories.monitoring import MonitorRepository

        for name, value in (("model", model), ("rule", rule), ("message", message)):
            if not isinstance(value, str) or not value.strip():
                raise ValidationError(f"raise_alert needs `{name}` as text, got {value!r}.")
        if severity not in SEVERITIES:
            raise ValidationError(
                f"severity {severity!r} is unknown; write one of {', '.join(SEVERITIES)}."
            )
        if isinstance(notify, Mapping):
            named = list(notify.items())
        else:  # names ("log"), configurations (named by their type) or callables
            named = [
                (spec, {"type": spec})
                if isinstance(spec, str)
                else (
                    str(spec.get("type", "log")) if isinstance(spec, Mapping) else "callable",
                    spec,
                )
                for spec in (["log"] if notify is None else notify)
            ]
        notifiers = [build_notifier(name, spec) for name, spec in named]
        repository = MonitorRepository(self._ws.db)
        now = dt.datetime.now(dt.UTC)
        alert, created = repository.open_alert(
            rule=rule,
            model=model,
            series="raised",
            severity=severity,
            value=None,
            threshold=None,
            message=message,
            window_end=to_ms(now),
        )
        values: dict[str, Any] = {"action": {"kind": "raised", "details": dict(details or {})}}
        if not created:
            values["message"] = message
        repository.update_alert(alert.alert_id, **values)
        alert = repository.alert(alert.alert_id)
        change = AlertChange(
            status="fired" if created else "firing",
            rule=rule,
            model=model,
            series="raised",
            severity=severity,
            value=None,
            threshold=None,  # type: ignore[arg-type]  # raised by hand: no condition
            window_end=now,
            message=message,
            alert=alert,
        )
        _notify(repository, change, notifiers, time.sleep)
        return repository.alert(alert.alert_id)

    # -- one window -----------------------------------------------------------------
    def evaluate(
        self,
        ref: Any,
        start: dt.datetime,
        end: dt.datetime,
        *,
        rules: Any = None,
        record_points: bool = True,
        min_coverage: float = 0.5,
        drift_options: Mapping[str, Any] | None = None,
        notifiers: Mapping[str, Any] | None = None,
        actions: Mapping[str, Any] | None = None,
        detectors: Sequence[ChangeDetector] | None = None,
    ) -> WindowResult:
        """Evaluates the window ``[start, end)`` of the version ``ref`` resolves to.

        Args:
            ref: A model reference (``models:/churn@production``).
            rules: Alert rules (a YAML path or text, a list, an AlertConfig) judged on
                the window's points once recorded; None judges none.
            record_points: Store the window's points (False: a dry look, as reports do).
            min_coverage: The label coverage below which a performance window is
                marked incomplete.
            drift_options: Passed to the drift tests (``tests``, ``thresholds``).
            detectors: Concept-drift detectors to continue (updated in place): ``run``
                carries them from window to window, so their streams span windows.

        An empty window has no drift (a note says so) and still judges the rules, so an
        alert on a series can resolve when the traffic that caused it stops.
        """
        start, end = utc(start), utc(end)
        if end <= start:
            raise ValidationError(f"A window must end after it starts; got {start} .. {end}.")
        version = self._ws.registry.get(ref)
        reference = self.reference(version)
        result = WindowResult(version.name, version.version, start, end, rows=0)
        self._drift(result, version, reference, dict(drift_options or {}))
        self._performance(result, min_coverage, detectors)
        if record_points:
            record(self._ws, result.points)
        if rules is not None:
            if not record_points:
                raise ValidationError("Alert rules judge recorded points; keep record_points=True.")
            from loopml.monitoring.alerts import evaluate_alerts

            result.alerts = evaluate_alerts(
                self._ws, version.name, rules, at=end, notifiers=notifiers, actions=actions
            )
        return result

    def _drift(
        self,
        result: WindowResult,
        version: ModelVersion,
        reference: Reference,
        options: dict[str, Any],
    ) -> None:
        from loopml.monitoring.drift import drift

        features, predictions, rows = self._window_summaries(result, version, reference)
        result.rows = rows
        if rows == 0 or features is None:
            result.notes.append(
                f"No logged predictions of {version.uri} in {result.start:%Y-%m-%d %H:%M:%S} .. "
                f"{result.end:%Y-%m-%d %H:%M:%S} UTC: no drift to compute."
            )
            return
        result.drift = drift(reference.features, features, **options)
        if reference.predictions is not None and predictions is not None:
            result.prediction_drift = drift(reference.predictions, predictions)

    def _window_summaries(
        self, result: WindowResult, version: ModelVersion, reference: Reference
    ) -> tuple[FrameSummary | None, FrameSummary | None, int]:
        """The window's inputs and outputs summarised on the reference's bins, one batch
        of the log at a time."""
        from loopml.data.summary import summarize

        feature_names = list(reference.features)
        output_names = list(reference.predictions) if reference.predictions is not None else []
        features: FrameSummary | None = None
        predictions: FrameSummary | None = None
        rows = 0
        for batch in self._batches(result, version, feature_names + output_names):
            if batch.num_rows == 0:
                continue
            rows += batch.num_rows
            present = set(batch.schema.names)
            found = summarize(
                batch, [n for n in feature_names if n in present], like=reference.features
            )
            features = found if features is None else features.merge(found)
            outputs = [name for name in output_names if name in present]
            if reference.predictions is not None and outputs:
                found = summarize(batch, outputs, like=reference.predictions)
                predictions = found if predictions is None else predictions.merge(found)
        return features, predictions, rows

    def _batches(
        self, result: WindowResult, version: ModelVersion, wanted: Sequence[str]
    ) -> Iterator[pa.RecordBatch]:
        """Record batches of the version's logged rows in the window, with the columns
        ``wanted`` (inputs stored as ``input.<name>`` come back under their own name)."""
        from loopml.serving.feedback import prediction_files, scan

        files = prediction_files(self._ws, version.name, result.start, result.end, version.version)
        stored = [*wanted, *(f"input.{name}" for name in wanted)]
        batches = scan(self._ws, files, to_ms(result.start), to_ms(result.end), stored, _BATCH_ROWS)
        for batch in batches:
            present = set(batch.schema.names)
            columns = {
                name: (f"input.{name}" if f"input.{name}" in present else name)
                for name in wanted
                if name in present or f"input.{name}" in present
            }
            yield batch.select(list(columns.values())).rename_columns(list(columns))

    def _performance(
        self,
        result: WindowResult,
        min_coverage: float,
        detectors: Sequence[ChangeDetector] | None,
    ) -> None:
        from loopml.monitoring.detectors import detect_concept_drift
        from loopml.monitoring.performance import performance_from_log

        # One window of every row (a row-count window larger than any log), then given
        # this window's bounds: performance's own time windows align to the epoch.
        report = performance_from_log(
            self._ws,
            result.model,
            result.start,
            result.end,
            result.version,
            window=_ALL_ROWS,
            min_coverage=min_coverage,
        )
        for window in report.windows:
            window.start, window.end = result.start, result.end
        if report.windows:
            result.performance = report
        if any(window.labelled for window in report.windows):
            labelled = self._ws.predictions_with_feedback(result.model, result.start, result.end)
            labelled = labelled[labelled["version"] == result.version]
            result.concept = [
                replace(point, start=result.start, end=result.end)
                for point in detect_concept_drift(
                    labelled, model=result.model, version=result.version, detectors=detectors
                )
            ]

    # -- commands ---------------------------------------------------------------------
    def check(
        self,
        ref: Any,
        window: str | dt.timedelta = "1d",
        *,
        last: int | None = None,
        rules: Any = None,
        **options: Any,
    ) -> WindowResult:
        """Evaluates the trailing window (the last ``window`` up to now, or with ``last``
        the window holding the version's last ``last`` logged predictions) and judges
        the rules: what ``loopml monitor check`` prints and exits on."""
        end = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=1)
        start = end - parse_window(window)
        if last is not None:
            start, end = self.last_rows(ref, last)
        return self.evaluate(ref, start, end, rules=rules, **options)

    def last_rows(self, ref: Any, rows: int) -> tuple[dt.datetime, dt.datetime]:
        """The window ``[start, end)`` holding the version's last ``rows`` logged
        predictions (fewer when fewer were logged), read from the newest files' times."""
        import numpy as np
        import pyarrow.parquet as pq

        from loopml.serving.feedback import prediction_files

        if rows < 1:
            raise ValidationError(f"last must be at least 1 row, got {rows}.")
        version = self._ws.registry.get(ref)
        files = prediction_files(self._ws, version.name, version=version.version)
        if not files:
            raise NotFoundError(
                f"{version.uri} has no logged predictions yet; serve it (loopml serve) or "
                "score a batch with loopml predict, then check again."
            )
        newest_first = sorted(files, key=lambda f: f.max_time, reverse=True)
        chosen, total = [], 0
        for file in newest_first:
            chosen.append(file)
            total += file.rows
            if total >= rows:
                break
        # Rows newer than the cut can sit in files that end later than it: read those too.
        cut = min(file.min_time for file in chosen)
        chosen += [f for f in newest_first[len(chosen) :] if f.max_time >= cut]
        times = np.sort(
            np.concatenate(
                [
                    pq.read_table(
                        self._ws.artifacts.object_path(file.sha256),
                        columns=["time"],
                        filesystem=_local_or_remote(self._ws),
                    )["time"]
                    .cast("int64")
                    .to_numpy()
                    for file in chosen
                ]
            )
        )
        newest = times[-rows:]
        start = _time(int(newest[0]) // 1000)
        end = _time(int(newest[-1]) // 1000 + 1)
        return start, end

    def run(
        self,
        ref: Any,
        window: str | dt.timedelta = "1h",
        *,
        rules: Any = None,
        name: str | None = None,
        max_windows: int | None = None,
        catch_up: int = 24,
        poll_seconds: float = 5.0,
        owner: str | None = None,
        on_window: Callable[[WindowResult], None] | None = None,
        stop: Callable[[], bool] | None = None,
        clock: Callable[[], dt.datetime] | None = None,
        sleep: Callable[[float], object] = time.sleep,
        **options: Any,
    ) -> int:
        """Evaluates aligned windows of ``ref`` as they close, until ``stop()`` says so
        or ``max_windows`` were evaluated; returns how many were.

        Windows are aligned to the epoch (``1h``: each clock hour). The cursor ``name``
        (default ``<model>:<window>``) records the end of the last finished window in the
        metadata store, under a lease: a restarted monitor resumes after it, and a
        second monitor on the same cursor waits. A first run starts ``catch_up`` windows
        back; after a long outage at most ``catch_up`` missed windows are evaluated (the
        newest ones), older ones are skipped with a log line.
        """
        length = parse_window(window)
        now = clock or (lambda: dt.datetime.now(dt.UTC))
        target = self._ws.registry.get(ref)
        cursor_name = name or f"{target.name}:{_duration_text(length)}"
        me = owner or f"{socket.gethostname()}:{os.getpid()}"
        lease_ms = int(max(60.0, 3 * poll_seconds, 2 * length.total_seconds()) * 1000)
        from loopml.store.repositories.monitoring import MonitorRepository

        repo = MonitorRepository(self._ws.db)
        done = 0
        try:
            while not (stop and stop()) and (max_windows is None or done < max_windows):
                if not repo.claim(cursor_name, me, lease_ms):
                    sleep(poll_seconds)
                    continue
                cursor = repo.cursor(cursor_name)
                detectors = _detectors(cursor.state if cursor is not None else {})
                closed = _align(utc(now()), length)
                position = (
                    _time(cursor.position)
                    if cursor is not None and cursor.position is not None
                    else closed - catch_up * length
                )
                due = int((closed - position) / length)
                if due > catch_up:
                    _logger.warning(
                        "monitor %s: skipping %d windows missed beyond catch_up=%d",
                        cursor_name, due - catch_up, catch_up,
                    )  # fmt: skip
                    position = closed - catch_up * length
                while position + length <= closed and (max_windows is None or done < max_windows):
                    result = self.evaluate(
                        ref, position, position + length, rules=rules, detectors=detectors,
                        **options,
                    )  # fmt: skip
                    position += length
                    state = {"window": str(length), "detectors": _pickled(detectors)}
                    if not repo.advance(cursor_name, me, to_ms(position), state):
                        _logger.warning("monitor %s: lost its lease; stopping", cursor_name)
                        return done
                    done += 1
                    if on_window is not None:
                        on_window(result)
                if max_windows is not None and done >= max_windows:
                    break
                sleep(poll_seconds)
        finally:
            repo.release(cursor_name, me)
        return done

    def report(
        self,
        ref: Any,
        window: str | dt.timedelta = "1d",
        out: str | os.PathLike[str] = "monitoring-report.html",
        *,
        history: str | dt.timedelta = "30d",
    ) -> Path:
        """Writes the self-contained HTML report of the trailing ``window`` (drift of its
        traffic against the reference) with the series of the last ``history``."""
        from loopml.monitoring.report import render_report, write_report

        version = self._ws.registry.get(ref)
        end = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=1)
        start = end - parse_window(window)
        result = self.evaluate(version, start, end, record_points=False)
        since = end - parse_window(history)
        html = render_report(
            title=f"{version.name} v{version.version}: monitoring",
            model=version.name,
            version=version.version,
            window=(start, end),
            drift=result.drift,
            series=self.series(version.name, since=since),
            alerts=[a for a in self.alerts(version.name) if a.fired_at >= to_ms(since)],
        )
        return write_report(Path(out), html)


def _local_or_remote(ws: Workspace) -> Any:
    from loopml.serving.feedback import _arrow_filesystem

    return _arrow_filesystem(ws)


def _detectors(state: Mapping[str, Any]) -> list[ChangeDetector]:
    """The detectors a cursor carries (fresh ones when it has none or they do not load,
    say after a river upgrade: a detector restarts rather than the monitor failing)."""
    from loopml.monitoring.detectors import METHODS, ChangeDetector

    saved = state.get("detectors")
    if saved:
        try:
            loaded = pickle.loads(base64.b64decode(saved))
            if isinstance(loaded, list) and all(isinstance(d, ChangeDetector) for d in loaded):
                return loaded
        except Exception:
            _logger.warning("monitor: saved concept-drift detectors do not load; starting anew")
    return [ChangeDetector(method) for method in METHODS]


def _pickled(detectors: Sequence[ChangeDetector]) -> str:
    return base64.b64encode(pickle.dumps(list(detectors))).decode("ascii")


def parse_window(value: str | dt.timedelta) -> dt.timedelta:
    """``30s``, ``5m``, ``1h``, ``1d``, ``1w`` or a timedelta, as a positive timedelta."""
    if isinstance(value, dt.timedelta):
        length = value
    else:
        text = str(value).strip().lower()
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
        try:
            length = dt.timedelta(seconds=float(text[:-1]) * units[text[-1]])
        except (KeyError, ValueError, IndexError):
            raise ValidationError(
                f"A window is a number and a unit (s, m, h, d, w), e.g. 1h or 7d; got {value!r}."
            ) from None
    if length <= dt.timedelta(0):
        raise ValidationError(f"A window must be longer than zero, got {value!r}.")
    return length


def _duration_text(length: dt.timedelta) -> str:
    seconds = int(length.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _align(moment: dt.datetime, length: dt.timedelta) -> dt.datetime:
    """The end of the last window of ``length`` (aligned to the epoch) closed by ``moment``."""
    step = int(length.total_seconds() * 1000)
    return _time(to_ms(moment) // step * step)


def _time(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
