"""Look-alike submissions: code cells that are the same, or nearly, once whitespace, comments and the names
the student chose are set aside (pure; reads notebooks, never runs them).

Each submission's code becomes a sequence of Python tokens with comments and layout dropped, strings
and the names the notebook itself binds (variables, functions, classes, parameters) replaced by
placeholders; library names (`nn.Conv2d`), attributes, keywords and numbers stay, since they are what
a renamed copy cannot change. Shingles of `SHINGLE` consecutive tokens are compared with MinHash
(datasketch): an estimate of the Jaccard similarity of two shingle sets. In a class of ten or more,
shingles that more than half the submissions share are the course's template, not copying, and are
left out first. A pair at or above `THRESHOLD` is flagged, for the instructor to judge: the flag never
changes a score.

On the example class (examples/submissions, five notebooks from one course template) the
Jaccard similarity of different networks' notebooks is 0.59-0.73 with 8-token shingles; a copy of
one with every bound name renamed, every comment rewritten and the indentation changed is 1.0.
"""

from __future__ import annotations

import ast
import io
import json
import keyword
import tokenize
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional

from datasketch import MinHash

from grader import pysyntax

SHINGLE = 8
THRESHOLD = 0.85
TEMPLATE_CLASS = 10  # from this class size on, shingles most submissions share are the course's template
PERMUTATIONS = 256
_MIN_SHINGLES = 20  # fewer than this is too little code to call two submissions alike


@dataclass(frozen=True)
class LookAlike:
    other: str  # the other submission's student id
    similarity: float  # estimated Jaccard similarity of their shingles, 0..1


def code_of(path: Path) -> Optional[str]:
    """The code cells of a notebook (or a .py file), one after another; None when it cannot be read."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if Path(path).suffix.lower() != ".ipynb":
        return text if Path(path).suffix.lower() == ".py" else None
    try:
        cells = json.loads(text).get("cells", [])
    except (ValueError, AttributeError):
        return None
    sources = []
    for cell in cells if isinstance(cells, list) else []:
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else str(source)
            # shell and magic lines are not Python: keep their words, not their syntax
            sources.append("\n".join("pass  # " + line if line.lstrip().startswith(("!", "%")) else line
                                     for line in source.splitlines()))
    code = "\n\n".join(sources)
    try:  # JSON escapes can spell text that is not Unicode (a lone surrogate): nothing to compare
        code.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return code


def _bound_names(code: str) -> set[str]:
    """Names the code binds itself: what a copier renames."""
    names: set[str] = set()
    try:
        tree = pysyntax.parse(code)
    except SyntaxError:
        return names
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names - {"self", "cls"}


def tokens(code: str) -> list[str]:
    """The normalised token sequence: no comments or layout, bound names as V, strings as S."""
    bound = _bound_names(code)
    out = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                            tokenize.ENDMARKER):
                continue
            if tok.type == tokenize.STRING:
                out.append("S")
            elif tok.type == tokenize.NAME and tok.string in bound and not keyword.iskeyword(tok.string):
                out.append("V")
            else:
                out.append(tok.string)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass  # a notebook that does not parse to the end: compare what did
    return out


def shingles(code: str) -> set[str]:
    seq = tokens(code)
    return {" ".join(seq[i:i + SHINGLE]) for i in range(max(0, len(seq) - SHINGLE + 1))}


def look_alikes(codes: Mapping[str, Optional[str]], threshold: float = THRESHOLD,
                on_problem: Callable[[str, str], None] = lambda *_: None) -> dict[str, list[LookAlike]]:
    """For each student id, the others whose code is at least `threshold` alike (most alike first).
    A submission whose code cannot be read into tokens is left out of the comparison and told to `on_problem`
    (student, what failed): one odd notebook never stops the class's comparison."""
    sets = {}
    for student, code in codes.items():
        if not code:
            continue
        try:
            sets[student] = shingles(code)
        except Exception as exc:
            on_problem(student, f"not compared for look-alikes ({exc.__class__.__name__}: {exc})")
    if len(sets) >= TEMPLATE_CLASS:
        common = Counter(s for shingle_set in sets.values() for s in shingle_set)
        template = {s for s, n in common.items() if n > len(sets) / 2}
        sets = {student: s - template for student, s in sets.items()}
    hashes = {}
    for student, shingle_set in sets.items():
        if len(shingle_set) < _MIN_SHINGLES:
            continue
        h = MinHash(num_perm=PERMUTATIONS, seed=13)
        h.update_batch([s.encode() for s in shingle_set])
        hashes[student] = h
    found: dict[str, list[LookAlike]] = {student: [] for student in codes}
    ids = sorted(hashes)
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            similarity = 1.0 if sets[a] == sets[b] else round(hashes[a].jaccard(hashes[b]), 2)
            if similarity >= threshold:
                found[a].append(LookAlike(b, similarity))
                found[b].append(LookAlike(a, similarity))
    return {student: sorted(pairs, key=lambda p: (-p.similarity, p.other)) for student, pairs in found.items()}
