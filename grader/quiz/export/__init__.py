"""A drawn quiz in the formats where quizzes are taken: md, html (printable), json, gift (Moodle), qti (Canvas).

Every renderer is pure: `render(quiz, with_key) -> str` (qti: the zip's bytes).
md, html and json are students' copies unless `with_key`; gift and qti are LMS
imports, which need the key, so they are only written with `with_key`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Union

from grader.errors import GraderError
from grader.quiz.draw import DrawnQuiz
from grader.quiz.export import gift, html, json, md, qti

Renderer = Callable[[DrawnQuiz, bool], Union[str, bytes]]
FORMATS: dict[str, Renderer] = {"md": md.render, "html": html.render, "json": json.render,
                                "gift": gift.render, "qti": qti.render}
NEEDS_KEY = ("gift", "qti")
SUFFIX = {  # each format's file name ending (`grade quiz make -o quiz-{student}<suffix>`)
    "md": ".md", "html": ".html", "json": ".json", "gift": ".gift.txt", "qti": ".zip"}


def export(quiz: DrawnQuiz, fmt: str, with_key: bool = False) -> Union[str, bytes]:
    if fmt not in FORMATS:
        raise GraderError(f"unknown format {fmt!r}", where="--format", fix="use one of: " + ", ".join(FORMATS))
    if fmt in NEEDS_KEY and not with_key:
        raise GraderError(f"{fmt} is an LMS import and carries the answer key", where="--format",
                          fix="add --with-key (the LMS keeps the key from students), or use md / html / json for a "
                              "student's copy")
    return FORMATS[fmt](quiz, with_key)
