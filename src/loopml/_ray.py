"""Joining or starting Ray, and letting it go, the same way for every part of loopml that
sends it work."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from types import ModuleType
from typing import Any

from loopml.errors import ConfigError

__all__ = ["connect_ray", "release_ray"]


def connect_ray(
    workers: int | None = None, address: str | None = None, *, missing: str
) -> tuple[ModuleType, bool, int]:
    """Ray, connected: to the running Ray of this process, else to ``address`` or
    ``LOOPML_RAY_ADDRESS`` (a cluster, or ``auto``), else to a local Ray started with
    ``workers`` CPUs (the machine's by default).

    Args:
        workers: How many tasks may run at once; None for every CPU of the cluster.
        address: The Ray to connect to when this process has none yet.
        missing: The error message when Ray is not installed (what to install or use instead).

    Returns:
        The ``ray`` module; whether this call started Ray (the caller then shuts it
        down when done); and the capacity, ``workers`` or else the cluster's CPUs.

    Raises:
        ConfigError: Ray is not installed.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise ConfigError(missing) from None
    started = False
    if not ray.is_initialized():
        address = address or os.environ.get("LOOPML_RAY_ADDRESS") or None
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(
                num_cpus=workers or os.cpu_count() or 1,
                include_dashboard=False,
                log_to_driver=False,
            )
        started = True
    cpus = int(ray.cluster_resources().get("CPU", 1))  # type: ignore[no-untyped-call]
    return ray, started, max(1, workers or cpus)


def release_ray(ray: ModuleType, pending: Iterable[Any], started: bool) -> None:
    """Cancels the ``pending`` tasks (their object refs), then shuts Ray down if
    :func:`connect_ray` ``started`` it."""
    for ref in list(pending):
        with contextlib.suppress(Exception):  # it may have ended meanwhile
            ray.cancel(ref, force=True)
    if started:
        ray.shutdown()
