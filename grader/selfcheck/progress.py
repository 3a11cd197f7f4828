"""The one line a self-check updates while it runs, and the one place its score card is shown.

In a notebook's kernel (Jupyter, VS Code, Colab: any ipykernel) the line is a display updated in place, and
the finished card replaces it, so the cell holds one output. On a terminal it is one line rewritten with `\\r`.
Anywhere else nothing is written. Never an escape code: a kernel's FORCE_COLOR says nothing about its output.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from grader.selfcheck.result import CheckResult


def _shell() -> Any:
    """The running IPython shell, without importing IPython where nothing has."""
    ipython = sys.modules.get("IPython")
    return ipython.get_ipython() if ipython is not None else None


def in_kernel() -> bool:
    return getattr(_shell(), "kernel", None) is not None


def bundle(result: CheckResult) -> dict[str, str]:
    return {"text/plain": str(result), "text/html": result._repr_html_()}


def show_once(result: CheckResult) -> None:
    """Show the card unless `check()` already showed it in this cell (its return value, displayed again as the
    cell's value, would be a second copy); in a later cell `r` shows it again."""
    shell = _shell()
    if shell is not None and result.shown_in is not None and result.shown_in == shell.execution_count:
        return
    from IPython.display import display

    display(bundle(result), raw=True)


class ProgressLine:
    """`update("running the notebook")` while the check runs; `finish(result)` once it is over."""

    def __init__(self, label: str):
        self.label = label
        self.started = time.monotonic()
        self.shown = ""
        self.handle: Any = None
        self.terminal = not in_kernel() and sys.stderr.isatty()
        if in_kernel():
            from IPython.display import display

            self.handle = display({"text/plain": f"{label} ..."}, raw=True, display_id=True)

    def update(self, doing: str) -> None:
        line = f"{self.label}: {doing} ({time.monotonic() - self.started:.0f} s)"
        if line == self.shown:
            return
        if self.handle is not None:
            self.handle.update({"text/plain": line}, raw=True)
        elif self.terminal:
            sys.stderr.write("\r" + line.ljust(len(self.shown)))
            sys.stderr.flush()
        self.shown = line

    def finish(self, result: Optional[CheckResult]) -> None:
        """The card in the line's place (a notebook), or the line cleared (a terminal). Without a result (the
        check raised) the line says so, and the error follows it."""
        if self.handle is not None:
            if result is None:
                self.handle.update({"text/plain": f"{self.label}: stopped (the error follows)"}, raw=True)
                return
            self.handle.update(bundle(result), raw=True)
            result.shown_in = _shell().execution_count
        elif self.terminal and self.shown:
            sys.stderr.write("\r" + " " * len(self.shown) + "\r")
            sys.stderr.flush()
