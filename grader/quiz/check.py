"""Scoring a student's answers against their own variant: pure, one result per question.

`check_answers(bank, answers, student)` is what `grade quiz check` and the
gradebook (`grade submissions/ --quiz BANK`) call; `QuizResult.to_facts()` is the
`quiz.` section of a submission's facts, and `gradescope_results` the results
file in the format the grader writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Optional

from pydantic import BaseModel

from grader.facts import QuizFacts
from grader.quiz.answers import Normalized, choice_letter, fit, normalize, same_numbers
from grader.quiz.bank import Bank
from grader.quiz.diagnose import diagnose
from grader.quiz.draw import DrawnQuestion, DrawnQuiz, draw_quiz

Status = Literal["correct", "wrong", "incomplete", "unreadable", "missing"]


class QuestionResult(BaseModel):
    id: str
    kind: str
    score: float
    max_score: float
    status: Status
    answer: Optional[str]  # as the student wrote it
    expected: str
    feedback: str
    diagnosis: Optional[str] = None  # the mistake it looks like (grader.quiz.diagnose.KINDS), if any


class QuizResult(BaseModel):
    quiz: str
    student: str
    score: float
    max_score: float
    questions: list[QuestionResult]
    unknown_answers: list[str] = []  # answered ids that are not in this student's quiz

    @property
    def passed_all(self) -> bool:
        return self.score >= self.max_score

    def to_facts(self) -> QuizFacts:
        return QuizFacts(score=self.score, max_score=self.max_score,
                         questions=[q.model_dump(mode="json") for q in self.questions])


def check_answers(bank: Bank, answers: Mapping[str, Any], student: str, count: int | None = None) -> QuizResult:
    """Score `answers` ({question id: raw answer}) against the variant `student` was given."""
    return check_quiz(draw_quiz(bank, student, count), answers)


def check_quiz(quiz: DrawnQuiz, answers: Mapping[str, Any]) -> QuizResult:
    answers = {str(k).strip(): v for k, v in answers.items()}
    results = [check_question(q, answers.get(q.id)) for q in quiz.questions]
    asked = {q.id for q in quiz.questions}
    return QuizResult(quiz=quiz.quiz, student=quiz.student, score=sum(r.score for r in results),
                      max_score=quiz.max_score, questions=results,
                      unknown_answers=sorted(k for k in answers if k not in asked))


def check_question(question: DrawnQuestion, raw: Any) -> QuestionResult:
    answer = normalize(raw)
    status, hint = _status(question, answer)
    diagnosis = diagnose(question, answer) if status == "wrong" else None
    return QuestionResult(
        id=question.id, kind=question.kind, score=question.points if status == "correct" else 0.0,
        max_score=question.points, status=status, answer=None if answer.blank else answer.raw,
        expected=question.key.display, feedback=_feedback(question, answer, status, hint, diagnosis),
        diagnosis=diagnosis.kind if diagnosis else None)


def _status(q: DrawnQuestion, answer: Normalized) -> tuple[Status, str]:
    """(status, a hint on the form when the answer could not be compared)."""
    if answer.blank:
        return "missing", ""
    key = q.key
    if isinstance(key.value, bool):
        if answer.truth is None:
            return "unreadable", "answer true or false."
        return ("correct" if answer.truth is key.value else "wrong"), ""
    if isinstance(key.value, str):
        letter = choice_letter(answer, q.options)
        if letter is None:
            letters = ", ".join(chr(97 + i) for i in range(len(q.options)))
            return "unreadable", f"answer with one letter ({letters}) or an option's exact text."
        return ("correct" if letter == key.value else "wrong"), ""
    if answer.numbers is None:
        return "unreadable", f"write a number or a size like {_form(key.value)}."
    if fit(answer.numbers, len(key.value)) is None:
        return "incomplete", f"the question asks for {_form(key.value)}: give all {len(key.value)} numbers."
    return ("correct" if same_numbers(answer.numbers, key.value, key.tolerance) else "wrong"), ""


def _form(value: tuple) -> str:
    return {3: "HxWxC (e.g. 195x195x32)", 2: "HxW (e.g. 22x22)", 1: "one number"}[len(value)]


def _feedback(q: DrawnQuestion, answer: Normalized, status: Status, hint: str, diagnosis) -> str:
    lines = []
    if status == "correct":
        lines.append(f"Correct: {q.key.display}.")
    elif status == "missing":
        lines.append(f"No answer. The answer is {q.key.display}.")
    else:
        lines.append(f"You answered {answer.raw!r}; the answer is {q.key.display}."
                     + (f" Next time {hint}" if hint else ""))
    if diagnosis:
        lines.append(diagnosis.message)
    if status != "correct" and q.key.working:
        lines.append("Worked for your numbers:")
        lines.extend("  " + line for line in q.key.working)
    if q.explanation and (status != "correct" or not q.computed):
        lines.append(q.explanation)
    return "\n".join(lines)


def gradescope_results(result: QuizResult, execution_time: float = 0.0) -> dict[str, Any]:
    """The results file Gradescope reads, written by the grader's one Gradescope writer."""
    from grader.report.gradescope import GradescopeTest, results

    wrong = sum(q.status != "correct" for q in result.questions)
    return results([GradescopeTest(f"{q.id} ({q.kind})", q.score, q.max_score, q.status == "correct", q.feedback)
                    for q in result.questions],
                   output=f"Quiz {result.quiz} for {result.student}: {result.score:g} / {result.max_score:g}"
                          + (f" ({wrong} to review)" if wrong else ""),
                   execution_time=execution_time, stdout_visibility="visible")
