#!/usr/bin/env bash
# The tests: adds what only the tests need (the dev extra: pytest, import-linter, jsonschema, Ray, psycopg, ruff, mypy;
# Chromium, which renders the reports in the browser tests; PostgreSQL's server, which the PostgreSQL store's tests
# start), then runs pytest -q with any arguments given. The grading environments the test kernels use are built by the
# tests themselves (tests/conftest.py). CI runs this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")"

source scripts/python-env.sh
use_python find   # the Python ./setup.sh installed into

if ! "$PY" -c 'import pytest, importlinter, jsonschema, ray, psycopg, ruff, mypy' >/dev/null 2>&1; then
    echo "==> installing the test dependencies (the dev extra)"
    "$PY" -m pip install -e ".[dev]" --progress-bar on
fi
if ! command -v chromium >/dev/null 2>&1; then
    echo "==> installing Chromium (the browser tests render the reports in it)"
    apt_install chromium
fi
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
    echo "==> installing PostgreSQL (the PostgreSQL store's tests start a real server in a temporary folder)"
    apt_install postgresql
fi

exec "$PY" -m pytest -q "$@"
