"""The machine's failures, told apart from the student's: a sandbox that never started, a cgroup that could not be
made, a grader that raised. Pure: it reads a `SandboxResult` (or an exception) and says what went wrong and what
the person running the grader does about it.

bubblewrap reports its own failures on stderr as `bwrap: ...` and exits with status 1 before it runs anything.
Student code shares that stderr and could print the same words, so all of these must hold: no record was
written, the status is exactly 1 (the grader's runner exits 0, or 128+N when a signal kills it; an exception
that escapes it exits 1 but prints a traceback), nothing was printed on stdout, and every line on stderr is
bubblewrap's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from grader.sandbox.run import SandboxResult

CGROUP_ROOT = Path("/sys/fs/cgroup")
_NAMESPACES = ("namespace", "uid map", "uid_map", "setgroups", "unshare", "clone")
_MISSING_PATH = ("Can't find source path", "execvp")
_SHOWN = 300


@dataclass(frozen=True)
class HostFailure:
    """Why the grader (not the submission) failed, and what the person running it does about it."""

    reason: str  # short, for a summary line: "bubblewrap could not create namespaces"
    detail: str  # what the machine said
    fix: str

    @property
    def message(self) -> str:
        return f"{self.reason} ({self.detail}) — {self.fix}"


def sandbox_failure(result: SandboxResult, *, record_written: bool) -> Optional[HostFailure]:
    """The machine's failure when bubblewrap refused to start the command; None when the command ran."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if (record_written or result.returncode != 1 or result.stdout.strip() or not lines
            or not all(line.startswith("bwrap:") for line in lines)):
        return None
    line = lines[0][:_SHOWN]
    if any(word in line for word in _NAMESPACES):
        return HostFailure("bubblewrap could not create namespaces", line,
                           "fix the machine and run again: allow unprivileged user namespaces (sysctl "
                           "kernel.unprivileged_userns_clone=1; on Ubuntu 24.04 and later "
                           "kernel.apparmor_restrict_unprivileged_userns=0 or an AppArmor profile for bwrap), or, "
                           "in a container, start it with user namespaces allowed")
    if any(word in line for word in _MISSING_PATH):
        return HostFailure("the sandbox could not find a program or folder it needs", line,
                           "fix the machine and run again: the grading environment or the staged data is missing "
                           "(`grade env build RUBRIC` builds the environment, `grade data verify` checks MNIST)")
    return HostFailure("bubblewrap could not start the sandbox", line,
                       "fix the machine and run again (`bwrap --ro-bind / / true` as this user shows the same "
                       "error)")


def environment_failure(environment: Optional[Path]) -> Optional[HostFailure]:
    """The grading environment's interpreter is gone (a venv deleted or moved mid-class); None when it is there.
    Checked on the host before a run: the kernel that cannot start would otherwise read as the notebook's crash."""
    if environment is None:
        return None
    python = Path(environment) / "bin" / "python"
    if os.access(python, os.X_OK):
        return None
    return HostFailure("the grading environment is missing", f"no interpreter at {python}",
                       "fix the machine and run again: `grade env build RUBRIC` builds it again")


def exception_failure(exc: BaseException) -> HostFailure:
    """The grader raised while grading one submission: a cgroup it could not make, else a bug of the grader."""
    said = f"{exc.__class__.__name__}: {exc}"[:_SHOWN]
    filename = getattr(exc, "filename", None)
    if isinstance(exc, OSError) and filename and Path(str(filename)).is_relative_to(CGROUP_ROOT):
        return HostFailure("a cgroup for the job could not be made", said,
                           "fix the machine and run again: grade as the user that owns the grader's cgroups, or "
                           "give this user a delegated cgroup subtree (systemd-run --user --scope -p Delegate=yes)")
    return HostFailure("the grader raised an error", said,
                       "a bug in the grader: report it with this message, then grade this student again")
