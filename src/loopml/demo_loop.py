"""The second half of ``loopml demo``: the closed loop, from served traffic to a
retrained, canaried, promoted version and back.

``loopml.demo`` trains, tunes, gates and registers on ``breast-cancer@1`` (the history
part of scikit-learn's breast cancer data). This module serves ``@production`` on a
real HTTP server and plays the rest of the data as live traffic:

1. the *live* rows the model never saw, split in two halves: half ``a`` is sent as it
   comes and then with :data:`DEMO_SHIFT` applied (a scanner recalibrated so sizes read
   40 % larger); every answer's true label comes back later as feedback;
2. monitoring judges both windows against the version's reference profile; on the
   shifted one the ``input-drift`` rule fires, and its action runs the
   continuous-training pipeline of the workspace's ``loopml.yaml`` with the alert as the
   reason: ingest ``breast-cancer@2`` (the history plus the labelled shifted traffic),
   search, evaluate, gate against the champion, register, canary through the running
   server while traffic flows, promote;
3. half ``b``, shifted, goes to the new version, labelled likewise, and monitoring
   judges it: the rows no model trained on say whether retraining helped.

Nothing is scripted: every figure shown is read back from the workspace.
"""

from __future__ import annotations

import contextlib
import html
import io
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.demo import DEMO_DATASET, DEMO_MODEL, DEMO_POLICY, DEMO_SPLIT, demo_frames

if TYPE_CHECKING:
    import pandas as pd

    from loopml.monitoring import WindowResult
    from loopml.pipelines import PipelineRun
    from loopml.registry import AliasEvent, Lineage
    from loopml.store.repositories.monitoring import AlertRecord
    from loopml.workspace import Workspace

__all__ = [
    "DEMO_RULES",
    "DEMO_SHIFT",
    "Burst",
    "ClosedLoop",
    "DemoServer",
    "accuracy",
    "run_closed_loop",
    "write_loop_report",
    "write_project",
]

DEMO_SHIFT = {"mean radius": 1.4, "mean perimeter": 1.4, "mean area": 1.4}
"""The shift injected into the traffic: a scanner recalibrated so sizes read 40 % larger."""

DEMO_RULES: dict[str, Any] = {
    "rules": [
        {"name": "input-drift", "condition": "drift.share > 0.05", "severity": "warning"},
        {"name": "accuracy", "condition": "performance.accuracy < 0.8", "severity": "critical"},
    ]
}
"""The alert rules the demo monitors with; :func:`run_closed_loop` adds the retraining
action to ``input-drift``."""

_MALFORMED: list[dict[str, Any]] = [{"records": [{"mean radius": "large"}]}, {"records": []}]


@dataclass
class Burst:
    """One window of traffic: when it ran, what was answered, and by which versions."""

    start: datetime
    end: datetime
    sent: int = 0
    ok: int = 0
    refused: int = 0  # malformed requests answered 422, as they should be
    latencies_ms: list[float] = field(default_factory=list)
    versions: dict[int, int] = field(default_factory=dict)  # version -> answers
    labels: list[tuple[str, int]] = field(default_factory=list)  # (request id, truth)

    @property
    def window(self) -> tuple[datetime, datetime]:
        """The window monitoring reads: a millisecond each side (the log keeps ms)."""
        return self.start - timedelta(milliseconds=1), self.end + timedelta(milliseconds=1)

    def percentile(self, q: float) -> float:
        import numpy as np

        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else 0.0


class DemoServer:
    """``models:/breast-cancer-classifier@production`` served by a real uvicorn server in
    a thread on a free 127.0.0.1 port, following the alias (hot swap, requested
    canaries) every ``poll_seconds``."""

    def __init__(self, workspace: Workspace, poll_seconds: float = 0.5) -> None:
        import uvicorn

        from loopml.serving import create_app

        self.workspace = workspace
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        self.url = f"http://127.0.0.1:{port}"
        self._app = create_app(
            workspace, f"models:/{DEMO_MODEL}@production", poll_seconds=poll_seconds
        )
        config = uvicorn.Config(self._app, host="127.0.0.1", port=port, log_level="error")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="loopml-demo-server")

    def __enter__(self) -> DemoServer:
        import httpx

        self._thread.start()
        with httpx.Client(base_url=self.url, timeout=10) as client:
            for _ in range(400):  # ready once loaded and warmed up
                with contextlib.suppress(httpx.TransportError):
                    if client.get("/health/ready").status_code == 200:
                        return self
                time.sleep(0.05)
        self.__exit__()
        raise RuntimeError(f"The demo server at {self.url} did not become ready in 20 s.")

    def __exit__(self, *_: object) -> None:
        self._server.should_exit = True  # drains the prediction log
        self._thread.join(timeout=30)

    def send(
        self, frame: pd.DataFrame, shift: dict[str, float] | None = None, malformed: bool = False
    ) -> Burst:
        """Sends each row of ``frame`` (features and ``target``) as one request, with
        ``shift`` applied, then the malformed requests when asked; records the truth of
        every answered request as delayed feedback."""
        import httpx

        burst = Burst(datetime.now(UTC), datetime.now(UTC))
        with httpx.Client(base_url=self.url, timeout=10) as client:
            for record, label in _records(frame, shift):
                self._post(client, record, label, burst)
            if malformed:
                for bad in _MALFORMED:
                    answer = client.post(f"/models/{DEMO_MODEL}/predict", json=bad)
                    burst.refused += answer.status_code == 422
        burst.end = datetime.now(UTC)
        self.label(burst)
        return burst

    @contextlib.contextmanager
    def pump(self, frame: pd.DataFrame, shift: dict[str, float] | None) -> Iterator[Burst]:
        """Sends ``frame``'s rows round and round from a background thread until the
        block ends: the traffic a canary is judged on while the pipeline waits."""
        import httpx

        burst = Burst(datetime.now(UTC), datetime.now(UTC))
        stop = threading.Event()
        records = _records(frame, shift)

        def loop() -> None:
            with httpx.Client(base_url=self.url, timeout=10) as client:
                while not stop.is_set():
                    for record, label in records:
                        if stop.is_set():
                            break
                        self._post(client, record, label, burst)

        thread = threading.Thread(target=loop, name="loopml-demo-traffic", daemon=True)
        thread.start()
        try:
            yield burst
        finally:
            stop.set()
            thread.join(timeout=30)
            burst.end = datetime.now(UTC)
            self.label(burst)

    def label(self, burst: Burst) -> None:
        """The outcomes become known later: labels joined to the log by request id
        (written once the server's log has its batch on disk, as monitoring reads it)."""
        import pandas as pd

        self._app.state.serving.prediction_log.flush()
        if burst.labels:
            frame = pd.DataFrame(burst.labels, columns=["request_id", "label"])
            self.workspace.log_feedback_frame(frame.assign(model=DEMO_MODEL))

    @staticmethod
    def _post(client: Any, record: dict[str, Any], label: int, burst: Burst) -> None:
        started = time.perf_counter()
        answer = client.post(f"/models/{DEMO_MODEL}/predict", json={"records": [record]})
        burst.latencies_ms.append((time.perf_counter() - started) * 1000)
        burst.sent += 1
        if answer.status_code == 200:
            body = answer.json()
            burst.ok += 1
            version = int(body.get("version") or 0)
            burst.versions[version] = burst.versions.get(version, 0) + 1
            burst.labels.append((body["request_id"], label))


def _records(
    frame: pd.DataFrame, shift: dict[str, float] | None
) -> list[tuple[dict[str, Any], int]]:
    rows = frame.drop(columns="target")
    if shift:
        rows = rows.assign(**{name: rows[name] * factor for name, factor in shift.items()})
    records: list[dict[str, Any]] = rows.to_dict(orient="records")  # type: ignore[assignment]
    return list(zip(records, frame["target"].astype(int), strict=True))


def write_project(
    home: Path, incoming: Path, policy: dict[str, Any] | None = None, trials: int = 6
) -> Path:
    """The workspace's ``loopml.yaml``: retrain on every Parquet file in ``incoming``
    with a small search (``trials``), gate against production with ``policy`` (the
    demo's by default), canary in two quick steps on the running server, promote."""
    import yaml

    project = {
        "model": DEMO_MODEL,
        "data": {
            "name": DEMO_DATASET,
            "source": str(incoming / "*.parquet"),
            # The recalibrated scanner reads sizes past the contract's maximum: keep the
            # rows, record the problems (the version's validation report lists them).
            "on_invalid": "warn",
            "split": {k: DEMO_SPLIT[k] for k in ("by", "column", "fractions", "seed")},
        },
        "train": {
            "target": "target",
            "estimator": "sklearn.linear_model.LogisticRegression",
            "params": {"max_iter": 5000},
            "experiment": "demo-ct",
            "search": {
                "space": {"C": {"low": 0.001, "high": 100.0, "log": True}},
                "trials": trials,
                "metric": "roc_auc",
            },
        },
        "gate": {"policy": DEMO_POLICY if policy is None else policy},
        "deploy": {
            "alias": "production",
            # Seconds, not the minutes a real release would take: it is a demo.
            "canary": {
                "steps": [50, 100],
                "interval": "2s",
                "min_requests": 20,
                # Retrained for the shift, the canary is meant to answer differently
                # from stable on shifted traffic: judge errors and latency, not agreement.
                "max_prediction_psi": 5.0,
                # The p99 of the ~100 requests a 2 s step gets on a busy machine is close
                # to their maximum: scheduling noise doubled it in CI runs (9.5 -> 19.2 ms),
                # so a canary up to 25 ms slower than stable passes whatever the ratio.
                "max_latency_ratio": 1.5,
                "latency_slack_ms": 25,
                "check_every": "0.5s",
                "pickup_timeout": "30s",
                "timeout": "2m",
            },
        },
    }
    path = home / "loopml.yaml"
    header = "# Written by `loopml demo`: the continuous-training pipeline of this workspace.\n"
    path.write_text(header + yaml.safe_dump(project, sort_keys=False))
    return path


@dataclass(frozen=True)
class ClosedLoop:
    """What :func:`run_closed_loop` saw, each part read back from the workspace."""

    served_version: int
    stable: Burst  # half a, as it came (plus the malformed requests)
    shifted: Burst  # half a, shifted
    canary_traffic: Burst  # while the pipeline ran
    after: Burst  # half b, shifted, to the new version
    watched: dict[str, WindowResult]  # "stable", "shifted", "after"
    alert: AlertRecord | None
    pipeline: PipelineRun | None
    new_version: int | None
    lineage: Lineage | None
    events: list[AliasEvent]
    project: Path
    logged_rows: int
    labelled: int

    @property
    def retrained(self) -> bool:
        return self.pipeline is not None and self.pipeline.status == "SUCCEEDED"


def run_closed_loop(workspace: Workspace, server: DemoServer, live: pd.DataFrame) -> ClosedLoop:
    """Plays ``live`` (unseen rows with ``target``) through ``server`` and closes the
    loop as the module docstring tells; needs ``@production`` served and ``loopml.yaml``
    written by :func:`write_project`. Raises nothing the loop itself decides: a gate or
    canary that stops the pipeline shows as a FAILED pipeline run."""
    import pandas as pd

    from loopml.pipelines import get_run

    home = workspace.settings.home
    half_a, half_b = live.iloc[: len(live) // 2], live.iloc[len(live) // 2 :]
    served = workspace.registry.get(f"models:/{DEMO_MODEL}@production").version
    ref = f"models:/{DEMO_MODEL}/{served}"
    started = datetime.now(UTC)

    stable = server.send(half_a, malformed=True)
    shifted = server.send(half_a, shift=DEMO_SHIFT)
    watched = {"stable": workspace.monitor.evaluate(ref, *stable.window, rules=DEMO_RULES)}

    # New data arrives: the shifted traffic with its labels, beside the history.
    incoming = home / "incoming"
    incoming.mkdir(exist_ok=True)
    history, _ = demo_frames()
    history.to_parquet(incoming / "part-1.parquet", index=False)
    logged = workspace.predictions_with_feedback(DEMO_MODEL, *shifted.window)
    fresh = logged[list(history.columns.drop("target"))].assign(
        target=pd.to_numeric(logged["label"]).astype(history["target"].dtype)
    )
    fresh.to_parquet(incoming / "part-2.parquet", index=False)
    project = home / "loopml.yaml"

    rules = {"rules": [dict(rule) for rule in DEMO_RULES["rules"]]}
    rules["rules"][0]["action"] = {"pipeline": f"ct:{project}", "max_runs": 1, "per": "1d"}
    with server.pump(half_b, DEMO_SHIFT) as canary_traffic:  # what the canary is judged on
        watched["shifted"] = workspace.monitor.evaluate(ref, *shifted.window, rules=rules)
    fired = [c for c in watched["shifted"].firing if c.rule == "input-drift"]
    alert = fired[0].alert if fired else None
    action = (fired[0].action or {}) if fired else {}
    pipeline = get_run(workspace, action["run_id"]) if action.get("run_id") else None

    holder = workspace.registry.get(f"models:/{DEMO_MODEL}@production").version
    new_version = holder if holder != served else None
    after = server.send(half_b, shift=DEMO_SHIFT)
    now_ref = f"models:/{DEMO_MODEL}/{holder}"
    watched["after"] = workspace.monitor.evaluate(now_ref, *after.window, rules=DEMO_RULES)
    lineage = workspace.registry.lineage(now_ref) if new_version is not None else None
    events = [e for e in workspace.registry.history(DEMO_MODEL) if e.time >= started]
    return ClosedLoop(
        served,
        stable,
        shifted,
        canary_traffic,
        after,
        watched,
        alert,
        pipeline,
        new_version,
        lineage,
        events,
        project,
        len(workspace.predictions(DEMO_MODEL)),
        len(workspace.feedback(DEMO_MODEL)),
    )


def accuracy(result: WindowResult) -> float | None:
    """The window's accuracy on its labelled predictions, if any were labelled."""
    if result.performance is None or not result.performance.windows:
        return None
    value = result.performance.windows[0].metrics.get("accuracy")
    return None if value is None else float(value)


def write_loop_report(workspace: Workspace, loop: ClosedLoop, path: Path) -> Path:
    """A self-contained HTML summary of the loop: the timeline with the reason of every
    transition, drift and accuracy per window (Plotly, offline), the pipeline's steps
    and the new version's lineage."""
    from loopml.monitoring._report_html import layout, page

    windows = [
        ("as it came", loop.stable, loop.watched["stable"], loop.served_version),
        ("shifted", loop.shifted, loop.watched["shifted"], loop.served_version),
        ("shifted, after", loop.after, loop.watched["after"], loop.new_version),
    ]
    labels = [f"{name} (v{version})" for name, _, _, version in windows]
    shares = [w.drift.share if w.drift is not None else None for _, _, w, _ in windows]
    accuracies = [accuracy(w) for _, _, w, _ in windows]
    figure = {
        "id": "windows",
        "data": [
            {"type": "bar", "name": "drifted share of features", "x": labels, "y": shares},
            {"type": "bar", "name": "accuracy (delayed labels)", "x": labels, "y": accuracies},
        ],
        "layout": layout(
            360, barmode="group", showlegend=True, yaxis={"range": [0, 1], "tickformat": ".0%"}
        ),
    }
    rows = "".join(
        f"<tr><td>{html.escape(t)}</td><td>{html.escape(what)}</td><td>{html.escape(why)}</td></tr>"
        for t, what, why in timeline(loop)
    )
    parts = [
        "<h1>loopml demo: the closed loop</h1>",
        f"<p>workspace {html.escape(str(workspace.settings.home))}</p>",
        "<h2>What happened, and why</h2>",
        f"<table><tr><th>when (UTC)</th><th>what</th><th>why</th></tr>{rows}</table>",
        "<h2>Drift and accuracy per window of traffic</h2><div id='windows'></div>",
    ]
    if loop.pipeline is not None:
        run = loop.pipeline
        parts.append(
            f"<h2>Continuous-training run {html.escape(run.run_id[:12])} "
            f"({html.escape(run.status)})</h2><table><tr><th>step</th><th>status</th>"
            f"<th>seconds</th><th>error</th></tr>{''.join(map(_step_row, run.steps))}</table>"
        )
    if loop.lineage is not None:
        from rich.console import Console

        console = Console(record=True, width=110, file=io.StringIO())
        console.print(loop.lineage.to_tree())
        parts.append(f"<h2>Lineage of version {loop.new_version}</h2>")
        parts.append(f"<pre>{html.escape(console.export_text())}</pre>")
    body = "\n".join(parts)
    path.write_text(page("loopml demo: the closed loop", body, [figure]))
    return path


def timeline(loop: ClosedLoop) -> list[tuple[str, str, str]]:
    """(when, what, why) of each transition of the loop, oldest first."""
    shift = ", ".join(f"{name} x{factor}" for name, factor in DEMO_SHIFT.items())
    after = max(loop.after.versions, default=0)
    items = [
        (loop.stable.start, f"{loop.stable.ok} requests answered by v{loop.served_version}",
         "live rows, as they came"),
        (loop.shifted.start, f"{loop.shifted.ok} shifted requests answered", shift),
        (loop.after.start, f"{loop.after.ok} shifted requests answered by v{after}",
         "live rows no model trained on, after the loop"),
    ]  # fmt: skip
    if loop.alert is not None:
        alert = loop.alert
        items.append(
            (_time(alert.fired_at), f"alert #{alert.alert_id} {alert.rule}", alert.message)
        )
    if loop.pipeline is not None:
        run = loop.pipeline
        items.append((_time(run.started_at), f"pipeline ct run {run.run_id[:8]}", run.reason or ""))
        for step in run.steps:
            if step.ended_at is not None:
                why = (step.error or "")[:200]
                items.append((_time(step.ended_at), f"step {step.step}: {step.status}", why))
    for event in loop.events:
        moved = f"{event.from_version} -> " if event.from_version else ""
        what = f"{event.action} @{event.alias}: {moved}{event.to_version}"
        items.append((event.time, what, event.reason or ""))
    items.sort(key=lambda item: item[0])
    return [(when.strftime("%H:%M:%S.%f")[:-3], what, why) for when, what, why in items]


def _step_row(step: Any) -> str:
    seconds = f"{step.seconds:.2f}" if step.seconds is not None else ""
    return (
        f"<tr><td>{html.escape(step.step)}</td><td>{html.escape(step.status)}</td>"
        f"<td>{seconds}</td><td>{html.escape((step.error or '')[:300])}</td></tr>"
    )


def _time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
