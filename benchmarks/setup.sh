#!/usr/bin/env bash
# Creates (or refreshes) the benchmarks' own virtual environment at benchmarks/.venv:
# loopml from this checkout (editable) plus the peer tools in benchmarks/requirements.txt.
# Safe to run again: an existing venv is reused and pip only installs what is missing.
set -euo pipefail

export MLFLOW_DISABLE_TELEMETRY=true
export DO_NOT_TRACK=1
export RAY_USAGE_STATS_ENABLED=0
export PIP_DISABLE_PIP_VERSION_CHECK=1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
venv="$here/.venv"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    echo "creating $venv with $("$python" --version 2>&1)" >&2
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -e "$root" -r "$here/requirements.txt"
"$venv/bin/python" - <<'PY'
import importlib.metadata as m
for name in ("loopml", "mlflow", "sqlalchemy"):
    print(f"{name} {m.version(name)}")
PY
echo "ready: $venv/bin/python benchmarks/tracking.py" >&2
