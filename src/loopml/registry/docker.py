"""A Docker build context for a registered version: a slim Python image that runs
``loopml serve`` on the version's bundle.

The context holds the verified bundle, ``requirements.txt`` (loopml plus the bundle's
pinned requirements), a ``wheels/`` folder with loopml itself when it is not installed
from an index (a source checkout), the ``Dockerfile`` and an ``entrypoint.sh``. Nothing
in it needs the workspace: the image serves the bundle as it was registered.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from loopml.errors import ConfigError, ConflictError

if TYPE_CHECKING:
    from loopml.registry.registry import ModelVersion
    from loopml.workspace import Workspace

__all__ = ["PORT", "write_context"]

PORT = 8080
_DOCKERFILE = """\
# Built by `loopml models export {name} {version} --format docker`.
FROM python:{python}-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \\
    LOOPML_HOME=/var/lib/loopml DO_NOT_TRACK=1 MLFLOW_DISABLE_TELEMETRY=true
WORKDIR /srv
COPY requirements.txt ./
COPY wheels/ ./wheels/
RUN pip install --no-cache-dir --find-links ./wheels -r requirements.txt
COPY {name}/ ./{name}/
COPY entrypoint.sh ./
EXPOSE {port}
HEALTHCHECK CMD python -c "import urllib.request; \\
urllib.request.urlopen('http://127.0.0.1:{port}/health/ready')"
ENTRYPOINT ["sh", "./entrypoint.sh"]
"""
# Options after the image name (docker run IMAGE --workers 2) reach loopml serve.
_ENTRYPOINT = """\
#!/bin/sh
exec loopml serve ./{name} --host "${{LOOPML_SERVE_HOST:-0.0.0.0}}" \\
    --port "${{LOOPML_SERVE_PORT:-{port}}}" "$@"
"""


def write_context(workspace: Workspace, version: ModelVersion, out: Path) -> Path:
    """Writes the build context of ``version`` into ``out`` (new or empty)."""
    if out.exists() and any(out.iterdir()):
        raise ConflictError(f"{out} already holds files; export to a new folder.")
    bundle = workspace.registry.local_bundle(version)
    out.mkdir(parents=True, exist_ok=True)
    # The folder's name is the served model's name (/models/<name>/predict).
    shutil.copytree(bundle, out / version.name)
    (out / "wheels").mkdir()
    loopml_requirement = _loopml_requirement(out / "wheels")
    pins = (bundle / "requirements.txt").read_text().split()
    # loopml's own pin comes from its wheel or index; the bundle's other pins stay exact.
    others = [p for p in pins if p.split("==")[0].lower() != "loopml"]
    (out / "requirements.txt").write_text("\n".join([loopml_requirement, *others]) + "\n")
    python = ".".join(platform.python_version_tuple()[:2])
    (out / "Dockerfile").write_text(
        _DOCKERFILE.format(name=version.name, version=version.version, python=python, port=PORT)
    )
    entrypoint = out / "entrypoint.sh"
    entrypoint.write_text(_ENTRYPOINT.format(port=PORT, name=version.name))
    entrypoint.chmod(0o755)
    (out / ".dockerignore").write_text("**/__pycache__\n")
    return out


def _loopml_requirement(wheels: Path) -> str:
    """``loopml==X`` from an index, or a wheel built from the checkout it is installed from."""
    distribution = importlib.metadata.distribution("loopml")
    direct = distribution.read_text("direct_url.json")
    source = json.loads(direct).get("url", "") if direct else ""
    if not source.startswith("file://"):
        return f"loopml=={distribution.version}"
    folder = source.removeprefix("file://")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels), folder],
        capture_output=True,
        text=True,
    )
    if built.returncode != 0:
        raise ConfigError(
            f"Could not build a loopml wheel from {folder} for the image: "
            f"{built.stderr.strip()[-500:]}"
        )
    return f"loopml=={distribution.version}"
