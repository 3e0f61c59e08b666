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


# -- memory of the measuring process, from /proc --------------------------------------
def proc_status(field: str, pid: int | str = "self") -> int:
    """A field of /proc/PID/status in bytes (VmRSS, VmHWM: the peak); 0 when the process
    is gone or has no such field."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def release_memory() -> int:
    """Hands memory freed so far back to the system (Arrow's pool, malloc), so that a
    timed step cannot reuse it unseen; returns the resident size then."""
    import contextlib
    import ctypes
    import gc

    gc.collect()
    if "pyarrow" in sys.modules:
        sys.modules["pyarrow"].default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return proc_status("VmRSS")


def reset_peak() -> None:
    """Sets this process's peak (VmHWM) back to its current resident size (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def without_network(isolate: bool = True) -> list[str]:
    """The command prefix that runs a child in a network namespace of its own (so that
    nothing it imports can phone home), or [] where ``unshare`` is missing or refused."""
    import shutil
    import subprocess

    if not isolate or not shutil.which("unshare"):
        return []
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True)
    return ["unshare", "--net", "--"] if probe.returncode == 0 else []
