#!/usr/bin/env bash
# Fresh machine -> ready to grade: bubblewrap, a virtual environment with the package and its grading
# environment, MNIST, then the main job on the bundled example class. Only what grading needs: ./test.sh adds
# what only the tests need (the dev extra, Chromium).
set -euo pipefail
cd "$(dirname "$0")"

started=$SECONDS
step() { printf '\n==> [%dm%02ds] %s\n' $(( (SECONDS - started) / 60 )) $(( (SECONDS - started) % 60 )) "$*"; }
source scripts/python-env.sh

# bubblewrap is the sandbox student code runs in.
if ! command -v bwrap >/dev/null 2>&1; then
    step "installing bubblewrap (the sandbox student code runs in)"
    apt_install bubblewrap
fi

# Python: the virtual environment that is active, else ./.venv (made here).
use_python make
step "installing into $("$PY" -c 'import sys; print(sys.prefix)')"

step "installing the package and its dependencies (PyTorch is about 5 GB the first time)"
"$PY" -m pip install --upgrade pip --progress-bar on
"$PY" -m pip install -e . --progress-bar on

# MNIST: $GRADER_DATA or ../shared/data/mnist when present, else downloaded once into the cache.
if [ -z "${GRADER_DATA:-}" ] && [ -d ../shared/data/mnist ]; then
    export GRADER_DATA="$(cd ../shared/data/mnist && pwd)"
fi
step "MNIST"
"$PY" -m grader data path >/dev/null 2>&1 || "$PY" -m grader data fetch
"$PY" -m grader data verify

# The grading environment student kernels run in (cached by content hash; a no-op when built).
step "the grading environment student kernels run in"
"$PY" -m grader env build

# The main job: grade the bundled class (evaluate mode: the models each notebook exported are measured).
step "the main job: grading examples/submissions"
"$PY" -m grader examples/submissions --rubric mnist-s3 --mode evaluate

step "done"
if [ "$PY" != python3 ]; then
    echo "The grader is installed in .venv: run 'source .venv/bin/activate' to have the 'grade' command on PATH,"
    echo "or call it as .venv/bin/grade. The tests: ./test.sh"
fi
