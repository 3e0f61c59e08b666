"""Monitoring: drift, performance with delayed labels, concept drift, health and alerts.

Everything starts from ``ws.monitor`` (:class:`~loopml.monitoring.monitor.Monitor`):
``drift`` compares any two frames; ``evaluate``/``check``/``run`` judge windows of a
served model's prediction log against the reference profile stored with its version;
``series`` and ``alerts`` read what was recorded. The parts are importable on their own:
:mod:`~loopml.monitoring.drift`, :mod:`~loopml.monitoring.performance`,
:mod:`~loopml.monitoring.detectors`, :mod:`~loopml.monitoring.alerts`,
:mod:`~loopml.monitoring.report`.
"""

from loopml.monitoring.alerts import (
    AlertChange,
    AlertConfig,
    AlertRule,
    evaluate_alerts,
    load_rules,
)
from loopml.monitoring.drift import DriftReport, DriftTest
from loopml.monitoring.monitor import Monitor, WindowResult, parse_window
from loopml.monitoring.notify import register_action_kind
from loopml.monitoring.series import Point

__all__ = [
    "AlertChange",
    "AlertConfig",
    "AlertRule",
    "DriftReport",
    "DriftTest",
    "Monitor",
    "Point",
    "WindowResult",
    "evaluate_alerts",
    "load_rules",
    "parse_window",
    "register_action_kind",
]
