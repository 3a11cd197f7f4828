#!/usr/bin/env bash
# Fresh machine -> ready to grade: system packages, the Python package with its
# grading environment, then the main job on the bundled example.
set -euo pipefail
cd "$(dirname "$0")"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# bubblewrap is the sandbox student code runs in.
if ! command -v bwrap >/dev/null 2>&1; then
    as_root apt-get update -qq
    as_root apt-get install -y -qq bubblewrap
fi

python3 -m pip install --quiet --upgrade pip
python3 -m pip install --quiet -e ".[dev]"

# The main job on the bundled example: the layer table of the course's seed network.
python3 -m grader arch "400x400x3 > c3:32 > c3:64 > c3:128 > c3:256 > c3:512 > mp2 > c1:32 > c3:32 > c3:64 > c3:128 > c3:256 > mp2 > c1:32 > c3:64"
