"""`grade gradescope build`: the autograder zip Gradescope accepts (pure but for writing the zip).

Gradescope unpacks the zip into /autograder/source, runs `setup.sh` once when it builds the image (as
root, with network), then `run_autograder` for each submission. Ours holds:

    setup.sh           installs bubblewrap (the sandbox) and this package with its dependencies, fetches MNIST
    run_autograder     python3 -m grader.gradescope.run --root "${AUTOGRADER_ROOT:-/autograder}"
    rubric.yaml        the rubric, as loaded and checked here
    config.json        top-level visibility of the results
    package/           this grader's source and pyproject.toml, installed by setup.sh
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import grader
from grader.errors import GraderError
from grader.report.gradescope import VISIBILITIES

SETUP = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image.
set -euo pipefail
apt-get update
apt-get install -y --no-install-recommends bubblewrap python3 python3-pip python3-venv
python3 -m pip install --upgrade pip
python3 -m pip install /autograder/source/package
# MNIST into the grader's cache now: run_autograder has no network on Gradescope.
python3 -m grader data fetch
# The grading environment the notebooks run in (the rubric's environment:), built while there is a network.
python3 -m grader env build /autograder/source/rubric.yaml
"""

RUN = """#!/usr/bin/env bash
# Gradescope runs this for every submission; AUTOGRADER_ROOT lets tests use a temporary layout.
set -euo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
exec "${GRADER_PYTHON:-python3}" -m grader.gradescope.run --root "$ROOT"
"""


def _package_files() -> list[tuple[Path, str]]:
    """(file, name in the zip) for the grader's source and its pyproject.toml."""
    package = Path(grader.__file__).parent
    pyproject = package.parent / "pyproject.toml"
    if not pyproject.is_file():
        raise GraderError("this grader was installed without its source tree, so it cannot be packed for Gradescope",
                          where=str(package), fix="run `grade gradescope build` from a checkout (pip install -e .)")
    files = [(pyproject, "package/pyproject.toml")]
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".j2", ".html", ".css"):
            files.append((path, f"package/grader/{path.relative_to(package).as_posix()}"))
    return files


def build_autograder(rubric_path: Path, out: Path, *, visibility: str = "visible") -> Path:
    """Write the autograder zip for the rubric at `rubric_path` (a file, already loaded and checked)."""
    if visibility not in VISIBILITIES:
        raise GraderError(f"visibility {visibility!r} is not one of {', '.join(VISIBILITIES)}",
                          where="--visibility", fix="e.g. --visibility after_due_date")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in (("setup.sh", SETUP), ("run_autograder", RUN)):
            info = zipfile.ZipInfo(name, (2026, 1, 1, 0, 0, 0))
            info.external_attr = 0o100755 << 16  # executable: Gradescope runs both directly
            zf.writestr(info, text, zipfile.ZIP_DEFLATED)
        zf.writestr("rubric.yaml", Path(rubric_path).read_text(encoding="utf-8"))
        zf.writestr("config.json", json.dumps({"visibility": visibility}, indent=2) + "\n")
        for path, name in _package_files():
            zf.write(path, name)
    return out
