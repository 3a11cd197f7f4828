"""The instructor's class pages (pure: records in, HTML out): similarity.html, the look-alike pairs with their
code side by side, and instructor.html, every student's score with the hidden items and look-alike flags.

These name students and show hidden items: they are for the instructor only, written beside gradebook.csv and
never into a student's folder (see `grader.report.audience`). Self-contained like report.html: inline CSS, no
scripts; every value is escaped (code and names are the students').
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import jinja2

from grader.formatting import num
from grader.report.audience import hidden_items
from grader.rubric.sheet import ScoreSheet

SHOWN_LINES = 2000  # of each side's code, at most (a course's notebooks are a few hundred lines)

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("grader.report", "templates"), autoescape=True,
                          undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


@dataclass(frozen=True)
class Side:
    student: str
    name: Optional[str]
    code: str  # what was compared: the notebook's code cells (and modules), or the modules alone


@dataclass(frozen=True)
class Pair:
    a: Side
    b: Side
    similarity: float  # 0..1
    modules: bool  # the similarity is their modules'


@dataclass(frozen=True)
class Row:
    left: Optional[str]  # None: no line on this side here
    right: Optional[str]
    same: bool  # the two lines match (once surrounding blanks are set aside)


@dataclass(frozen=True)
class StudentLine:
    student: str
    name: Optional[str]
    sheet: ScoreSheet
    similar_to: Sequence[str]
    problems: Sequence[str]


def side_by_side(left: str, right: str) -> list[Row]:
    """The two codes aligned line by line (difflib on stripped lines): matching runs side by side, the rest
    each on its own side."""
    a, b = left.splitlines()[:SHOWN_LINES], right.splitlines()[:SHOWN_LINES]
    matcher = difflib.SequenceMatcher(None, [x.strip() for x in a], [x.strip() for x in b], autojunk=False)
    rows: list[Row] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            rows += [Row(a[i], b[j], True) for i, j in zip(range(i1, i2), range(j1, j2), strict=True)]
            continue
        for k in range(max(i2 - i1, j2 - j1)):
            rows.append(Row(a[i1 + k] if i1 + k < i2 else None, b[j1 + k] if j1 + k < j2 else None, False))
    return rows


def render_similarity(pairs: Sequence[Pair], *, compared: int) -> str:
    """similarity.html: each flagged pair, most alike first, with its code side by side."""
    shown = [(p, side_by_side(p.a.code, p.b.code)) for p in sorted(pairs, key=lambda p: (-p.similarity, p.a.student,
                                                                                           p.b.student))]
    return _ENV.get_template("similarity.html.j2").render(pairs=shown, compared=compared)


def render_instructor(students: Sequence[StudentLine], *, title: str) -> str:
    """instructor.html: one row per student, with what only the instructor sees (hidden items, look-alikes)."""
    return _ENV.get_template("instructor.html.j2").render(
        students=[(s, hidden_items(s.sheet)) for s in students], title=title, num=num)
