#!/usr/bin/env bash
# Fresh machine -> ready to grade: bubblewrap, a virtual environment with the package and its grading
# environment, MNIST, then the main job on the bundled example class. Only what grading needs: ./test.sh adds
# what only the tests need (the dev extra, Chromium).
set -euo pipefail
cd "$(dirname "$0")"

started=$SECONDS
step() { printf '\n==> [%dm%02ds] %s\n' $(( (SECONDS - started) / 60 )) $(( (SECONDS - started) % 60 )) "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() { as_root apt-get update -qq && as_root apt-get install -y --no-install-recommends "$@"; }

# bubblewrap is the sandbox student code runs in.
if ! command -v bwrap >/dev/null 2>&1; then
    step "installing bubblewrap (the sandbox student code runs in)"
    apt_install bubblewrap
fi

# Python: the virtual environment that is active, else ./.venv (made here). A system Python that forbids pip
# installs (PEP 668, Debian 12+ and Ubuntu 23.04+) is never installed into.
if python3 -c 'import sys; sys.exit(0 if sys.prefix != sys.base_prefix else 1)'; then
    PY=python3
    step "using the active virtual environment $(python3 -c 'import sys; print(sys.prefix)')"
else
    if [ ! -x .venv/bin/python ]; then
        step "making the virtual environment .venv"
        if ! python3 -m venv .venv 2>/dev/null; then
            rm -rf .venv
            version=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
            step "installing python${version}-venv (this Python has no venv module)"
            apt_install "python${version}-venv"
            python3 -m venv .venv
        fi
    fi
    PY=.venv/bin/python
fi

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
