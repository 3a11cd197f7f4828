"""One graded submission (`Result`), and how a submission's facts become one: the hand-in's own facts added,
the quiz checked, the facts scored."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

from grader import pysyntax
from grader.facts import Facts, GradingFacts
from grader.intake import Submission
from grader.quiz.bank import Bank
from grader.quiz.check import check_answers
from grader.rubric.schema import Rubric
from grader.rubric.score import score
from grader.rubric.sheet import ScoreSheet
from grader.sandbox.failure import exception_failure
from grader.settings import Options
from grader.similarity import Code, code_of
from grader.verdict import Outcome, decide


@dataclass(frozen=True)
class Result:
    """One graded submission."""

    submission: Submission
    facts: Facts
    sheet: ScoreSheet
    seconds: float  # time spent grading it (for a cached result: when it was graded)
    cached: bool = False
    # its code cells and modules, read while the files were there (an LMS zip's are unpacked for a while)
    code: Optional[Code] = None

    @property
    def student(self) -> str:
        return self.submission.student


Event = Callable[[str, Submission, Optional[Result]], None]  # ("queued" | "start" | "done" | "skipped", ...)


def with_quiz(facts: Facts, quiz: Optional[Bank], student: str) -> Facts:
    if quiz is None:
        return facts
    checked = check_answers(quiz, facts.quiz.answers or {}, student).to_facts()
    return facts.model_copy(update={"quiz": checked.model_copy(update={"answers": facts.quiz.answers,
                                                                       "error": facts.quiz.error})})


def with_submission(facts: Facts, submission: Submission) -> Facts:
    """The hand-in's facts (what the LMS said: late; a link's commit), kept out of the cache: not the content's."""
    return facts.model_copy(update={"submission": facts.submission.model_copy(update={
        "late": submission.late, "link": submission.link, "commit": submission.commit,
        "commit_date": submission.commit_date, "notebook_path": submission.notebook_path})})


def not_run(submission: Submission, options: Options) -> Facts:
    """The facts of a submission with nothing to run: its verdict says why (the link, the hand-in, no file)."""
    return Facts(grading=GradingFacts(mode=options.mode), verdict=decide(Outcome(
        unreadable=submission.link_error or submission.unreadable, nothing_to_grade=submission.nothing_to_grade)))


def class_result(submission: Submission, facts: Facts, seconds: float, rubric: Rubric, quiz: Optional[Bank], *,
                 cached: bool = False) -> Result:
    """One student's Result in a class: the hand-in's facts, the quiz checked, scored, its code kept for the
    look-alike comparison. A failure here (the quiz checker or scoring on this student's odd facts) makes this
    student not graded, saying what failed; never the class."""
    try:
        facts = with_submission(with_quiz(facts, quiz, submission.student), submission)
        sheet = score(facts, rubric)
    except Exception as exc:
        facts = facts.model_copy(update={"verdict": decide(Outcome(
            grader_failure=exception_failure(exc), grader_traceback=pysyntax.format_exc()[-2000:]))})
        sheet = score(facts, rubric)
    code = None if submission.error is not None else code_of(submission.hand_in())
    return Result(submission, facts, sheet, seconds, cached=cached, code=code)
