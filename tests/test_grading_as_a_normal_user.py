"""The README's class graded by a real unprivileged user, on a machine where root has graded before: same scores.

Root grades first (its cgroup parents and caches then exist, as on a shared machine). The user (made with useradd
when the tests run as root, removed afterwards) gets its own copy of the checkout, its own cache (HOME,
XDG_CACHE_HOME), its own copy of MNIST ($GRADER_DATA), builds its own grading environment with `grade env build`,
and grades the class. It never fails for want of root: a test that cannot run this way fails, saying why.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import grader
from tests.unprivileged import User, unprivileged_user

pytestmark = pytest.mark.usefixtures("bwrap")

CHECKOUT = Path(grader.__file__).resolve().parents[1]
GRADE = ["-m", "grader", "examples/submissions", "--rubric", "mnist-s3", "--mode", "evaluate", "--jobs", "1"]
_NOT_COPIED = shutil.ignore_patterns(".git", "__pycache__", "grading-results", ".pytest_cache", "*.egg-info")


@pytest.fixture
def user_dir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="mnist-grader-user-"))  # any user may enter it; pytest's tmp_path is 0700
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def gradebook(folder: Path) -> dict[str, dict[str, str]]:
    with open(folder / "gradebook.csv", newline="") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def _as(user: User, argv: list[str], env: dict[str, str], cwd: Path, what: str) -> float:
    start = time.monotonic()
    run = user.run([sys.executable, *argv], env=env, cwd=cwd, timeout=1200)
    seconds = time.monotonic() - start
    assert run.returncode == 0, (f"{what} as {user.name} (uid {user.uid}) failed ({run.returncode}):\n"
                                 f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
    return seconds


def test_a_normal_user_grades_the_bundled_class_with_roots_scores(real_mnist_dir: Path, tmp_path: Path,
                                                                  user_dir: Path) -> None:
    # Root (or whoever runs the tests) first: its cgroups and caches are on the machine when the user comes.
    start = time.monotonic()
    first = subprocess.run([sys.executable, *GRADE, "--out", str(tmp_path / "first")], cwd=CHECKOUT,
                           capture_output=True,
                           text=True, timeout=1200, env={**os.environ, "GRADER_DATA": str(real_mnist_dir)})
    first_seconds = time.monotonic() - start
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]

    home = user_dir / "home"
    with unprivileged_user(home) as user:
        checkout, mnist = home / "checkout", home / "mnist"
        shutil.copytree(CHECKOUT, checkout, ignore=_NOT_COPIED, symlinks=True)
        mnist.mkdir()
        for source in real_mnist_dir.iterdir():
            if source.is_file():
                shutil.copy(source, mnist / source.name)
        for path in (home, *home.rglob("*")):
            os.chown(path, user.uid, user.gid, follow_symlinks=False)
        env = {"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "GRADER_DATA": str(mnist),
               **{k: v for k, v in os.environ.items() if k.startswith("PIP_") or k == "CI"}}
        build_seconds = _as(user, ["-m", "grader", "env", "build", "mnist-s3"], env, checkout, "grade env build")
        grade_seconds = _as(user, [*GRADE, "--out", str(home / "results")], env, checkout, "grading the class")
        theirs = gradebook(home / "results")
    ours = gradebook(tmp_path / "first")
    print(f"\nfirst grading (uid {os.geteuid()}) {first_seconds:.1f} s; as uid {user.uid}: "
          f"env build {build_seconds:.1f} s, "
          f"grading {grade_seconds:.1f} s")
    assert len(ours) == 6 and set(ours) == set(theirs)
    for student, row in ours.items():
        assert theirs[student] == row, (f"student {student}: uid {os.geteuid()} gave {row}, "
                                        f"uid {user.uid} gave {theirs[student]}")
    assert sum(row["passed"] == "TRUE" for row in theirs.values()) == 1
