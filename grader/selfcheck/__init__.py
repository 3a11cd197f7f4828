"""`check()`: a student's self-check from a notebook cell, shown once as a score card, handed back as a result.

Locally it runs `grade check --json` in its own process (the sandbox, never this kernel: `local.py`); with
`server=` it sends the notebook, or its repository's link, to the course's `grade serve`
(`grader.selfcheck_remote`), which runs static checks and dry runs and records no grade. Either way the
answer becomes a `CheckResult` (`result.py`) and its card (`card.py`) replaces the progress line
(`progress.py`). Which notebook: `locate.py`.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from pathlib import Path

from grader.errors import GraderError
from grader.selfcheck.locate import Notebook, notebook_to_check
from grader.selfcheck.progress import ProgressLine
from grader.selfcheck.result import DEPTH_WORDS, DEPTHS, CheckItem, CheckResult

__all__ = ["check", "CheckResult", "CheckItem"]

SERVER_DEPTHS = ("static", "dry-run")  # a server's self-check never trains: no full run, no grade recorded
SERVER_TIMEOUT_S = 600.0
LINKS = ("https://", "http://", "git@")


def check(notebook: str | os.PathLike | None = None, *, rubric: str = "mnist-s3", depth: str = "dry-run",
          server: str | None = None, key: str | None = None) -> CheckResult:
    """Self-check from a notebook cell: `from grader import check; check()`. Save the notebook first: what is
    checked is the saved file (in Colab, what the front end holds).

    `depth`: "static" (nothing runs, about a second), "dry-run" (the notebook runs in the sandbox without its
    real training: seconds) or "full" (trained and measured, as the instructor's grading does).
    `notebook`: a path (or the repository's folder); left out, the notebook this kernel belongs to.
    `server`: the course's grader URL, for where the sandbox cannot run (Colab): the notebook, or a repository
    link given as `notebook`, is checked there with `key`, the assignment's self-check key (static or dry run).

    In a notebook the score card shows once, in place of the progress line; the result is returned:
    `.passed` (None when this depth cannot tell), `.score`, `.max_score`, `.items`.
    """
    if depth not in DEPTHS:
        raise GraderError(f"depth {depth!r} is not one of {', '.join(DEPTHS)}", where="check()",
                          fix='use check(depth="static"), "dry-run" or "full"')
    if server is not None and depth not in SERVER_DEPTHS:
        raise GraderError(f"a server's self-check runs only {' and '.join(SERVER_DEPTHS)}, not {depth!r}",
                          where=f"check(server={server!r})", fix='use depth="dry-run" or depth="static"')
    link = str(notebook) if server is not None and str(notebook).startswith(LINKS) else None
    with nullcontext(Notebook(source=link, shown=link)) if link else notebook_to_check(notebook) as found:
        where = f" on {server}" if server is not None else ""
        line = ProgressLine(f"checking {found.shown}{where} ({DEPTH_WORDS[depth]})")
        try:
            if server is None:
                from grader.selfcheck.local import run_check

                assert isinstance(found.source, Path), "without a server the notebook is a file here"
                output = run_check(found.source, rubric=rubric, depth=depth, progress=line.update)
                result = CheckResult.from_check(output, notebook=found.shown, depth=depth)
            else:
                from grader.selfcheck_remote import submit

                line.update(f"sent to {server}, waiting for its answer")
                results = submit(found.source, server, key=key, depth=depth, rubric=rubric,
                                 timeout=SERVER_TIMEOUT_S)
                result = CheckResult.from_results(results, notebook=found.shown, depth=depth, rubric=rubric)
        except BaseException:
            line.finish(None)
            raise
    line.finish(result)
    return result
