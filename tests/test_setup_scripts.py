"""The README's two commands: ./setup.sh installs what grading needs into a virtual environment (never into a
system Python that forbids it, PEP 668) and shows its progress; ./test.sh adds what only the tests need. The
Python choice is shared by both (scripts/python-env.sh) and runs here for real with Debian's python3."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import grader

CHECKOUT = Path(grader.__file__).resolve().parents[1]
SYSTEM_PYTHON = Path("/usr/bin/python3")


def _system_python() -> Path:
    if not SYSTEM_PYTHON.exists():
        pytest.fail(f"{SYSTEM_PYTHON} is missing: this test shows ./setup.sh on a distribution's own Python\n"
                    "  -> apt-get install -y python3 python3-venv", pytrace=False)
    return SYSTEM_PYTHON


def _choose(folder: Path, how: str, path_first: Path) -> tuple[str, str]:
    """Source scripts/python-env.sh in `folder` with `path_first` at the head of PATH, run `use_python how`, and
    return ($PY, the prefix of the Python it chose)."""
    script = (f"set -euo pipefail; source scripts/python-env.sh; use_python {how}; echo \"PY=$PY\"; "
              "\"$PY\" -c 'import sys; print(\"PREFIX=\" + sys.prefix)'")
    # no pyenv or other python3 before the system's
    env = {"PATH": f"{path_first}:/usr/bin:/bin", "HOME": str(folder), "LANG": "C.UTF-8"}
    done = subprocess.run(["bash", "-c", script], cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    found = dict(line.split("=", 1) for line in done.stdout.splitlines() if line.startswith(("PY=", "PREFIX=")))
    return found["PY"], found["PREFIX"]


@pytest.fixture()
def checkout_copy(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(CHECKOUT / "scripts" / "python-env.sh", tmp_path / "scripts")
    return tmp_path


def test_a_system_python_gets_a_venv_and_is_never_installed_into(checkout_copy: Path) -> None:
    system = _system_python()
    managed = list(Path("/usr/lib").glob("python3*/EXTERNALLY-MANAGED"))
    assert managed, "Debian's python3 marks itself externally managed (PEP 668): the situation this test shows"
    py, prefix = _choose(checkout_copy, "make", SYSTEM_PYTHON.parent)
    assert py == ".venv/bin/python" and Path(prefix) == checkout_copy / ".venv"
    assert (checkout_copy / ".venv" / "pyvenv.cfg").exists()
    # pip works in the venv, where the system's refuses (exit 1, externally-managed-environment)
    refused = subprocess.run([str(system), "-m", "pip", "install", "--dry-run", "--no-index", "nothing-at-all"],
                             capture_output=True, text=True)
    assert refused.returncode != 0 and "externally-managed-environment" in refused.stdout + refused.stderr
    inside = subprocess.run([str(checkout_copy / ".venv/bin/python"), "-m", "pip", "--version"],
                            capture_output=True, text=True)
    assert inside.returncode == 0 and str(checkout_copy / ".venv") in inside.stdout
    # test.sh finds the venv setup.sh made, without making anything
    assert _choose(checkout_copy, "find", SYSTEM_PYTHON.parent) == (py, prefix)


def test_an_active_virtual_environment_is_used_as_it_is(checkout_copy: Path, tmp_path: Path) -> None:
    own = tmp_path / "own-venv"
    subprocess.run([str(_system_python()), "-m", "venv", "--without-pip", str(own)], check=True)
    py, prefix = _choose(checkout_copy, "make", own / "bin")
    assert py == "python3" and Path(prefix) == own
    assert not (checkout_copy / ".venv").exists()


def test_without_a_venv_and_nothing_made_test_sh_uses_python3(checkout_copy: Path) -> None:
    py, prefix = _choose(checkout_copy, "find", SYSTEM_PYTHON.parent)
    assert py == "python3" and prefix == "/usr"
    assert not (checkout_copy / ".venv").exists()


def test_setup_installs_only_what_the_main_job_needs_and_shows_progress() -> None:
    setup = (CHECKOUT / "setup.sh").read_text()
    tests_only = (CHECKOUT / "test.sh").read_text()
    code = "\n".join(line for line in setup.splitlines() if not line.lstrip().startswith("#"))
    for test_only in ("chromium", "[dev]", "keras", "pytest"):
        assert test_only not in code, f"setup.sh installs {test_only}, which only the tests need"
    assert "apt_install chromium" in tests_only and '".[dev]"' in tests_only
    assert "--quiet" not in code and "-q " not in code.replace("-qq", ""), "no silent step"
    assert code.count("--progress-bar on") == 2, "pip shows its download progress"
    steps = re.findall(r'^step "', code, flags=re.M)
    assert len(steps) >= 5, "each long step is announced with its elapsed time"
    assert "use_python make" in code and "use_python find" in tests_only


def test_the_readme_commands_are_the_scripts_and_ci_runs_the_test_one() -> None:
    readme = (CHECKOUT / "README.md").read_text()
    quickstart = readme[readme.index("## Quickstart"):]
    block = quickstart[quickstart.index("```bash"):quickstart.index("```", quickstart.index("```bash") + 3)]
    commands = [line.split("#")[0].strip() for line in block.splitlines()[1:] if line.strip()]
    assert commands == ["./setup.sh", "./test.sh"]
    assert "source .venv/bin/activate" in quickstart
    assert "./test.sh" in (CHECKOUT / ".ci" / "run").read_text()
    for script in ("setup.sh", "test.sh"):
        assert os.access(CHECKOUT / script, os.X_OK), f"{script} is executable"
