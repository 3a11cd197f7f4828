"""The one error type a user can cause: it says what is wrong, where, and what to do."""

from __future__ import annotations


class GraderError(Exception):
    """A mistake in user input (a file, a spec, an option), never a bug in the grader.

    The CLI prints these without a traceback and exits with code 2.
    """

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None):
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        head = f"{self.where}: {self.what}" if self.where else self.what
        return f"{head}\n  -> {self.fix}" if self.fix else head
