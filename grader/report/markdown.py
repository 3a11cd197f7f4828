"""report.md: the same content as report.html as Markdown text (pure; tables, no images).

Markdown passes raw HTML through to whoever renders it (an LMS, a Git host), so
student-controlled text is escaped here too: anything that could open a tag is
written as `&lt;`, pipes cannot break out of a table cell, and output tails go
in a fence longer than any run of backticks inside them.
"""

from __future__ import annotations

import re
from typing import Optional

import jinja2

from grader.facts import Facts
from grader.report.summary import Audience, Digits, build_view
from grader.rubric.sheet import ScoreSheet

_TAG_OPEN = re.compile(r"<(?=[A-Za-z/!?])")


def text(value: object) -> str:
    """Prose: readable as typed ("needs < 20,000" stays), but no HTML tag or comment can open."""
    return _TAG_OPEN.sub("&lt;", str(value))


def cell(value: object) -> str:
    """One table cell: `text`, with pipes escaped and line breaks kept as <br>."""
    return "<br>".join(text(value).replace("|", "\\|").splitlines())


def code(value: object) -> str:
    return str(value).replace("`", "'")


def fence(value: object) -> str:
    body = str(value).rstrip("\n")
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    marks = "`" * max(3, longest + 1)
    return f"{marks}text\n{body}\n{marks}"


_ENV = jinja2.Environment(loader=jinja2.PackageLoader("grader.report", "templates"), autoescape=False,
                          undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                          keep_trailing_newline=True)
_ENV.filters.update(text=text, cell=cell, code=code, fence=fence)


def render_markdown(facts: Facts, sheet: ScoreSheet, *, student: str, audience: Audience = "student",
                    labels: Optional[Digits] = None, predictions: Optional[Digits] = None) -> str:
    """The report as Markdown. `labels` / `predictions` (the whole test set's) name the misclassified digits."""
    view = build_view(facts, sheet, student=student, audience=audience, labels=labels, predictions=predictions)
    return _ENV.get_template("report.md.j2").render(v=view)
