# One place for the project's commands; README.md and .ci/run call these.
VENV ?= .venv
PY := $(VENV)/bin/python
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: demo test check lint install install-test

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

install: $(PY)
	$(PY) -m pip install -q -e .

# Page tests drive Debian's Chromium (Playwright cannot download its own browser here).
install-test: $(PY)
	$(PY) -m pip install -q -e '.[test]'
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

demo: install
	$(VENV)/bin/loopml demo

lint:
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy

# The whole suite: lint, types, then every test (slow ones included).
test: install-test lint
	$(PY) -m pytest

check: test
