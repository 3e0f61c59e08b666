"""Experiment tracking: runs, params, metrics, artifacts, search and autologging."""

from loopml.tracking.run import Run, active_run

__all__ = ["Run", "active_run"]
