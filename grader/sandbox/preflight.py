"""Before a class is graded: start one trivial sandbox, so that a machine that cannot sandbox stops the batch with
one message, instead of every student being marked not graded one after another."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Optional

from grader.errors import GraderError
from grader.sandbox.bwrap import SandboxSpec
from grader.sandbox.failure import HostFailure, exception_failure, sandbox_failure
from grader.sandbox.run import run_sandboxed
from grader.settings import RunLimits

_SECONDS = 60.0  # the interpreter starting in an empty sandbox; seconds on a loaded machine, never a minute


def check_sandbox_starts(limits: RunLimits) -> None:
    """Run `python -c pass` in a sandbox with the class's limits; GraderError saying what is wrong and what to do
    when the sandbox cannot start (bubblewrap refused, a cgroup could not be made)."""
    with tempfile.TemporaryDirectory(prefix="mnist-grader-preflight-") as tmp:
        spec = SandboxSpec.for_run(limits, scratch=Path(tmp), wall_seconds=_SECONDS)
        failure: Optional[HostFailure]
        try:
            result = run_sandboxed([sys.executable, "-P", "-c", "pass"], spec)
        except GraderError:
            raise
        except OSError as exc:
            failure = exception_failure(exc)
        else:
            failure = sandbox_failure(result, record_written=False)
            if failure is None and result.returncode != 0:  # it started, and still could not run `pass`
                said = (result.stderr or result.stdout).strip()[-300:] or "no output"
                failure = HostFailure("a trivial command failed in the sandbox", f"exit status "
                                      f"{result.returncode if not result.timed_out else 'none: it timed out'}: {said}",
                                      "fix the machine and run again (`grade check` on one notebook shows more)")
    if failure is not None:
        raise GraderError(f"nothing was graded: the sandbox cannot start on this machine: {failure.reason} "
                          f"({failure.detail})", where="the sandbox check before grading", fix=failure.fix)
