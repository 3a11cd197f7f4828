"""Look-alike submissions: code cells that are the same, or nearly, once whitespace, comments and the names
the student chose are set aside (pure; reads notebooks and modules, never runs them).

A hand-in's code is its notebook's code cells and its modules: the staged `.py` files in path order (up
to `MODULES_BYTES`: a course's are a few kilobytes, and they are parsed in memory on the host). Two
hand-ins are compared by all their code, and by their modules alone, and the higher similarity counts:
in a modular repository the network and the training loop are in model.py and utils.py, so two students
whose notebooks differ but whose modules are copies are found, where the differing notebooks would
dilute the whole's similarity below the threshold (tests/fixtures/look_alike_modules: 0.62 as a whole,
1.0 for the modules).

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
import re
import tokenize
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from datasketch import MinHash

from grader import pysyntax
from grader.handin import HandIn, open_regular

SHINGLE = 8
THRESHOLD = 0.85
TEMPLATE_CLASS = 10  # from this class size on, shingles most submissions share are the course's template
PERMUTATIONS = 256
_MIN_SHINGLES = 20  # fewer than this is too little code to call two submissions alike
MODULES_BYTES = 1 << 20  # bytes of a hand-in's modules compared, at most
_FUTURE = re.compile(r"^from[ \t]+__future__[ \t]+import\b.*$", re.M)


@dataclass(frozen=True)
class LookAlike:
    other: str  # the other submission's student id
    similarity: float  # estimated Jaccard similarity of their shingles, 0..1
    modules: bool = False  # the similarity is their modules' (the .py files handed in), higher than all their code's


@dataclass(frozen=True)
class Code:
    """What a submission is compared by: its notebook's code cells one after another (or a .py file's text), and
    its modules' text (the hand-in's other `.py` files by path; "" for a notebook handed in alone)."""

    notebook: str
    modules: str = ""


def code_of(submission: Path | HandIn) -> Optional[Code]:
    """A notebook's (or .py file's) code, or a hand-in's with its modules; None when the notebook cannot be read."""
    if not isinstance(submission, HandIn):
        notebook = _file_code(Path(submission))
        return None if notebook is None else Code(notebook)
    notebook = _file_code(submission.root / submission.notebook)
    if notebook is None:
        return None
    modules, room = [], MODULES_BYTES
    for f in sorted(submission.files, key=lambda f: f.path):
        if f.path.endswith(".py") and f.path != submission.notebook and f.size <= room:
            module = _module_code(submission.root / f.path)
            if module:
                modules.append(module)
                room -= f.size
    return Code(notebook, "\n\n".join(modules))


def _module_code(path: Path) -> Optional[str]:
    """A staged module's text, its `from __future__` lines set aside (they are only valid first in a file); None
    when it is not UTF-8 or not Python (then its names could not be told apart from the notebook's)."""
    try:
        with open_regular(path) as fh:
            text = fh.read().decode("utf-8")
        code = _FUTURE.sub(r"pass  # \g<0>", text)
        pysyntax.parse(code)
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return None
    return code


def _file_code(path: Path) -> Optional[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if path.suffix.lower() != ".ipynb":
        return text if path.suffix.lower() == ".py" else None
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


def look_alikes(codes: Mapping[str, Optional[Code | str]], threshold: float = THRESHOLD,
                on_problem: Callable[[str, str], None] = lambda *_: None) -> dict[str, list[LookAlike]]:
    """For each student id, the others whose code, or whose modules, are at least `threshold` alike (most alike
    first); a str is a notebook's code alone. A submission whose code cannot be read into tokens is left out of the
    comparison and told to `on_problem` (student, what failed): one odd notebook never stops the class's comparison."""
    whole, modules = {}, {}
    for student, code in codes.items():
        code = Code(code) if isinstance(code, str) else code
        if not code or not code.notebook:
            continue
        try:
            whole[student] = shingles(f"{code.notebook}\n\n{code.modules}" if code.modules else code.notebook)
            if code.modules:
                modules[student] = shingles(code.modules)
        except Exception as exc:
            on_problem(student, f"not compared for look-alikes ({exc.__class__.__name__}: {exc})")
    by_code, by_modules = _similarities(whole), _similarities(modules)
    found: dict[str, list[LookAlike]] = {student: [] for student in codes}
    for a, b in sorted(by_code.keys() | by_modules.keys()):
        whole_code, modules_only = by_code.get((a, b), 0.0), by_modules.get((a, b), 0.0)
        similarity = max(whole_code, modules_only)
        if similarity >= threshold:
            found[a].append(LookAlike(b, similarity, modules_only > whole_code))
            found[b].append(LookAlike(a, similarity, modules_only > whole_code))
    return {student: sorted(pairs, key=lambda p: (-p.similarity, p.other)) for student, pairs in found.items()}


def _similarities(sets: dict[str, set[str]]) -> dict[tuple[str, str], float]:
    """Each pair's (a < b) estimated Jaccard similarity, the class's template set aside; a set with too few shingles
    is in no pair."""
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
    ids = sorted(hashes)
    return {(a, b): 1.0 if sets[a] == sets[b] else round(hashes[a].jaccard(hashes[b]), 2)
            for i, a in enumerate(ids) for b in ids[i + 1:]}
