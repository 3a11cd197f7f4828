"""results.json in the Gradescope autograder format: the one writer for rubric scores and quizzes (pure).

Gradescope reads `/autograder/results/results.json`:

    {"score": 7.0, "execution_time": 12.3, "output": "...", "stdout_visibility": "hidden",
     "tests": [{"name": ..., "score": ..., "max_score": ..., "status": "passed" | "failed",
                "output": ..., "visibility": "visible" | "hidden" | "after_due_date" | "after_published"}]}

`results(tests, ...)` builds that from any list of `GradescopeTest`s; the top-level score
is always the sum of the tests' scores, so the two can never disagree. A submission the grader
failed on (no score) gets no tests and no score, and an output that says it was not graded.
`sheet_results(sheet, ...)` is the rubric's use of it; the quiz's
`gradescope_results` is the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from grader.facts import Facts
from grader.formatting import num
from grader.rubric.reasons import NOT_GRADED
from grader.rubric.sheet import ItemResult, ScoreSheet

Visibility = Literal["visible", "hidden", "after_due_date", "after_published"]
VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")


@dataclass(frozen=True)
class GradescopeTest:
    name: str
    score: float
    max_score: float
    passed: bool  # anything short of full marks is "failed" to Gradescope, with its partial score
    output: str = ""
    visibility: Visibility = "visible"


def results(tests: Sequence[GradescopeTest], *, output: str, execution_time: float = 0.0,
            stdout_visibility: Visibility = "hidden", graded: bool = True) -> dict[str, Any]:
    """The results file's content. stdout_visibility: whether students see the autograder's own stdout;
    `graded` False: no score at all (the grader failed), rather than the sum of no tests."""
    for test in tests:
        if test.visibility not in VISIBILITIES:
            raise ValueError(f"test {test.name!r}: visibility {test.visibility!r} is not one of "
                             f"{', '.join(VISIBILITIES)}")
    if stdout_visibility not in VISIBILITIES:
        raise ValueError(f"stdout_visibility {stdout_visibility!r} is not one of {', '.join(VISIBILITIES)}")
    return {
        **({"score": sum(t.score for t in tests)} if graded else {}),
        "execution_time": round(execution_time, 3),
        "output": output,
        "stdout_visibility": stdout_visibility,
        "tests": [{"name": t.name, "score": t.score, "max_score": t.max_score,
                   "status": "passed" if t.passed else "failed", "output": t.output, "visibility": t.visibility}
                  for t in tests],
    }


def item_test(item: ItemResult) -> GradescopeTest:
    status = "" if item.status in ("passed", "failed") else f"[{item.status.replace('_', ' ')}] "
    body = "\n".join(part for part in (status + item.evidence, item.feedback) if part)
    return GradescopeTest(name=f"{item.title} ({item.id})" + (" [required]" if item.required else ""),
                score=item.points, max_score=item.max_points, passed=item.status == "passed",
                output=body, visibility=item.visibility)


def summary_line(sheet: ScoreSheet, facts: Facts | None = None) -> str:
    kind = (facts.verdict.kind if facts else None) or sheet.verdict_kind
    message = (facts.verdict.message if facts else None) or sheet.verdict_message
    if sheet.score is None:
        return f"{sheet.title}: {NOT_GRADED.capitalize()}. {message or ''}".strip()
    lines = [f"{sheet.title}: {num(sheet.score)} / {num(sheet.max_score)}"
             + (" (passed)" if sheet.passed else " (not passed: a required item failed)")]
    if kind and kind != "ok":
        lines.append(f"The notebook did not finish ({kind}): {message or 'no details'}")
    return "\n".join(lines)


def sheet_results(sheet: ScoreSheet, facts: Facts | None = None, *, execution_time: float = 0.0,
                  stdout_visibility: Visibility = "hidden",
                  tests: Sequence[GradescopeTest] | None = None) -> dict[str, Any]:
    """One test per rubric item, with the item's visibility; partial items are "failed" with their points.
    `tests`: other tests for the items (a student's copy: `grader.report.audience.student_results`)."""
    if sheet.score is None:  # nothing was judged: no tests that would read as zeros
        return results([], output=summary_line(sheet, facts), execution_time=execution_time,
                       stdout_visibility=stdout_visibility, graded=False)
    tests = [item_test(i) for i in sheet.items] if tests is None else list(tests)
    if sheet.late_penalty:  # a test worth nothing that takes the points off, so the score stays the tests' sum
        tests.append(GradescopeTest(name="Late submission", score=-sheet.late_penalty, max_score=0, passed=False,
                                    output=f"handed in late: {num(sheet.late_penalty)} points off"))
    return results(tests, output=summary_line(sheet, facts),
                   execution_time=execution_time, stdout_visibility=stdout_visibility)
