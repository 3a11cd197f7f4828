"""Parsing Python from several threads at once (a class graded by the local pool's threads).

CPython 3.11 keeps the AST builder's recursion counter per interpreter, so a thread that parses while another is
paused mid-parse (here: a garbage collector's finalizer that lets other threads run, at a different stack depth)
raised `SystemError: AST constructor recursion depth mismatch` (gh-106905), and CI graded a good submission as
`sandbox_error`. The grader parses through `grader.pysyntax`, one thread at a time.
"""

from __future__ import annotations

import ast
import gc
import re
import threading
import time
from pathlib import Path

from grader import pysyntax

ROOT = Path(__file__).resolve().parents[1]
SOURCE = (ROOT / "grader" / "api.py").read_text()


class _Junk:
    """Cyclic garbage whose finalizer releases the GIL, so a collection inside a parse lets another thread run."""

    def __init__(self):
        self.me = self

    def __del__(self):
        time.sleep(0.0001)


def _at_depth(depth: int, work):
    return _at_depth(depth - 1, work) if depth else work()


def test_threads_parsing_while_others_are_paused_mid_parse_all_get_the_right_tree():
    expected = ast.dump(ast.parse(SOURCE))
    trees: list[str] = []
    errors: list[BaseException] = []

    def parse_many():
        for _ in range(15):
            for _ in range(20):
                _Junk()
            try:
                trees.append(ast.dump(pysyntax.parse(SOURCE)))
            except BaseException as exc:  # noqa: BLE001 - what the test reports
                errors.append(exc)

    thresholds = gc.get_threshold()
    gc.set_threshold(100, 10, 10)  # collections (and finalizers) inside the parses
    try:
        threads = [threading.Thread(target=_at_depth, args=(depth, parse_many)) for depth in (3, 17, 29, 41)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        gc.set_threshold(*thresholds)
    assert not errors, errors[:3]
    assert len(trees) == 60 and set(trees) == {expected}


def test_a_syntax_error_is_raised_as_ast_parse_raises_it_and_the_lock_is_released():
    try:
        pysyntax.parse("def broken(:\n")
    except SyntaxError as exc:
        assert exc.lineno == 1
    else:
        raise AssertionError("a syntax error parsed")
    assert isinstance(pysyntax.parse("x = 1"), ast.Module)  # not left locked


def test_the_grader_parses_python_only_through_pysyntax():
    direct = [f"{path.relative_to(ROOT)}:{number}"
              for path in sorted((ROOT / "grader").rglob("*.py")) if path.name != "pysyntax.py"
              for number, line in enumerate(path.read_text().splitlines(), 1)
              if re.search(r"\bast\.parse\(", line)]
    assert direct == [], f"ast.parse called directly (not thread-safe on CPython 3.11): {direct}"


def test_a_traceback_is_formatted_under_the_same_lock():
    try:
        raise ValueError("odd submission")
    except ValueError:
        text = pysyntax.format_exc()
    assert "ValueError: odd submission" in text and 'raise ValueError("odd submission")' in text
    assert isinstance(pysyntax.parse("y = 2"), ast.Module)  # the lock was released
