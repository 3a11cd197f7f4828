"""Code health as tests: ruff and mypy, with the rule sets in pyproject.toml (docs/architecture.md, "Code health"),
find nothing, and ruff looks at our code and never at the fixtures (student and attacker data)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(tool: str, *args: str) -> subprocess.CompletedProcess:
    # Run as a module of this interpreter: found with or without the venv activated, never looked up on PATH.
    if importlib.util.find_spec(tool) is None:
        pytest.fail(f"{tool} is not installed for {sys.executable}: install the dev extra "
                    f"({sys.executable} -m pip install -e '.[dev]'; ./test.sh installs it)")
    return subprocess.run([sys.executable, "-m", tool, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing():
    done = _run("ruff", "check", "--output-format", "concise")
    assert done.returncode == 0, f"ruff check found these (fix them; `ruff check --fix` does the safe ones):\n" \
                                 f"{done.stdout}{done.stderr}"


def test_ruff_checks_our_code_and_not_the_fixtures():
    done = _run("ruff", "check", "--show-files")
    assert done.returncode == 0, done.stderr
    files = {Path(line).resolve().relative_to(ROOT).as_posix() for line in done.stdout.splitlines() if line.strip()}
    for ours in ("grader/api.py", "grader/sandbox/bwrap.py", "tests/conftest.py", "tests/test_code_health.py",
                 "bench/throughput.py", "examples/make_examples.py"):
        assert ours in files, f"ruff does not check {ours}: see [tool.ruff] include in pyproject.toml"
    data = sorted(f for f in files if f.startswith(("tests/fixtures/", "examples/submissions/", "examples/repos/")))
    assert not data, f"ruff checks student or attacker data: {data[:5]}"


def test_mypy_finds_nothing():
    done = _run("mypy")  # what it checks and how strictly: [tool.mypy] in pyproject.toml
    assert done.returncode == 0, f"mypy found these:\n{done.stdout}{done.stderr}"
    assert "Success: no issues found" in done.stdout
