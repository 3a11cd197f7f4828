"""Python source to a syntax tree, safely from any thread.

CPython 3.11's AST builder keeps its recursion counter in state shared by the whole interpreter, so two threads
parsing at once (a class graded by the local pool's threads) can fail with `SystemError: AST constructor recursion
depth mismatch` (python/cpython gh-106905), which would turn a good submission into a grader failure. Every parse
in the grader goes through here, one at a time; parsing a notebook's cells takes milliseconds.
"""

from __future__ import annotations

import ast
import threading
import traceback

_LOCK = threading.Lock()


def parse(source: str) -> ast.Module:
    """`ast.parse(source)`, serialised across threads; raises what ast.parse raises (SyntaxError, ValueError, ...)."""
    with _LOCK:
        return ast.parse(source)


def format_exc() -> str:
    """`traceback.format_exc()` under the same lock: on 3.11 formatting a traceback parses its source lines (to
    place the `^^^` marks), so a thread formatting one would race the threads that parse."""
    with _LOCK:
        return traceback.format_exc()
