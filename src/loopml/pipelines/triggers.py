"""Triggers of pipelines, and what happens when anything (a schedule too) fires.

A trigger starts its ``target`` when something happens:

``dataset``
    a new version of a named dataset (polled by ``loopml scheduler``);
``alert``
    a monitoring alert fired for a model (and rule), polled likewise;
``manual``
    a call to :func:`fire` (``loopml trigger fire NAME``);
``action``
    an alert rule's ``action: {pipeline: <target>}``, run by monitoring itself as the
    alert fires (the kind is registered by ``loopml.monitoring.notify``).

Every firing is claimed in the metadata store before it runs (one row per trigger and
event, unique), so each event runs once whichever process sees it first; a rate limit
(``max_runs`` per ``per``) turns the extra firings into recorded ``suppressed`` ones.
Each run records why it started (schedule and occurrence, dataset version, alert id).

Targets: what ``loopml.pipelines.run_pipeline`` takes (``module:function``, a YAML
file, ``ct`` or ``ct:path/to/loopml.yaml`` for continuous training), or
``py:module:function``, a plain callable taking ``(ws, occurrence)``.

One module rather than two because checking, claiming and running a firing are shared
by every trigger kind and by :mod:`~loopml.pipelines.schedule`.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml._identity import current_user
from loopml._time import from_ms, to_ms
from loopml.errors import ConflictError, LoopmlError, NotFoundError, ValidationError
from loopml.store.repositories.schedules import FiringRecord, ScheduleRepository, TriggerRecord

if TYPE_CHECKING:
    from loopml.store.repositories.monitoring import AlertRecord
    from loopml.workspace import Workspace

__all__ = [
    "TRIGGER_KINDS",
    "Firing",
    "Occurrence",
    "Trigger",
    "add_trigger",
    "check_params",
    "check_rate",
    "check_target",
    "claim_and_run",
    "describe",
    "execute",
    "fire",
    "firings",
    "get_trigger",
    "list_triggers",
    "parse_duration",
    "poll_triggers",
    "remove_trigger",
    "run_from_alert",
]

logger = logging.getLogger("loopml.pipelines")

TRIGGER_KINDS = ("dataset", "alert", "manual", "action")
DEFAULT_LEASE_S = 60.0
_TARGET_EXAMPLE = (
    "'py:mypackage.jobs:nightly' (a function taking (ws, occurrence)), "
    "'mypackage.pipelines:retrain' or 'flows.py:retrain' (a pipeline), "
    "'pipelines/retrain.yaml' or 'ct' (the continuous training of ./loopml.yaml)"
)


@dataclass(frozen=True)
class Occurrence:
    """Why a target runs: what a ``py:`` target is called with as ``(ws, occurrence)``."""

    trigger: str  # the schedule's or trigger's name
    kind: str  # schedule | dataset | alert | manual | action
    event: str  # "2026-11-23T03:00:00Z", "dataset:churn@5", "alert:17", "manual:<id>"
    time: dt.datetime  # a schedule's occurrence time, else when it fired (UTC)
    params: dict[str, Any]
    reason: dict[str, Any]
    firing_id: int = 0


@dataclass(frozen=True)
class Firing:
    """One firing of a schedule or trigger and how it ended."""

    firing_id: int
    trigger: str
    event: str
    status: str  # running | succeeded | failed | suppressed
    reason: dict[str, Any]
    run_id: str | None
    error: str | None
    created_at: dt.datetime
    finished_at: dt.datetime | None
    occurrence: dt.datetime | None = None
    result: Any = field(default=None, compare=False, repr=False)  # what the target returned


@dataclass(frozen=True)
class Trigger:
    """A stored trigger of a pipeline (see the module docstring for the kinds)."""

    name: str
    kind: str
    target: str
    params: dict[str, Any]
    enabled: bool
    source: str | None  # the dataset (dataset), the model (alert; None: any model)
    rule: str | None  # the alert rule (None: any rule)
    data_param: str | None  # the param that receives the new dataset version's ref
    max_runs: int | None
    period: dt.timedelta | None
    position: int | None  # the last dataset version or alert id seen
    trigger_id: int = field(default=0, repr=False, compare=False)


# -- checks ---------------------------------------------------------------------------
def check_target(target: Any, where: str = "The trigger") -> str:
    """Checks that ``target`` names something that exists: a ``py:`` callable or a
    ``module:attribute`` must import, a YAML file must be there."""
    if not isinstance(target, str) or not target.strip():
        raise ValidationError(f"{where}: `target` must name what to run, e.g. {_TARGET_EXAMPLE}.")
    from loopml.pipelines.ct import ct_project
    from loopml.pipelines.project import load_project

    project = ct_project(target)
    if project is not None:  # the continuous-training pipeline of a project file
        try:
            load_project(project)
        except (ValidationError, NotFoundError) as error:
            raise ValidationError(f"{where}: `target` {target!r}: {error}") from None
        return target
    if target.startswith("py:"):
        function = _import(target[3:], where, target)
        if not callable(function):
            raise ValidationError(
                f"{where}: `target` {target!r} is a {type(function).__name__}, not a callable "
                "taking (ws, occurrence)."
            )
        return target
    if target.endswith((".yaml", ".yml")):
        if not Path(target).is_file():
            raise ValidationError(
                f"{where}: `target` {target!r} is no YAML file (looked in {Path.cwd()}); give "
                "its path, absolute or from where the scheduler runs."
            )
        return target
    module, colon, _ = target.rpartition(":")
    if colon and module.endswith(".py"):  # a pipeline function in a Python file
        if not Path(module).is_file():
            raise ValidationError(
                f"{where}: `target` {target!r} names {module}, which is not a file (looked "
                f"in {Path.cwd()})."
            )
        return target
    if ":" in target:
        _import(target, where, target)
        return target
    raise ValidationError(
        f"{where}: `target` {target!r} is neither module:function, file.py:function nor a "
        f"YAML file; write {_TARGET_EXAMPLE}."
    )


def _import(reference: str, where: str, target: str) -> Any:
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise ValidationError(
            f"{where}: `target` {target!r} must be module:function, e.g. {_TARGET_EXAMPLE}."
        )
    try:
        found: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except Exception as error:  # any failure to import is the same mistake to the user
        raise ValidationError(
            f"{where}: `target` {target!r} cannot be imported ({type(error).__name__}: "
            f"{error}); check the module is on PYTHONPATH of the scheduler and the name is "
            "spelled right."
        ) from None
    return found


def check_params(params: Any, where: str = "The trigger") -> dict[str, Any]:
    """``params`` as a dict of JSON values (what is stored and passed to each run)."""
    if params is None:
        return {}
    if not isinstance(params, Mapping) or not all(isinstance(key, str) for key in params):
        raise ValidationError(
            f"{where}: `params` must be a mapping of name to value, e.g. {{'n_trials': 20}}."
        )
    try:
        checked: dict[str, Any] = json.loads(json.dumps(dict(params)))
    except (TypeError, ValueError) as error:
        raise ValidationError(
            f"{where}: `params` must hold JSON values (numbers, text, lists, mappings): {error}."
        ) from None
    return checked


def parse_duration(value: str | dt.timedelta, where: str = "The trigger") -> dt.timedelta:
    """``30s``, ``5m``, ``1h``, ``1d``, ``1w`` or a timedelta, as a positive timedelta."""
    from loopml.monitoring.monitor import parse_window

    try:
        return parse_window(value)
    except ValidationError as error:
        raise ValidationError(f"{where}: `per`: {error}") from None


def check_rate(
    max_runs: Any, per: str | dt.timedelta | None, where: str = "The trigger"
) -> int | None:
    """The rate limit's period in ms (None: no limit); ``per`` defaults to an hour."""
    if max_runs is None:
        if per is not None:
            raise ValidationError(
                f"{where}: `per` needs `max_runs`, e.g. max_runs=3, per='1d' (3 a day at most)."
            )
        return None
    if isinstance(max_runs, bool) or not isinstance(max_runs, int) or max_runs < 1:
        raise ValidationError(
            f"{where}: `max_runs` must be a whole number 1 or more, e.g. 3; got {max_runs!r}."
        )
    period = parse_duration(per if per is not None else "1h", where)
    return int(period.total_seconds() * 1000)


# -- stored triggers ------------------------------------------------------------------
def add_trigger(
    ws: Workspace,
    name: str,
    target: str,
    *,
    on: str,
    dataset: str | None = None,
    model: str | None = None,
    rule: str | None = None,
    params: Mapping[str, Any] | None = None,
    data_param: str | None = None,
    max_runs: int | None = None,
    per: str | dt.timedelta | None = None,
    enabled: bool = True,
    replace: bool = False,
) -> Trigger:
    """Stores a trigger that runs ``target`` ``on`` an event.

    Args:
        ws: The workspace.
        name: A unique name among the workspace's schedules and triggers.
        target: What to run (see the module docstring).
        on: ``dataset`` (needs ``dataset``), ``alert`` (``model`` and ``rule`` narrow
            it; both None: any alert) or ``manual``.
        dataset: The dataset whose new versions fire the trigger. Versions already
            stored when the trigger is added do not.
        model: The model whose alerts fire it (None: any model).
        rule: The alert rule that fires it (None: any rule).
        params: Parameters passed to every run.
        data_param: For a dataset trigger, the param that receives the new version's
            reference (``churn@5``).
        max_runs: Rate limit: at most this many runs per ``per`` (default an hour);
            further firings are recorded as ``suppressed``.
        per: The rate limit's period (``1h``, ``1d``...).
        enabled: A disabled trigger is kept but never fires.
        replace: Update a trigger of the same name instead of refusing.
    """
    where = f"Trigger {name!r}"
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("A trigger needs a `name`, e.g. 'retrain-on-new-data'.")
    if on not in ("dataset", "alert", "manual"):
        raise ValidationError(
            f"{where}: `on` {on!r} is not a trigger kind; use 'dataset', 'alert' or 'manual' "
            "(cron schedules are added with add_schedule)."
        )
    if on == "dataset" and not dataset:
        raise ValidationError(f"{where}: a dataset trigger needs `dataset`, e.g. 'churn'.")
    if on != "dataset" and (dataset or data_param):
        raise ValidationError(f"{where}: `dataset` and `data_param` go with on='dataset' only.")
    if on != "alert" and (model or rule):
        raise ValidationError(f"{where}: `model` and `rule` go with on='alert' only.")
    check_target(target, where)
    checked = check_params(params, where)
    period_ms = check_rate(max_runs, per, where)
    position: int | None = None
    source = dataset if on == "dataset" else model
    if on == "dataset":
        assert dataset is not None
        position = max((v.version for v in _versions(ws, dataset)), default=0)
    elif on == "alert":
        position = _newest_alert_id(ws)
    record = ScheduleRepository(ws.db).add(
        name,
        {
            "kind": on, "target": target, "params": checked, "enabled": bool(enabled),
            "start_at": to_ms(_now()), "source": source, "rule": rule, "data_param": data_param,
            "position": position, "max_runs": max_runs, "period_ms": period_ms,
        },
        replace=replace,
    )  # fmt: skip
    return trigger_from_record(record)


def get_trigger(ws: Workspace, name: str) -> Trigger:
    return trigger_from_record(ScheduleRepository(ws.db).get(name))


def list_triggers(ws: Workspace) -> list[Trigger]:
    """Every trigger (not the schedules), by name."""
    found = ScheduleRepository(ws.db).triggers()
    return [trigger_from_record(record) for record in found if record.kind != "schedule"]


def remove_trigger(ws: Workspace, name: str) -> bool:
    """Deletes a trigger and its firing history; False when there was none."""
    return ScheduleRepository(ws.db).remove(name)


def firings(ws: Workspace, name: str | None = None, limit: int | None = 100) -> list[Firing]:
    """Firings of one schedule or trigger (or of all), newest first."""
    repository = ScheduleRepository(ws.db)
    names = {record.trigger_id: record.name for record in repository.triggers()}
    trigger_id = repository.get(name).trigger_id if name is not None else None
    found = repository.firings(trigger_id, limit=limit)
    return [firing_from_record(record, names.get(record.trigger_id, "?")) for record in found]


def trigger_from_record(record: TriggerRecord) -> Trigger:
    return Trigger(
        record.name, record.kind, record.target, dict(record.params), record.enabled,
        record.source, record.rule, record.data_param, record.max_runs,
        None if record.period_ms is None else dt.timedelta(milliseconds=record.period_ms),
        record.position, record.trigger_id,
    )  # fmt: skip


def firing_from_record(record: FiringRecord, trigger: str, result: Any = None) -> Firing:
    return Firing(
        record.firing_id, trigger, record.event, record.status, record.reason, record.run_id,
        record.error, from_ms(record.created_at),
        None if record.finished_at is None else from_ms(record.finished_at),
        None if record.occurrence is None else from_ms(record.occurrence), result,
    )  # fmt: skip


# -- firing ---------------------------------------------------------------------------
def claim_and_run(
    ws: Workspace,
    trigger: TriggerRecord,
    event: str,
    reason: Mapping[str, Any],
    *,
    now: dt.datetime,
    occurrence: dt.datetime | None = None,
    params: Mapping[str, Any] | None = None,
    owner: str | None = None,
    lease_seconds: float = DEFAULT_LEASE_S,
) -> Firing | None:
    """Claims ``event`` of ``trigger`` and, unless rate-limited, runs its target.

    Returns the firing (``succeeded``, ``failed`` or ``suppressed``), or None when
    another process claimed this event first.
    """
    repository = ScheduleRepository(ws.db)
    me = owner or default_owner()
    lease_ms = int(lease_seconds * 1000)
    full_reason = {"kind": trigger.kind, "trigger": trigger.name, **reason}
    record = repository.claim(
        trigger.trigger_id, event, reason=full_reason, owner=me, lease_ms=lease_ms,
        now=to_ms(now), occurrence=None if occurrence is None else to_ms(occurrence),
    )  # fmt: skip
    if record is None:
        return None
    if record.status == "suppressed":
        logger.info(
            "%s %s: %s suppressed by the rate limit (%s runs per %s)", trigger.kind,
            trigger.name, event, trigger.max_runs,
            dt.timedelta(milliseconds=trigger.period_ms or 0),
        )  # fmt: skip
        return firing_from_record(record, trigger.name)
    merged = {**trigger.params, **(params or {})}
    return execute(ws, trigger, record, params=merged, owner=me, lease_ms=lease_ms, now=now)


def execute(
    ws: Workspace,
    trigger: TriggerRecord,
    firing: FiringRecord,
    *,
    params: Mapping[str, Any],
    owner: str,
    lease_ms: int,
    now: dt.datetime,
) -> Firing:
    """Runs a claimed firing's target, heartbeating its lease, and records the end.

    A failure of the target is recorded on the firing (and logged), never raised: one
    broken pipeline must not stop the scheduler.
    """
    repository = ScheduleRepository(ws.db)
    occurrence = Occurrence(
        trigger.name, trigger.kind, firing.event,
        from_ms(firing.occurrence if firing.occurrence is not None else to_ms(now)),
        dict(params), dict(firing.reason), firing.firing_id,
    )  # fmt: skip
    status, run_id, error, result = "succeeded", None, None, None
    with _heartbeat(repository, firing.firing_id, owner, lease_ms):
        try:
            result = _run_target(ws, trigger.target, occurrence)
        except Exception as caught:  # recorded on the firing; the scheduler goes on
            status, error = "failed", f"{type(caught).__name__}: {caught}"
            logger.warning("%s %s: %s failed: %s", trigger.kind, trigger.name, firing.event, error)
        else:
            run_id, failure = _run_outcome(result)
            if failure is not None:
                status, error = "failed", failure
            elif str(getattr(result, "status", "")).upper() == "WAITING":
                status, error = "waiting", getattr(result, "error", None)  # e.g. approval
    finished = max(to_ms(_now()), to_ms(now))
    repository.finish(
        firing.firing_id, owner, status=status, now=finished, run_id=run_id, error=error
    )
    return firing_from_record(repository.firing(firing.firing_id), trigger.name, result)


def _run_target(ws: Workspace, target: str, occurrence: Occurrence) -> Any:
    if target.startswith("py:"):
        function = _import(target[3:], f"{occurrence.kind} {occurrence.trigger!r}", target)
        return function(ws, occurrence)
    from loopml.pipelines import run_pipeline

    return run_pipeline(
        ws, target, occurrence.params or None, reason=describe(occurrence.reason),
        trigger=_trigger_label(occurrence),
    )  # fmt: skip


def _trigger_label(occurrence: Occurrence) -> str:
    """What started a pipeline run, as the run records it: ``schedule:<name>@<time>``,
    ``dataset:<ref>``, ``alert:<id>`` or ``manual:<trigger>``."""
    reason = occurrence.reason
    if occurrence.kind == "schedule":
        label = f"schedule:{occurrence.trigger}@{occurrence.event}"
    elif occurrence.kind == "dataset":
        label = f"dataset:{reason.get('ref')}"
    elif occurrence.kind in ("alert", "action"):
        label = f"alert:{reason.get('alert_id')}"
    else:
        label = f"manual:{occurrence.trigger}"
    return label[:256]


def _run_outcome(result: Any) -> tuple[str | None, str | None]:
    """The run id of what a target returned (a pipeline run, a run id) and its failure."""
    if isinstance(result, str):
        return result[:64], None
    run_id = getattr(result, "run_id", None) or getattr(result, "id", None)
    status = str(getattr(result, "status", "") or "").lower()
    failure = None
    if status in ("failed", "killed", "error"):
        failure = str(getattr(result, "error", None) or f"the pipeline run ended {status}")
    return (None if run_id is None else str(run_id)[:64]), failure


def describe(reason: Mapping[str, Any]) -> str:
    """A one-line account of why a run started, for run records and logs."""
    kind = reason.get("kind")
    name = reason.get("trigger")
    if kind == "schedule":
        return f"schedule {name!r}, occurrence {reason.get('occurrence')}"
    if kind == "dataset":
        return f"trigger {name!r}: new dataset version {reason.get('ref')}"
    if kind in ("alert", "action"):
        # The message names the rule and the model already (monitoring writes it so).
        return f"alert #{reason.get('alert_id')} via trigger {name!r}: {reason.get('message')}"
    note = reason.get("note")
    return f"trigger {name!r}: manual call by {reason.get('by')}" + (f": {note}" if note else "")


@contextmanager
def _heartbeat(
    repository: ScheduleRepository, firing_id: int, owner: str, lease_ms: int
) -> Iterator[None]:
    """Renews the firing's lease every third of it while the block runs, so a runner
    that dies stops renewing and any scheduler can mark its firing failed."""
    stopped = threading.Event()

    def beat() -> None:
        while not stopped.wait(lease_ms / 3000):
            try:
                if not repository.heartbeat(firing_id, owner, lease_ms):
                    logger.warning(
                        "firing %d: lease lost (presumed dead; still running)", firing_id
                    )
            except Exception as error:  # a missed beat only shortens the lease
                logger.warning("firing %d: heartbeat failed: %s", firing_id, error)

    thread = threading.Thread(target=beat, name=f"loopml-firing-{firing_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopped.set()
        thread.join()


def fire(
    ws: Workspace,
    name: str,
    *,
    note: str | None = None,
    params: Mapping[str, Any] | None = None,
    event: str | None = None,
    clock: Callable[[], dt.datetime] | None = None,
) -> Firing:
    """Fires a trigger (or runs a schedule) now, by hand, within its rate limit.

    Args:
        ws: The workspace.
        name: The trigger's or schedule's name.
        note: Why, recorded with the run.
        params: Parameters for this run, over the trigger's own.
        event: An idempotency key: firing the same key twice runs once (default: new).
        clock: The current time (tests); the rate limit reads it.

    Raises:
        ConflictError: ``event`` was fired already.
    """
    trigger = ScheduleRepository(ws.db).get(name)
    if not trigger.enabled:
        raise ValidationError(f"{trigger.kind} {name!r} is disabled; enable it first.")
    key = f"manual:{event or uuid.uuid4().hex}"
    reason = {"kind": "manual", "by": current_user(), "note": note}
    now = clock() if clock is not None else _now()
    found = claim_and_run(ws, trigger, key, reason, now=now, params=check_params(params))
    if found is None:
        raise ConflictError(f"{name!r} was fired with event {event!r} already; use another key.")
    return found


def poll_triggers(
    ws: Workspace,
    *,
    now: dt.datetime | None = None,
    owner: str | None = None,
    lease_seconds: float = DEFAULT_LEASE_S,
    names: set[str] | None = None,
) -> list[Firing]:
    """Looks for new dataset versions and alerts, firing each matching enabled trigger
    once per event (oldest first); returns the firings this call made."""
    repository = ScheduleRepository(ws.db)
    done: list[Firing] = []
    at = now or _now()
    for trigger in repository.triggers():
        if not trigger.enabled or (names is not None and trigger.name not in names):
            continue
        if trigger.kind == "dataset":
            events = _dataset_events(ws, trigger)
        elif trigger.kind == "alert":
            events = _alert_events(ws, trigger)
        else:
            continue
        for position, event, reason, params in events:
            found = claim_and_run(
                ws, trigger, event, reason, now=at, params=params, owner=owner,
                lease_seconds=lease_seconds,
            )  # fmt: skip
            repository.advance(trigger.trigger_id, position)
            if found is not None:
                done.append(found)
    return done


_Event = tuple[int, str, dict[str, Any], dict[str, Any]]  # position, event, reason, params


def _dataset_events(ws: Workspace, trigger: TriggerRecord) -> list[_Event]:
    name = trigger.source or ""
    events = []
    for version in _versions(ws, name):
        if version.version <= (trigger.position or 0):
            continue
        reason = {"dataset": name, "version": version.version, "ref": version.ref,
                  "content_hash": version.content_hash}  # fmt: skip
        params = {trigger.data_param: version.ref} if trigger.data_param else {}
        events.append((version.version, f"dataset:{version.ref}", reason, params))
    return events


def _alert_events(ws: Workspace, trigger: TriggerRecord) -> list[_Event]:
    from loopml.store.repositories.monitoring import MonitorRepository

    found = MonitorRepository(ws.db).alerts(model=trigger.source, rule=trigger.rule, limit=500)
    fresh = sorted(
        (alert for alert in found if alert.alert_id > (trigger.position or 0)),
        key=lambda alert: alert.alert_id,
    )
    return [(a.alert_id, f"alert:{a.alert_id}", _alert_reason(a), {}) for a in fresh]


def _alert_reason(alert: AlertRecord) -> dict[str, Any]:
    return {"alert_id": alert.alert_id, "rule": alert.rule, "model": alert.model,
            "severity": alert.severity, "series": alert.series, "value": alert.value,
            "message": alert.message, "fired_at": from_ms(alert.fired_at).isoformat()}  # fmt: skip


def _versions(ws: Workspace, dataset: str) -> list[Any]:
    try:
        return list(ws.data.versions(dataset))
    except NotFoundError:
        return []  # no version yet: the first one will be new


def _newest_alert_id(ws: Workspace) -> int:
    from loopml.store.repositories.monitoring import MonitorRepository

    newest = MonitorRepository(ws.db).alerts(limit=1)
    return newest[0].alert_id if newest else 0


# -- the ``pipeline`` alert action ----------------------------------------------------
_ACTION_OPTIONS = {"pipeline", "params", "max_runs", "per", "trigger"}


def check_action(options: dict[str, Any]) -> str | None:
    unknown = sorted(set(options) - _ACTION_OPTIONS)
    if unknown:
        return (
            f"unknown pipeline action option(s) {unknown}; it takes pipeline, params, "
            "max_runs, per and trigger, e.g. action: {pipeline: 'retrain.yaml', max_runs: 1, "
            "per: 1d}."
        )
    try:
        check_target(options.get("pipeline"), "The pipeline action")
        check_params(options.get("params"), "The pipeline action")
        check_rate(options.get("max_runs"), options.get("per"), "The pipeline action")
    except ValidationError as error:
        return str(error)
    return None


def run_from_alert(alert: AlertRecord, options: Mapping[str, Any]) -> dict[str, Any]:
    """The ``pipeline`` action kind: runs ``options["pipeline"]`` with the alert as its
    recorded reason, once per alert, within the action's rate limit.

    The firing belongs to a trigger of kind ``action`` named ``options["trigger"]``
    (default ``alert:<rule>``), created or updated on first use.
    """
    ws = _workspace_of(alert)
    name = str(options.get("trigger") or f"alert:{alert.rule}")
    where = f"The pipeline action of rule {alert.rule!r}"
    period_ms = check_rate(options.get("max_runs"), options.get("per"), where)
    repository = ScheduleRepository(ws.db)
    try:
        existing: TriggerRecord | None = repository.get(name)
    except NotFoundError:
        existing = None
    values = {
        "kind": "action", "target": str(options["pipeline"]),
        "params": check_params(options.get("params"), where), "enabled": True,
        "start_at": to_ms(_now()), "source": alert.model, "rule": alert.rule,
        "max_runs": options.get("max_runs"), "period_ms": period_ms,
    }  # fmt: skip
    if existing is not None and existing.kind != "action":
        raise ValidationError(f"{where}: {name!r} names a {existing.kind} trigger; rename one.")
    if existing is None or any(
        getattr(existing, key) != value for key, value in values.items() if key != "start_at"
    ):
        repository.add(name, values, replace=True)
    trigger = repository.get(name)
    found = claim_and_run(ws, trigger, f"alert:{alert.alert_id}", _alert_reason(alert), now=_now())
    if found is None:
        return {"firing": None, "note": "another process ran this alert's pipeline already"}
    outcome: dict[str, Any] = {"trigger": name, "firing": found.firing_id,
                               "firing_status": found.status, "run_id": found.run_id}  # fmt: skip
    if found.status == "failed":
        outcome["error"] = found.error
    return outcome


def _workspace_of(alert: AlertRecord) -> Workspace:
    """The open workspace this alert lives in: action kinds get the alert, not the
    workspace, so find the one whose store holds this very alert."""
    from loopml.store.repositories.monitoring import MonitorRepository
    from loopml.workspace import _OPEN, Workspace

    for ws in list(_OPEN):
        try:
            stored = MonitorRepository(ws.db).alert(alert.alert_id)
        except (KeyError, LoopmlError):
            continue
        if (stored.rule, stored.model, stored.fired_at) == (
            alert.rule,
            alert.model,
            alert.fired_at,
        ):
            return ws
    return Workspace.open(create=False)  # a command-line monitor: LOOPML_HOME and friends


# -- time -----------------------------------------------------------------------------
def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
