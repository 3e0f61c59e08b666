"""What every benchmark script prints and reports the same way (run as scripts, they
import this from their own folder)."""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any


def say(message: str) -> None:
    """A progress line on stderr (stdout carries the JSON result)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def summary(samples: list[float]) -> dict[str, Any]:
    """Repeats as the JSON reports them: the median, the range and every sample."""
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "samples": samples,
    }


def mb(value: float) -> float:
    return round(value / (1 << 20), 1)
