#!/usr/bin/env bash
# Fresh machine -> ready to grade: system packages, the Python package with its
# grading environment, MNIST, then the main job on the bundled example class.
set -euo pipefail
cd "$(dirname "$0")"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# bubblewrap is the sandbox student code runs in; chromium renders report.html in the tests.
missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
    as_root apt-get update -qq
    as_root apt-get install -y -qq "${missing[@]}"
fi

python3 -m pip install --quiet --upgrade pip
python3 -m pip install --quiet -e ".[dev]"

# MNIST: $GRADER_DATA or ../shared/data/mnist when present, else downloaded once into the cache.
if [ -z "${GRADER_DATA:-}" ] && [ -d ../shared/data/mnist ]; then
    export GRADER_DATA="$(cd ../shared/data/mnist && pwd)"
fi
python3 -m grader data path >/dev/null 2>&1 || python3 -m grader data fetch
python3 -m grader data verify

# The grading environment student kernels run in (cached by content hash; a no-op when built).
# The shipped rubrics share the default one; a rubric with its own `environment:` is built by name.
python3 -m grader env build
python3 -m grader env build tests/fixtures/handed_in/keras-eip.yaml   # default + keras: the Keras tests' rubric

# The main job: grade the bundled class (evaluate mode: the models each notebook exported are measured).
python3 -m grader examples/submissions --rubric mnist-s3 --mode evaluate
