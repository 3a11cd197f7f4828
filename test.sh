#!/usr/bin/env bash
# The tests: adds what only the tests need (the dev extra: pytest, import-linter, jsonschema, Ray; and Chromium,
# which renders the reports in the browser tests), then runs pytest -q with any arguments given. The grading
# environments the test kernels use are built by the tests themselves (tests/conftest.py). CI runs this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# The Python ./setup.sh installed into: the active virtual environment, else ./.venv, else python3.
if python3 -c 'import sys; sys.exit(0 if sys.prefix != sys.base_prefix else 1)'; then
    PY=python3
elif [ -x .venv/bin/python ]; then
    PY=.venv/bin/python
else
    PY=python3
fi

if ! "$PY" -c 'import pytest, importlinter, jsonschema, ray' >/dev/null 2>&1; then
    echo "==> installing the test dependencies (the dev extra)"
    "$PY" -m pip install -e ".[dev]" --progress-bar on
fi
if ! command -v chromium >/dev/null 2>&1; then
    echo "==> installing Chromium (the browser tests render the reports in it)"
    as_root apt-get update -qq
    as_root apt-get install -y --no-install-recommends chromium
fi

exec "$PY" -m pytest -q "$@"
