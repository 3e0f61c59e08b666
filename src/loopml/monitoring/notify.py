"""What an alert sets off: notifiers that tell someone, actions that do something.

Notifiers (``log``, ``webhook``, a Python callable) are told when an alert fires and when
it resolves. Each is retried with exponential backoff; a notifier that still fails is
reported back as a :class:`Delivery` with its error, never raised, so one broken webhook
cannot stop monitoring or the other notifiers.

Actions run once, when an alert fires, with the alert as their reason: a Python callable
(called with the :class:`~loopml.store.repositories.monitoring.AlertRecord`), a command
(run with the alert as JSON on stdin and ``LOOPML_ALERT_ID``, ``LOOPML_ALERT_RULE`` and
``LOOPML_ALERT_MODEL`` in its environment), or any kind added with
:func:`register_action_kind` (the hook the retraining pipeline plugs into). Rules and
their evaluation live in :mod:`loopml.monitoring.alerts`.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import logging
import os
import shlex
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from loopml.errors import ValidationError
from loopml.store.repositories.monitoring import AlertRecord

if TYPE_CHECKING:
    from loopml.monitoring.alerts import AlertChange

__all__ = [
    "ActionKind",
    "ActionSpec",
    "CallableNotifier",
    "Delivery",
    "LogNotifier",
    "Notifier",
    "WebhookNotifier",
    "action_kinds",
    "alert_as_dict",
    "build_notifier",
    "deliver",
    "parse_action",
    "register_action_kind",
    "run_action",
]

logger = logging.getLogger("loopml.monitoring")

_MAX_BACKOFF_S = 60.0
_OUTPUT_TAIL = 4000  # characters of a command's output kept on the alert
_TELEMETRY_OFF = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1",
                  "RAY_USAGE_STATS_ENABLED": "0"}  # fmt: skip


def alert_as_dict(alert: AlertRecord) -> dict[str, Any]:
    """An alert as JSON-able values, times as ISO 8601 UTC: what webhooks and commands get."""
    out: dict[str, Any] = {
        "alert_id": alert.alert_id, "rule": alert.rule, "model": alert.model,
        "series": alert.series, "severity": alert.severity, "state": alert.state,
        "value": alert.value, "threshold": alert.threshold, "message": alert.message,
        "notify_attempts": alert.notify_attempts, "notify_error": alert.notify_error,
        "action": alert.action,
    }  # fmt: skip
    for name in ("window_end", "fired_at", "resolved_at", "notified_at"):
        out[name] = _iso(getattr(alert, name))
    return out


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat()


# -- notifiers ---------------------------------------------------------------------------
@runtime_checkable
class Notifier(Protocol):
    """Tells someone about an alert change; raises when it could not."""

    name: str
    retries: int  # further attempts after a failed first one
    backoff: float  # seconds before the first retry, doubled before each next one

    def send(self, change: AlertChange) -> None: ...


@dataclass
class LogNotifier:
    """Logs alert changes on the ``loopml.monitoring`` logger, at a level by severity."""

    name: str = "log"
    retries: int = 0
    backoff: float = 0.0
    logger_name: str = "loopml.monitoring"

    def send(self, change: AlertChange) -> None:
        level = {"critical": logging.ERROR, "warning": logging.WARNING}.get(
            change.severity, logging.INFO
        )
        if change.status == "resolved":
            level = logging.INFO
        logging.getLogger(self.logger_name).log(
            level, "alert %s: %s", change.status, change.message, extra={"alert": change.as_dict()}
        )


@dataclass
class WebhookNotifier:
    """POSTs the alert change as JSON (:meth:`AlertChange.as_dict`) to ``url``; any
    answer other than 2xx, a refused connection or a timeout is a failed attempt."""

    url: str
    name: str = "webhook"
    timeout: float = 5.0
    retries: int = 2
    backoff: float = 0.5
    headers: dict[str, str] = field(default_factory=dict)

    def send(self, change: AlertChange) -> None:
        body = json.dumps(change.as_dict(), default=str).encode()
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "loopml", **self.headers},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as error:
            raise RuntimeError(f"{self.url} answered HTTP {error.code} {error.reason}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise RuntimeError(f"{self.url} could not be reached: {reason}") from None


@dataclass
class CallableNotifier:
    """Calls ``function(change)`` with the :class:`~loopml.monitoring.alerts.AlertChange`."""

    function: Callable[[AlertChange], Any]
    name: str = "callable"
    retries: int = 2
    backoff: float = 0.5

    def send(self, change: AlertChange) -> None:
        self.function(change)


_NOTIFIER_KEYS = {
    "log": {"type", "retries", "backoff", "logger"},
    "webhook": {"type", "url", "timeout", "retries", "backoff", "headers"},
    "callable": {"type", "function", "retries", "backoff"},
}
_NOTIFIER_EXAMPLE = 'webhook: {type: webhook, url: "http://127.0.0.1:9000/hook", retries: 3}'


def build_notifier(name: str, spec: Any) -> Notifier:
    """A notifier from its configuration: a mapping with ``type`` (log, webhook, callable),
    a Python callable, or a :class:`Notifier` already built (returned as is)."""
    if isinstance(spec, Notifier):
        return spec
    if callable(spec):
        return CallableNotifier(spec, name=name)
    where = f"Notifier {name!r}"
    if not isinstance(spec, Mapping):
        raise ValidationError(
            f"{where} must be a mapping with a `type` (log, webhook or callable), got "
            f"{type(spec).__name__}; for example {_NOTIFIER_EXAMPLE}."
        )
    kind = spec.get("type", "log" if name == "log" else None)
    if kind not in _NOTIFIER_KEYS:
        raise ValidationError(
            f"{where} has type {kind!r}; write `type: log`, `type: webhook` (with a `url`) "
            f"or, in Python, `type: callable` (with a `function`); e.g. {_NOTIFIER_EXAMPLE}."
        )
    unknown = sorted(str(key) for key in spec if key not in _NOTIFIER_KEYS[kind])
    if unknown:
        raise ValidationError(
            f"{where} has unknown key(s) {unknown}; a {kind} notifier takes "
            f"{', '.join(sorted(_NOTIFIER_KEYS[kind]))}."
        )
    retries = _count(spec.get("retries", 0 if kind == "log" else 2), f"{where}: retries")
    backoff = _seconds(spec.get("backoff", 0.5), f"{where}: backoff")
    if kind == "log":
        return LogNotifier(name, retries, backoff, str(spec.get("logger", "loopml.monitoring")))
    if kind == "callable":
        function = spec.get("function")
        if not callable(function):
            raise ValidationError(
                f"{where} of type callable needs `function`: a Python callable taking the "
                "alert change."
            )
        return CallableNotifier(function, name, retries, backoff)
    url = spec.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValidationError(
            f"{where} needs a `url` starting with http:// or https://, got {url!r}; "
            f"e.g. {_NOTIFIER_EXAMPLE}."
        )
    headers = spec.get("headers") or {}
    if not isinstance(headers, Mapping):
        raise ValidationError(f"{where}: headers must be a mapping of header name to value.")
    timeout = _seconds(spec.get("timeout", 5.0), f"{where}: timeout")
    if timeout <= 0:
        raise ValidationError(f"{where}: timeout must be more than 0 seconds, e.g. 5.")
    return WebhookNotifier(
        url, name, timeout, retries, backoff, {str(k): str(v) for k, v in headers.items()}
    )


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(f"{where} must be a whole number 0 or more, got {value!r}.")
    return value


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValidationError(f"{where} must be a number of seconds 0 or more, got {value!r}.")
    return float(value)


@dataclass(frozen=True)
class Delivery:
    """How telling one notifier went: ``attempts`` made, ``error`` of the last one if all
    failed (None when delivered)."""

    notifier: str
    ok: bool
    attempts: int
    error: str | None = None


def deliver(
    notifier: Notifier,
    change: AlertChange,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """Sends ``change`` through ``notifier``, retrying ``notifier.retries`` times with
    exponential backoff (``backoff``, 2x, 4x ... seconds, capped at a minute). Never raises."""
    attempts = 0
    error = ""
    for attempt in range(notifier.retries + 1):
        if attempt:
            sleep(min(notifier.backoff * 2 ** (attempt - 1), _MAX_BACKOFF_S))
        attempts += 1
        try:
            notifier.send(change)
        except Exception as caught:  # a notifier's failure must not stop monitoring
            error = f"{type(caught).__name__}: {caught}"
            continue
        return Delivery(notifier.name, True, attempts)
    logger.warning(
        "notifier %r failed %d time(s) for alert %s of rule %r: %s",
        notifier.name, attempts, change.status, change.rule, error,
    )  # fmt: skip
    return Delivery(notifier.name, False, attempts, error)


# -- actions -----------------------------------------------------------------------------
ActionKind = Callable[[AlertRecord, Mapping[str, Any]], Mapping[str, Any] | None]
"""``fn(alert, options)``: does the action; returns extra facts to store with its outcome
(a run id, say) or None, and raises when it failed."""


@dataclass(frozen=True)
class ActionSpec:
    """An action an alert runs when it fires: its ``kind`` and that kind's ``options``."""

    kind: str
    options: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        if self.kind == "command":
            return shlex.join(self.options["command"])
        if self.kind == "callable":
            function = self.options["function"]
            return str(getattr(function, "__qualname__", function))
        return f"{self.kind} {json.dumps(self.options, default=str)}"


@dataclass(frozen=True)
class _Kind:
    run: ActionKind | str  # a callable, or "module:attribute" imported on first use
    check: Callable[[dict[str, Any]], str | None] | None = None


_ACTION_KINDS: dict[str, _Kind] = {}


def register_action_kind(
    name: str,
    run: ActionKind | str,
    *,
    check: Callable[[dict[str, Any]], str | None] | None = None,
    replace: bool = False,
) -> None:
    """Adds an action kind rules can name: ``action: {<name>: <value>, <option>: ...}``.

    Args:
        name: The kind's name, also the key that selects it in a rule's ``action``.
        run: ``fn(alert, options)`` (see :data:`ActionKind`), or ``"module:function"``
            imported on first use so registering costs no import.
        check: Optional ``check(options)`` returning a problem (a sentence saying what to
            write instead) or None, run when rules load; it may normalize ``options``.
        replace: Replace a kind of the same name instead of refusing.

    Example:
        The pipelines layer registers retraining as
        ``register_action_kind("pipeline", "loopml.pipelines.triggers:run_from_alert")``, so
        a rule can say ``action: {pipeline: retrain}``.
    """
    if not name or not name.isidentifier():
        raise ValidationError(
            f"An action kind's name must be a word like 'pipeline', got {name!r}."
        )
    if name in _ACTION_KINDS and not replace:
        raise ValidationError(
            f"The action kind {name!r} is registered already; pass replace=True to replace it."
        )
    _ACTION_KINDS[name] = _Kind(run, check)


def action_kinds() -> list[str]:
    """The names of the registered action kinds."""
    return sorted(_ACTION_KINDS)


_ACTION_EXAMPLE = 'action: {command: ["loopml", "pipeline", "run", "retrain"], timeout: 3600}'


def parse_action(spec: Any, where: str) -> ActionSpec | None:
    """A rule's ``action`` read and checked: None, a Python callable, an
    :class:`ActionSpec`, or a mapping whose one key naming a registered kind selects it
    (``{command: [...], timeout: 600}``) or with an explicit ``kind``."""
    if spec is None or isinstance(spec, ActionSpec):
        return spec
    if callable(spec):
        return ActionSpec("callable", {"function": spec})
    if not isinstance(spec, Mapping):
        raise ValidationError(
            f"{where}: action must be a mapping like {_ACTION_EXAMPLE} (or a Python callable), "
            f"got {type(spec).__name__}."
        )
    options = {str(key): value for key, value in spec.items()}
    if "kind" in options:
        kind = options.pop("kind")
    else:
        named = [key for key in options if key in _ACTION_KINDS]
        if len(named) != 1:
            raise ValidationError(
                f"{where}: the action must name exactly one action kind "
                f"({', '.join(action_kinds())}) as a key, got {sorted(options)}; e.g. "
                f"{_ACTION_EXAMPLE}."
            )
        kind = named[0]
    if kind not in _ACTION_KINDS:
        raise ValidationError(
            f"{where}: unknown action kind {kind!r}; the kinds are {', '.join(action_kinds())} "
            "(add one with loopml.monitoring.register_action_kind)."
        )
    registered = _ACTION_KINDS[kind]
    problem = registered.check(options) if registered.check is not None else None
    if problem:
        raise ValidationError(f"{where}: {problem}")
    return ActionSpec(kind, options)


def run_action(action: ActionSpec, alert: AlertRecord) -> dict[str, Any]:
    """Runs ``action`` for ``alert``; returns its outcome, never raises.

    The outcome, stored on the alert, holds ``kind``, ``target`` (what ran), ``status``
    (``ok`` or ``failed``), ``error``, ``started_at``, ``duration_s``, ``reason`` (the
    alert's id, rule, model and message) and what the kind adds (a command's
    ``exit_code`` and ``output`` tail).
    """
    started = time.perf_counter()
    outcome: dict[str, Any] = {
        "kind": action.kind,
        "target": action.describe(),
        "status": "ok",
        "error": None,
        "started_at": dt.datetime.now(dt.UTC).isoformat(),
        "reason": {"alert_id": alert.alert_id, "rule": alert.rule, "model": alert.model,
                   "message": alert.message},
    }  # fmt: skip
    try:
        extra = _resolve(action.kind)(alert, action.options)
    except Exception as error:  # an action's failure is recorded, not raised
        outcome["status"] = "failed"
        if isinstance(error, _CommandFailed):
            outcome["error"] = str(error)
            outcome.update(error.outcome)
        else:
            outcome["error"] = f"{type(error).__name__}: {error}"
    else:
        outcome.update(extra or {})
        if outcome.get("error"):
            outcome["status"] = "failed"
    outcome["duration_s"] = round(time.perf_counter() - started, 3)
    log = logger.warning if outcome["status"] == "failed" else logger.info
    said = "ok" if outcome["error"] is None else f"failed: {outcome['error']}"
    log("action %s of alert %d (%s) %s", outcome["target"], alert.alert_id, alert.rule, said)
    return outcome


def _resolve(kind: str) -> ActionKind:
    registered = _ACTION_KINDS.get(kind)
    if registered is None:
        raise ValidationError(f"No action kind {kind!r}; the kinds are {action_kinds()}.")
    if isinstance(registered.run, str):
        module, _, attribute = registered.run.partition(":")
        run: ActionKind = getattr(importlib.import_module(module), attribute)
        _ACTION_KINDS[kind] = _Kind(run, registered.check)
        return run
    return registered.run


def _run_callable(alert: AlertRecord, options: Mapping[str, Any]) -> Mapping[str, Any] | None:
    result = options["function"](alert)
    return {"result": result} if isinstance(result, str | int | float | bool) else None


def _check_callable(options: dict[str, Any]) -> str | None:
    if not callable(options.get("function")) or set(options) != {"function"}:
        return "a callable action takes one option, `function`: a Python callable."
    return None


class _CommandFailed(RuntimeError):
    def __init__(self, message: str, outcome: dict[str, Any]) -> None:
        super().__init__(message)
        self.outcome = outcome


def _run_command(alert: AlertRecord, options: Mapping[str, Any]) -> Mapping[str, Any] | None:
    command = list(options["command"])
    extra = {str(name): str(value) for name, value in options.get("env", {}).items()}
    env = {**os.environ, **_TELEMETRY_OFF, **extra, "LOOPML_ALERT_ID": str(alert.alert_id),
           "LOOPML_ALERT_RULE": alert.rule, "LOOPML_ALERT_MODEL": alert.model}  # fmt: skip
    timeout = float(options.get("timeout", 600))
    try:
        done = subprocess.run(
            command,
            input=json.dumps(alert_as_dict(alert), default=str),
            capture_output=True,
            text=True,
            env=env,
            cwd=options.get("cwd"),
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as expired:
        output = _text(expired.stdout) + _text(expired.stderr)
        raise _CommandFailed(
            f"timed out after {timeout:g} s", {"exit_code": None, "output": output[-_OUTPUT_TAIL:]}
        ) from None
    except OSError as error:  # no such program, not executable
        raise _CommandFailed(
            f"could not start {command[0]!r}: {error}", {"exit_code": None}
        ) from None
    output = (done.stdout or "") + (done.stderr or "")
    result: dict[str, Any] = {"exit_code": done.returncode, "output": output[-_OUTPUT_TAIL:]}
    if done.returncode != 0:
        result["error"] = f"exited with code {done.returncode}"
    return result


def _text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _check_command(options: dict[str, Any]) -> str | None:
    command = options.get("command")
    if isinstance(command, str):
        command = shlex.split(command)
        options["command"] = command
    if (
        not isinstance(command, list)
        or not command
        or not all(
            isinstance(part, str | int | float) and not isinstance(part, bool) for part in command
        )
    ):
        return (
            f"`command` must be a non-empty list of words (or one string), e.g. {_ACTION_EXAMPLE}."
        )
    options["command"] = [str(part) for part in command]
    unknown = sorted(set(options) - {"command", "timeout", "env", "cwd"})
    if unknown:
        return f"unknown command option(s) {unknown}; a command takes timeout, env and cwd."
    timeout = options.get("timeout", 600)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        return f"the command's timeout must be a number of seconds above 0, got {timeout!r}."
    if not isinstance(options.get("env", {}), Mapping):
        return "the command's env must be a mapping of variable name to value."
    return None


register_action_kind("callable", _run_callable, check=_check_callable)
register_action_kind("command", _run_command, check=_check_command)


def _check_pipeline(options: dict[str, Any]) -> str | None:
    from loopml.pipelines.triggers import check_action  # pipelines import monitoring

    return check_action(options)


# ``action: {pipeline: retrain.yaml}``: the run starts when the alert fires, imported then.
register_action_kind("pipeline", "loopml.pipelines.triggers:run_from_alert", check=_check_pipeline)
