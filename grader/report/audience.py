"""Who reads an output, decided once (pure): what a student may see of a grade.

Two audiences read the class's outputs. The instructor's (gradebook.csv with `similar_to`, similarity.html,
the instructor copy of a report) show everything: hidden rubric items and which submissions look alike. A
student's (report.html, report.md, the Moodle feedback files and comments, the LMS comment, the service's
pages and its results.json) go through this module: they show no hidden item and name no other student.
Look-alike notes are never passed to a student output at all; hidden items are taken out here.
"""

from __future__ import annotations

from typing import Any, Literal

from grader.facts import Facts
from grader.formatting import num
from grader.report.gradescope import GradescopeTest, Visibility, item_test, sheet_results
from grader.rubric.sheet import ItemResult, ScoreSheet

Audience = Literal["student", "instructor"]


def shown_to_student(item: ItemResult) -> bool:
    """A hidden item is the instructor's alone; an `after_due_date` one is shown (as Gradescope does after the
    due date: our reports are written once the class is graded)."""
    return item.visibility != "hidden"


def student_items(sheet: ScoreSheet) -> list[ItemResult]:
    return [i for i in sheet.items if shown_to_student(i)]


def hidden_items(sheet: ScoreSheet) -> list[ItemResult]:
    return [i for i in sheet.items if not shown_to_student(i)]


def student_pass_rule(sheet: ScoreSheet) -> str:
    """The pass rule without the ids of hidden required items (`Rubric.pass_.describe` lists the required ids
    in parentheses, in rubric order, as the sheet's items are)."""
    required = [i.id for i in sheet.items if i.required]
    shown = [i.id for i in student_items(sheet) if i.required]
    if shown == required:
        return sheet.pass_rule
    unlisted = f"{len(required) - len(shown)} not listed"
    return sheet.pass_rule.replace(f"({', '.join(required)})", f"({', '.join(shown + [unlisted])})")


def student_results(sheet: ScoreSheet, facts: Facts | None = None, *, execution_time: float = 0.0,
                    stdout_visibility: Visibility = "hidden") -> dict[str, Any]:
    """The Gradescope-format results a student is served (the service's results.json): the visible items, and
    the hidden ones together as one line of points with no title, so the score is still the sum of the tests."""
    hidden = hidden_items(sheet)
    tests = [item_test(i) for i in student_items(sheet)]
    if hidden:
        tests.append(GradescopeTest(name=f"{len(hidden)} check{'s' if len(hidden) != 1 else ''} not listed here",
                                    score=sum(i.points for i in hidden), max_score=sum(i.max_points for i in hidden),
                                    passed=all(i.status == "passed" for i in hidden)))
    return sheet_results(sheet, facts, execution_time=execution_time, stdout_visibility=stdout_visibility,
                         tests=tests)


def student_comment(sheet: ScoreSheet, *, see: str, on: str | None = None) -> str:
    """The one-line comment an LMS shows beside the grade (Moodle's Feedback comments, the LTI score's comment):
    the score (`on` the assignment), the visible items short of full marks, the late penalty, and `see` (where
    the full report is)."""
    parts = [f"{num(sheet.score)} / {num(sheet.max_score)} points{f' on {on}' if on else ''}, "
             f"{'passed' if sheet.passed else 'not passed'}"]
    missed = [i.id for i in sheet.failed() if shown_to_student(i)]
    if missed:
        parts.append("not full marks: " + ", ".join(missed))
    if sheet.late_penalty:
        parts.append(f"late: {num(sheet.late_penalty)} points off")
    return "; ".join(parts) + ". " + see
