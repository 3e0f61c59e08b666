"""What a run records about where it came from: the git state of its code and its environment.

Both are read in-process (no pip subprocess): the environment from the installed
distributions' metadata, the code version from ``git`` in the current directory. Each
is cached briefly per process, so creating many runs stays cheap.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

__all__ = ["CodeVersion", "Environment", "code_version", "environment"]

_CODE_TTL_SECONDS = 5.0
_code_cache: dict[Path, tuple[float, CodeVersion | None]] = {}


@dataclass(frozen=True)
class CodeVersion:
    """The git commit of the code, whether the tree was dirty, and the diff if it was."""

    commit: str
    dirty: bool
    diff: bytes


@dataclass(frozen=True)
class Environment:
    """The Python version, platform and installed distributions of a process."""

    environment_id: str
    python_version: str
    platform: str
    packages: dict[str, str]

    def packages_json(self) -> str:
        return json.dumps(self.packages, sort_keys=True)


def code_version(directory: Path | None = None) -> CodeVersion | None:
    """The git state of ``directory`` (default: the current one), or None outside a repository."""
    where = (directory or Path.cwd()).resolve()
    cached = _code_cache.get(where)
    if cached and time.monotonic() - cached[0] < _CODE_TTL_SECONDS:
        return cached[1]
    found = _read_git(where)
    _code_cache[where] = (time.monotonic(), found)
    return found


def _read_git(where: Path) -> CodeVersion | None:
    def git(*args: str) -> bytes:
        return subprocess.run(
            # --no-optional-locks: never take .git/index.lock from under the user's own git.
            ["git", "--no-optional-locks", "-C", str(where), *args],
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout

    try:
        commit = git("rev-parse", "HEAD").decode().strip()
        status = git("status", "--porcelain", "--untracked-files=no")
        diff = git("diff", "HEAD", "--binary") if status.strip() else b""
    except (OSError, subprocess.SubprocessError):
        return None
    return CodeVersion(commit=commit, dirty=bool(status.strip()), diff=diff)


@functools.cache
def environment() -> Environment:
    """This process's environment (distributions are read once per process)."""
    packages: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            packages[name.lower().replace("_", "-")] = dist.version
    python_version = platform.python_version()
    machine = f"{platform.system()}-{platform.machine()} ({sys.implementation.name})"
    digest = hashlib.sha256(
        json.dumps([python_version, machine, packages], sort_keys=True).encode()
    ).hexdigest()
    return Environment(digest, python_version, machine, dict(sorted(packages.items())))
