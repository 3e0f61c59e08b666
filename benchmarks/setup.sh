#!/usr/bin/env bash
# Creates (or refreshes) the benchmarks' own virtual environment at benchmarks/.venv:
# loopml from this checkout (editable) plus the peer tools in benchmarks/requirements.txt.
# data.py also needs pandera there, and Great Expectations in a venv of its own,
# benchmarks/.venv-gx (it needs pandas < 3; git-ignored by the root .venv-*/ rule).
# Safe to run again: an existing venv is reused and pip only installs what is missing.
set -euo pipefail

export MLFLOW_DISABLE_TELEMETRY=true
export DO_NOT_TRACK=1
export RAY_USAGE_STATS_ENABLED=0
export GX_ANALYTICS_ENABLED=false
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

# data.py: pandera beside loopml, Great Expectations 1.x in its own venv (pandas < 3).
pandera_pin="pandera==0.35.0"
gx_pins=("great_expectations==1.24.1" "pandas<3" "pyarrow")
gx_venv="$here/.venv-gx"
"$venv/bin/python" -m pip install --quiet "$pandera_pin"
if [ ! -x "$gx_venv/bin/python" ]; then
    echo "creating $gx_venv with $("$python" --version 2>&1)" >&2
    "$python" -m venv "$gx_venv"
fi
"$gx_venv/bin/python" -m pip install --quiet --upgrade pip
"$gx_venv/bin/python" -m pip install --quiet "${gx_pins[@]}"
"$venv/bin/python" -c 'import importlib.metadata as m; print("pandera", m.version("pandera"))'
"$gx_venv/bin/python" - <<'PY'
import importlib.metadata as m
for name in ("great_expectations", "pandas"):
    print(f"{name} {m.version(name)} (benchmarks/.venv-gx)")
PY
# serving.py drives both model servers with wrk (Debian package), a C load generator.
command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null)
echo "ready: $venv/bin/python benchmarks/tracking.py" >&2
echo "ready: $venv/bin/python benchmarks/data.py" >&2
echo "ready: $venv/bin/python benchmarks/serving.py" >&2

# drift.py: Evidently 0.7.23 in a venv of its own, benchmarks/.venv-evidently (it needs
# pandas < 3; git-ignored by the root .venv-*/ rule). DO_NOT_TRACK (set above) turns off
# its usage telemetry; EVIDENTLY_DISABLE_TELEMETRY is set too, for good measure.
export EVIDENTLY_DISABLE_TELEMETRY=1
evidently_pins=("evidently==0.7.23" "pandas<3" "pyarrow")
evidently_venv="$here/.venv-evidently"
if [ ! -x "$evidently_venv/bin/python" ]; then
    echo "creating $evidently_venv with $("$python" --version 2>&1)" >&2
    "$python" -m venv "$evidently_venv"
fi
"$evidently_venv/bin/python" -m pip install --quiet --upgrade pip
"$evidently_venv/bin/python" -m pip install --quiet "${evidently_pins[@]}"
"$evidently_venv/bin/python" - <<'PY'
import importlib.metadata as m
for name in ("evidently", "pandas"):
    print(f"{name} {m.version(name)} (benchmarks/.venv-evidently)")
PY
echo "ready: $venv/bin/python benchmarks/drift.py" >&2
