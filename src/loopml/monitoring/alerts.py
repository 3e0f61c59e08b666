"""Alert rules on monitored series, and their evaluation window by window.

Rules are YAML (or the same lists and mappings in Python)::

    rules:
      - name: feature-drift
        condition: drift.share > 0.3 for 2 windows
        severity: warning          # info | warning | critical
        cooldown: 1h               # after firing, no new alert of this rule and model before
        notify: [log, webhook]     # notifiers by name; default [log]
        action: {command: ["loopml", "pipeline", "run", "retrain"], timeout: 3600}
      - name: slow
        condition: health.p99_ms > 200
    notifiers:
      webhook: {type: webhook, url: "http://127.0.0.1:9000/hook", timeout: 5, retries: 3}

A condition is ``<series key> <op> <number> [for <N> windows]`` with op one of
``> >= < <= == !=``. :func:`evaluate_alerts` judges the window ending at ``at`` from the
stored series alone (:mod:`loopml.monitoring.series`), so it can run in any process, any
number of times:

- A rule holds when its condition held in each of the series' last N windows up to ``at``
  (the windows ending within N window lengths of ``at``; a gap in the series restarts the
  count). A rule whose series has no point in the window ending at ``at`` does nothing.
- When a window has several points of the series, health points (one per server
  instance) are combined first: summed for throughput and request counts, the maximum for
  everything else (latency, error rate, queue depth, drops). Then the condition holds if
  any point meets it (any test of a drifted feature, any model version).
- It fires through the store's one-open-alert-per-rule-and-model guarantee: two monitors
  evaluating the same window, or one evaluating it twice, raise one alert, notified once
  and running its action once. A window older than the rule's newest alert changes nothing.
- A firing alert resolves when the newest window no longer meets the condition; the
  resolution is notified too. Actions run only when an alert fires.
- Cool-down: within ``cooldown`` of the last alert's window, a new alert is suppressed.

Notifiers and actions live in :mod:`loopml.monitoring.notify`.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import operator
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml._time import from_ms, to_ms
from loopml._yaml import read_yaml
from loopml.errors import NotFoundError, ValidationError
from loopml.monitoring import series as _series
from loopml.monitoring.notify import (
    ActionSpec,
    Delivery,
    LogNotifier,
    Notifier,
    alert_as_dict,
    build_notifier,
    deliver,
    parse_action,
    run_action,
)
from loopml.store.repositories.monitoring import AlertRecord, MonitorRepository

if TYPE_CHECKING:
    from loopml.workspace import Workspace

__all__ = [
    "OPERATORS",
    "SEVERITIES",
    "AlertChange",
    "AlertConfig",
    "AlertRule",
    "Condition",
    "alert_as_dict",
    "evaluate_alerts",
    "load_rules",
    "parse_condition",
    "parse_duration",
]

SEVERITIES = ("info", "warning", "critical")
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
    "==": operator.eq, "!=": operator.ne,
}  # fmt: skip
_EXAMPLE = "drift.share > 0.3 for 2 windows"
_SERIES_EXAMPLES = "drift.share, performance.auc, health.p99_ms, concept.adwin"
# Health series summed over server instances; every other health series takes the maximum.
_SUMMED_HEALTH = ("throughput", "requests", "rps", "qps")


# -- conditions --------------------------------------------------------------------------
@dataclass(frozen=True)
class Condition:
    """``<series> <op> <threshold> for <windows> windows``, read by :func:`parse_condition`."""

    series: str
    op: str
    threshold: float
    windows: int = 1

    @property
    def kind(self) -> str:
        return self.series.partition(".")[0]

    @property
    def name(self) -> str:
        return self.series.partition(".")[2]

    def holds(self, value: float | None) -> bool:
        """Whether ``value`` meets the condition; a missing or NaN value never does."""
        if value is None or math.isnan(value):
            return False
        return OPERATORS[self.op](value, self.threshold)

    def __str__(self) -> str:
        text = f"{self.series} {self.op} {self.threshold:g}"
        return text if self.windows == 1 else f"{text} for {self.windows} windows"


_KEY = re.compile(r"\s*([^\s<>=!]+)\s*")
_OP = re.compile(r"([<>=!]+)\s*")


def parse_condition(text: str | Condition, where: str = "An alert condition") -> Condition:
    """Reads ``<series key> <op> <number> [for <N> windows]``, e.g. ``drift.share > 0.3 for
    2 windows``; errors name ``where`` and say what to write instead."""
    if isinstance(text, Condition):
        return text
    if not isinstance(text, str) or not text.strip():
        raise ValidationError(f"{where}: condition must be text like {_EXAMPLE!r}, got {text!r}.")
    said = f"{where}: condition {text.strip()!r}"
    key_match = _KEY.match(text)
    if key_match is None:
        raise ValidationError(f"{said} must start with a series key, e.g. {_EXAMPLE!r}.")
    key = key_match.group(1)
    kind, _, name = key.partition(".")
    if kind not in _series.KINDS or not name:
        close = difflib.get_close_matches(kind, _series.KINDS, n=1)
        hint = f" (did you mean {close[0]}.{name or '<name>'}?)" if close else ""
        raise ValidationError(
            f"{said} reads the series {key!r}, whose kind {kind!r} is unknown{hint}; a series "
            f"key is <kind>.<name> with kind one of {', '.join(_series.KINDS)}, e.g. "
            f"{_SERIES_EXAMPLES}."
        )
    op_match = _OP.match(text, key_match.end())
    if op_match is None or op_match.group(1) not in OPERATORS:
        got = op_match.group(1) if op_match else text[key_match.end() :].split(" ")[0]
        raise ValidationError(
            f"{said} compares with {got!r}, which is not an operator; write one of "
            f"{' '.join(OPERATORS)}, e.g. {_EXAMPLE!r}."
        )
    words = text[op_match.end() :].split()
    if not words:
        raise ValidationError(f"{said} has no number to compare with; e.g. {_EXAMPLE!r}.")
    threshold = _number(words[0])
    if threshold is None:
        raise ValidationError(
            f"{said} compares with {words[0]!r}, which is not a number; write a number such "
            f"as 0.3, 200 or 1e-3, e.g. {_EXAMPLE!r}."
        )
    windows = 1
    if len(words) > 1:
        count = words[2] if len(words) > 2 else ""
        if (
            len(words) != 4
            or words[1].lower() != "for"
            or words[3].lower() not in ("window", "windows")
            or not count.isdigit()
            or int(count) < 1
        ):
            raise ValidationError(
                f"{said} ends with {' '.join(words[1:])!r}; after the number write nothing or "
                f"`for <N> windows` with N a whole number of 1 or more, e.g. {_EXAMPLE!r}."
            )
        windows = int(count)
    return Condition(key, op_match.group(1), threshold, windows)


def _number(word: str) -> float | None:
    try:
        value = float(word)
    except ValueError:
        return None
    return None if math.isnan(value) else value


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])", re.IGNORECASE)
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any, where: str = "A duration") -> dt.timedelta:
    """``30s``, ``5m``, ``1h``, ``1d``, ``1h30m``, a number of seconds or a timedelta."""
    if isinstance(value, dt.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text, position, seconds = value.strip(), 0, 0.0
        while position < len(text):
            match = _DURATION_PART.match(text, position)
            if match is None:
                seconds = -1
                break
            seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
            position = match.end()
    else:
        seconds = -1
    if seconds < 0 or math.isnan(seconds):
        raise ValidationError(
            f"{where} {value!r} is not a duration; write a number and a unit (s, m, h, d, "
            "w), e.g. 30s, 5m, 1h, 1d or 1h30m, or 0 for none."
        )
    return dt.timedelta(seconds=seconds)


# -- rules and configuration -------------------------------------------------------------
_RULE_KEYS = {
    "name": "the rule's name (required, unique)",
    "condition": f"what to watch, e.g. {_EXAMPLE} (required)",
    "severity": "info, warning (default) or critical",
    "cooldown": "how long after firing no new alert is raised, e.g. 1h (default 0)",
    "notify": "names of notifiers (default [log])",
    "action": "what to run when it fires, e.g. {command: [...]}",
    "test": "only points of this test (a drift test such as psi, or a server instance)",
    "description": "free text kept with the rule",
}


class AlertRule:
    """One alert rule; every field is checked and normalized on construction.

    Args:
        name: Unique within its configuration; alerts are de-duplicated per rule and model.
        condition: A :class:`Condition` or its text, e.g. ``drift.share > 0.3 for 2 windows``.
        severity: ``info``, ``warning`` or ``critical``.
        cooldown: After the rule fires, no new alert of it for the same model until the
            windows have moved on this far (a timedelta, seconds, or text like ``1h``).
        notify: Names of the notifiers told when it fires and resolves.
        action: Run once when it fires: a callable taking the alert, a mapping such as
            ``{"command": [...]}``, or an :class:`~loopml.monitoring.notify.ActionSpec`.
        test: Only points whose ``test`` is this (one drift test, one server instance).
        description: Free text.
    """

    def __init__(
        self,
        name: str,
        condition: Condition | str,
        severity: str = "warning",
        cooldown: dt.timedelta | float | str | None = None,
        notify: Sequence[str] | str = ("log",),
        action: ActionSpec | Callable[[AlertRecord], Any] | Mapping[str, Any] | None = None,
        test: str | None = None,
        description: str = "",
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ValidationError(
                f"An alert rule needs a `name` (text), got {name!r}; e.g. name: feature-drift."
            )
        where = f"Alert rule {name!r}"
        self.name = name
        self.condition = parse_condition(condition, where)
        if severity not in SEVERITIES:
            raise ValidationError(
                f"{where}: severity {severity!r} is unknown; write one of {', '.join(SEVERITIES)}."
            )
        self.severity = severity
        self.cooldown = parse_duration(cooldown or 0, f"{where}: cooldown")
        names: Any = [notify] if isinstance(notify, str) else notify
        if not isinstance(names, Iterable) or not all(isinstance(n, str) for n in names):
            raise ValidationError(
                f"{where}: notify must be a list of notifier names, e.g. [log, webhook]."
            )
        self.notify = tuple(names)
        self.action = parse_action(action, where)
        if test is not None and not isinstance(test, str):
            raise ValidationError(f"{where}: test must be text, e.g. psi, got {test!r}.")
        self.test = test
        self.description = str(description or "")

    def __repr__(self) -> str:
        return f"AlertRule({self.name!r}, {str(self.condition)!r}, severity={self.severity!r})"

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any], position: int = 0) -> AlertRule:
        """A rule from its YAML mapping; errors name the rule (or its position)."""
        label = spec.get("name") if isinstance(spec, Mapping) else None
        where = f"Alert rule {label!r}" if label else f"Alert rule #{position + 1}"
        if not isinstance(spec, Mapping):
            raise ValidationError(
                f"{where} must be a mapping with a name and a condition, got "
                f"{type(spec).__name__}; e.g. {{name: feature-drift, condition: {_EXAMPLE}}}."
            )
        unknown = sorted(str(k) for k in spec if k not in _RULE_KEYS)
        if unknown:
            known = "; ".join(f"{k}: {v}" for k, v in _RULE_KEYS.items())
            raise ValidationError(f"{where} has unknown key(s) {unknown}. Known keys: {known}.")
        for required in ("name", "condition"):
            if required not in spec:
                raise ValidationError(
                    f"{where} needs `{required}`; e.g. {{name: feature-drift, condition: "
                    f"{_EXAMPLE}}}."
                )
        return cls(**{str(k): v for k, v in spec.items()})

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "condition": str(self.condition), "severity": self.severity,
            "cooldown_s": self.cooldown.total_seconds(), "notify": list(self.notify),
            "action": None if self.action is None else self.action.describe(),
            "test": self.test, "description": self.description,
        }  # fmt: skip


@dataclass
class AlertConfig:
    """Rules and the notifiers they name, checked together: unique rule names, every
    ``notify`` name configured (``log`` always is)."""

    rules: list[AlertRule]
    notifiers: dict[str, Notifier] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.notifiers = {name: build_notifier(name, spec) for name, spec in self.notifiers.items()}
        self.notifiers.setdefault("log", LogNotifier())
        seen: set[str] = set()
        for rule in self.rules:
            if not isinstance(rule, AlertRule):
                raise ValidationError(f"AlertConfig.rules holds AlertRule objects, got {rule!r}.")
            if rule.name in seen:
                raise ValidationError(
                    f"Two alert rules are named {rule.name!r}; give each rule its own name."
                )
            seen.add(rule.name)
            for name in rule.notify:
                if name not in self.notifiers:
                    raise ValidationError(
                        f"Alert rule {rule.name!r} notifies {name!r}, which is not configured; "
                        f"use one of {', '.join(sorted(self.notifiers))} or add it under "
                        f"`notifiers:`, e.g. {name}: {{type: webhook, url: "
                        '"http://127.0.0.1:9000/hook"}.'
                    )

    def rule(self, name: str) -> AlertRule:
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise NotFoundError(
            f"No alert rule {name!r}; the rules are {', '.join(r.name for r in self.rules)}."
        )


_CONFIG_KEYS = ("rules", "notifiers")


def load_rules(source: Any, *, notifiers: Mapping[str, Any] | None = None) -> AlertConfig:
    """Alert rules from a YAML file path, YAML text, a mapping with ``rules:`` (and
    ``notifiers:``), a list of rule mappings or :class:`AlertRule` objects, or an
    :class:`AlertConfig`.

    Args:
        source: The rules, as above.
        notifiers: Extra notifiers by name (configurations, callables or
            :class:`~loopml.monitoring.notify.Notifier` objects), replacing configured ones
            of the same name, so YAML rules can name a notifier only Python can build.

    Raises:
        ValidationError: Naming the rule and the fix: an unknown series kind, operator,
            number, duration, severity, notifier, action or key.
    """
    if isinstance(source, AlertConfig):
        if not notifiers:
            return source
        mapping: dict[str, Any] = {"rules": source.rules, "notifiers": dict(source.notifiers)}
    elif isinstance(source, Path) or (isinstance(source, str) and _looks_like_path(source)):
        path = Path(source)
        if not path.is_file():
            raise NotFoundError(
                f"No alert rules file {str(path)!r}. Pass the path of a YAML file, YAML text "
                "or a list of rules."
            )
        mapping = _yaml(path.read_text(encoding="utf-8"), str(path))
    elif isinstance(source, str):
        mapping = _yaml(source, "The alert rules")
    elif isinstance(source, Mapping):
        mapping = dict(source)
    elif isinstance(source, Sequence):
        mapping = {"rules": list(source)}
    else:
        raise ValidationError(
            "Alert rules are a YAML file path, YAML text, a mapping with `rules:` or a list of "
            f"rules, got {type(source).__name__}."
        )
    unknown = sorted(str(k) for k in mapping if k not in _CONFIG_KEYS)
    if unknown:
        raise ValidationError(
            f"Unknown alert configuration key(s) {unknown}; the keys are `rules:` (a list of "
            "rules) and `notifiers:` (a mapping of name to notifier)."
        )
    raw_rules = mapping.get("rules")
    if not isinstance(raw_rules, list):
        raise ValidationError(
            f"Alert rules need a `rules:` list, got {type(raw_rules).__name__}; e.g.\n"
            f"rules:\n  - name: feature-drift\n    condition: {_EXAMPLE}"
        )
    raw_notifiers = mapping.get("notifiers") or {}
    if not isinstance(raw_notifiers, Mapping):
        raise ValidationError(
            "`notifiers:` must map names to notifiers, e.g. notifiers: {webhook: {type: "
            'webhook, url: "http://127.0.0.1:9000/hook"}}.'
        )
    rules = [
        rule if isinstance(rule, AlertRule) else AlertRule.from_dict(rule, position)
        for position, rule in enumerate(raw_rules)
    ]
    merged = {str(k): v for k, v in raw_notifiers.items()} | dict(notifiers or {})
    return AlertConfig(rules, merged)


def _looks_like_path(text: str) -> bool:
    if "\n" in text or ":" in text.replace("\\", "/").split("/")[-1]:
        return False
    if text.strip().endswith((".yaml", ".yml")):
        return True
    try:
        return Path(text).is_file()
    except (OSError, ValueError):
        return False


def _yaml(text: str, where: str) -> dict[str, Any]:
    example = f"e.g.\nrules:\n  - name: feature-drift\n    condition: {_EXAMPLE}"
    loaded = read_yaml(text, where, f"Write a mapping with a `rules:` list, {example}")
    if isinstance(loaded, list):
        return {"rules": loaded}
    if not isinstance(loaded, dict):
        raise ValidationError(
            f"{where} must be a YAML mapping with a `rules:` list, got {type(loaded).__name__}; "
            f"{example}"
        )
    return loaded


# -- evaluation --------------------------------------------------------------------------
@dataclass
class AlertChange:
    """What one rule did in one window.

    Attributes:
        status: ``fired`` (a new alert), ``firing`` (its alert is still open),
            ``resolved`` (the condition cleared) or ``suppressed`` (it held, in cool-down).
        rule, model, series, severity: Which rule on which model's series.
        value: The series' value in the window (combined over its points).
        threshold: The condition's number.
        window_end: The end of the window judged.
        message: One line for people.
        alert: The stored alert (refreshed after notifying); None when suppressed.
        deliveries: How each notifier went, when this change was notified.
        action: The action's outcome, when this change ran one.
    """

    status: str
    rule: str
    model: str
    series: str
    severity: str
    value: float | None
    threshold: float
    window_end: dt.datetime
    message: str
    alert: AlertRecord | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    action: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-able: what webhooks receive and ``--json`` prints."""
        return {
            "status": self.status, "rule": self.rule, "model": self.model,
            "series": self.series, "severity": self.severity, "value": self.value,
            "threshold": self.threshold, "window_end": self.window_end.isoformat(),
            "message": self.message,
            "alert": None if self.alert is None else alert_as_dict(self.alert),
            "deliveries": [asdict(d) for d in self.deliveries], "action": self.action,
        }  # fmt: skip


def evaluate_alerts(
    ws: Workspace,
    model: str,
    config: Any,
    *,
    at: dt.datetime,
    notifiers: Mapping[str, Any] | None = None,
    actions: Mapping[str, Any] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[AlertChange]:
    """Judges every rule of ``config`` on ``model``'s series in the window ending at ``at``.

    Fires, resolves, notifies and runs actions as described in this module's docstring;
    re-running it on the same window changes nothing. Notifier and action failures are
    recorded on the alert and logged, never raised.

    Args:
        ws: The workspace whose series and alerts to use.
        model: The registered model's name.
        config: An :class:`AlertConfig` or anything :func:`load_rules` reads.
        at: The end of the window just evaluated (UTC if naive).
        notifiers: Notifiers by name replacing the configured ones (a callable works).
        actions: Actions by rule name replacing the rules' own (a callable taking the
            alert, or a mapping such as ``{"command": [...]}``).
        sleep: How to wait between notifier retries (tests pass a recorder).

    Returns:
        One :class:`AlertChange` per rule that fired, stayed firing, resolved or was
        suppressed by its cool-down; rules that are quiet or have no point in the window
        return nothing.
    """
    config = load_rules(config)
    told = dict(config.notifiers)
    told.update({name: build_notifier(name, spec) for name, spec in (notifiers or {}).items()})
    overrides: dict[str, ActionSpec | None] = {}
    for name, spec in (actions or {}).items():
        config.rule(name)  # an action for a rule that does not exist is a mistake
        overrides[name] = parse_action(spec, f"The action given for rule {name!r}")
    repository = MonitorRepository(ws.db)
    at_ms = to_ms(at)
    changes: list[AlertChange] = []
    for rule in config.rules:
        change = _evaluate_rule(ws, repository, model, rule, at_ms)
        if change is None:
            continue
        if change.status in ("fired", "resolved") and change.alert is not None:
            _notify(repository, change, [told[name] for name in rule.notify], sleep)
        action = overrides.get(rule.name, rule.action)
        if change.status == "fired" and action is not None and change.alert is not None:
            change.action = run_action(action, change.alert)
            repository.update_alert(change.alert.alert_id, action=change.action)
        if change.alert is not None and (change.deliveries or change.action):
            change.alert = repository.alert(change.alert.alert_id)
        changes.append(change)
    return changes


def _evaluate_rule(
    ws: Workspace, repository: MonitorRepository, model: str, rule: AlertRule, at_ms: int
) -> AlertChange | None:
    condition = rule.condition
    windows = _window_values(ws, model, rule, at_ms)
    if not windows or windows[0][0] != at_ms:
        return None  # no point in this window: nothing to judge
    value = windows[0][1]
    window_end = from_ms(at_ms)

    def change(status: str, message: str, alert: AlertRecord | None) -> AlertChange:
        return AlertChange(status, rule.name, model, condition.series, rule.severity, value,
                           condition.threshold, window_end, message, alert)  # fmt: skip

    # Newest first; while one is open no other can be created, so an open one is the newest.
    latest = repository.alerts(model=model, rule=rule.name, limit=1)
    if latest and latest[0].state == "firing":
        alert = latest[0]
        if at_ms < alert.window_end:
            return None  # an older window than the one that fired it
        if condition.holds(value) or at_ms == alert.window_end:
            message = (
                f"{rule.name} still firing on {model}: {condition.series} = {value:g} "
                f"(window ending {window_end.isoformat()}; fired at window ending "
                f"{from_ms(alert.window_end).isoformat()})"
            )
            return change("firing", message, alert)
        if not repository.resolve_alert(alert.alert_id):
            return None  # another monitor resolved it (and notified) a moment ago
        message = (
            f"{rule.name} resolved on {model}: {condition.series} = {value:g} no longer "
            f"{condition.op} {condition.threshold:g} (window ending {window_end.isoformat()})"
        )
        return change("resolved", message, repository.alert(alert.alert_id))
    recent = windows[: condition.windows]
    if len(recent) < condition.windows or not all(condition.holds(v) for _, v in recent):
        return None
    if latest and latest[0].window_end >= at_ms:
        return None  # this window (or a later one) was judged already
    over = "" if condition.windows == 1 else f" in each of the last {condition.windows} windows"
    message = (
        f"{rule.name} on {model}: {condition.series} = {value:g} {condition.op} "
        f"{condition.threshold:g}{over} (window ending {window_end.isoformat()})"
    )
    cooldown_ms = rule.cooldown.total_seconds() * 1000
    if latest and at_ms - latest[0].window_end < cooldown_ms:
        return change("suppressed", f"{message}; suppressed by a {rule.cooldown} cool-down", None)
    alert, created = repository.open_alert(
        rule=rule.name, model=model, series=condition.series, severity=rule.severity,
        value=value, threshold=condition.threshold, message=message, window_end=at_ms,
    )  # fmt: skip
    return change("fired" if created else "firing", alert.message, alert)


def _window_values(
    ws: Workspace, model: str, rule: AlertRule, at_ms: int
) -> list[tuple[int, float]]:
    """The series' value per window ending in the last N window lengths up to ``at``,
    newest first, each combined over the window's points (see the module docstring)."""
    condition = rule.condition
    until = from_ms(at_ms)
    newest = _series.points(
        ws, model, condition.series, test=rule.test,
        since=from_ms(at_ms - 1), until=until,
    )  # fmt: skip
    if not newest:
        return []
    found = newest
    if condition.windows > 1:
        length_ms = max(to_ms(p.end) - to_ms(p.start) for p in newest)
        found = _series.points(
            ws, model, condition.series, test=rule.test,
            since=from_ms(at_ms - condition.windows * length_ms), until=until,
        )  # fmt: skip
    by_window: dict[int, list[_series.Point]] = {}
    for point in found:
        by_window.setdefault(to_ms(point.end), []).append(point)
    values = []
    for end in sorted(by_window, reverse=True):
        value = _combine(by_window[end], condition)
        if value is not None:
            values.append((end, value))
    return values


def _combine(points: list[_series.Point], condition: Condition) -> float | None:
    """One value for a window's points: health summed or maxed over server instances per
    model version, then the point that best meets the condition (any point may fire it)."""
    candidates: list[float]
    if condition.kind == "health":
        per_version: dict[int | None, list[float]] = {}
        for point in points:
            if not math.isnan(point.value):
                per_version.setdefault(point.version, []).append(point.value)
        summed = condition.name.lower().startswith(_SUMMED_HEALTH)
        candidates = [sum(v) if summed else max(v) for v in per_version.values()]
    else:
        candidates = [p.value for p in points if not math.isnan(p.value)]
    if not candidates:
        return None
    if condition.op in (">", ">="):
        return max(candidates)
    if condition.op in ("<", "<="):
        return min(candidates)
    return next((v for v in candidates if condition.holds(v)), candidates[0])


def _notify(
    repository: MonitorRepository,
    change: AlertChange,
    notifiers: list[Notifier],
    sleep: Callable[[float], None],
) -> None:
    assert change.alert is not None
    change.deliveries = [deliver(notifier, change, sleep=sleep) for notifier in notifiers]
    if not change.deliveries:
        return
    values: dict[str, Any] = {
        "notify_attempts": change.alert.notify_attempts + sum(d.attempts for d in change.deliveries)
    }
    if any(d.ok for d in change.deliveries):
        values["notified_at"] = int(time.time() * 1000)
    failed = [d for d in change.deliveries if not d.ok]
    if failed:
        values["notify_error"] = f"{change.status}: " + "; ".join(
            f"{d.notifier} failed {d.attempts} time(s): {d.error}" for d in failed
        )
    repository.update_alert(change.alert.alert_id, **values)
