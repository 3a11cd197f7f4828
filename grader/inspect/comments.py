"""Which code cells carry a comment ("every code cell commented").

A cell is commented when it holds at least one of:

- a `#` comment that `tokenize` sees (so a `#` inside a string is not one;
  where tokenize gives up, a `#` outside quotes);
- a docstring or any other statement that is only a string
  (`\"\"\"Load the data.\"\"\"`), found with `ast`;
- a `#` comment on a shell line (`!pip install torchsummary  # for summary()`).

A commented-out line (`# x = 1`, a whole class behind `#`) counts too: the
grader cannot tell commented-out code from prose without guessing, and the
rubric asks whether the student wrote comments, not whether they are good.
Empty code cells need no comment; any other code cell does, also one that
holds only imports, one call or one magic.
"""

from __future__ import annotations

import ast
import io
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from grader.inspect.source import CellLines, parse_python


@dataclass(frozen=True)
class CommentReport:
    needing: tuple[int, ...]  # cell indices of non-empty code cells
    uncommented: tuple[int, ...]

    @property
    def coverage(self) -> Optional[float]:
        """Commented share of the cells that need a comment; None for a notebook without code."""
        if not self.needing:
            return None
        return (len(self.needing) - len(self.uncommented)) / len(self.needing)


def comment_report(cells: Sequence[tuple[int, str, CellLines]]) -> CommentReport:
    """`cells`: (code cell number, raw source, split source) of each code cell."""
    needing = tuple(index for index, source, _ in cells if source.strip())
    uncommented = tuple(index for index, source, lines in cells if source.strip() and not has_comment(lines))
    return CommentReport(needing=needing, uncommented=uncommented)


def has_comment(cell: CellLines) -> bool:
    return bool(cell.ipython_comments) or _python_has_comment(cell.python)


def _python_has_comment(source: str) -> bool:
    return _has_hash_comment(source) or _has_string_statement(source)


def _has_hash_comment(source: str) -> bool:
    try:
        return any(token.type == tokenize.COMMENT for token in tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return _hash_outside_quotes(source)


def _has_string_statement(source: str) -> bool:
    """A docstring, or any statement that is only a string (a cell that does not parse has none)."""
    tree = parse_python(source)
    return tree is not None and any(
        isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        for node in ast.walk(tree)
    )


def _hash_outside_quotes(source: str) -> bool:
    """Fallback for a cell tokenize rejects (an unclosed bracket or string): a `#` outside quotes."""
    quote = None
    i = 0
    while i < len(source):
        if quote:
            if source.startswith(quote, i):
                i, quote = i + len(quote), None
                continue
            if source[i] == "\n" and len(quote) == 1:
                quote = None  # an unclosed one-line string ends with its line
            i += 2 if source[i] == "\\" else 1
            continue
        char = source[i]
        if char == "#":
            return True
        if char in "'\"":
            quote = char * 3 if source.startswith(char * 3, i) else char
            i += len(quote)
            continue
        i += 1
    return False
