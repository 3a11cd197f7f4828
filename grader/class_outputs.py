"""What a graded class writes: each student's copies (report.html, report.md, results.json, facts.json) and the
instructor's (gradebook.csv, similarity.html, instructor.html)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Optional

import numpy as np

from grader.data.staging import TestData, prepare_test_data
from grader.facts import Facts
from grader.report.gradebook import GradebookEntry, gradebook_rows, write_gradebook
from grader.report.instructor import Pair, Side, StudentLine
from grader.report.write import write_class_pages, write_student_reports
from grader.result import Result
from grader.rubric.sheet import ScoreSheet
from grader.similarity import Code, LookAlike, code_of, look_alikes

Problem = Callable[[str, str], None]  # (student, what failed for that student in a class-level step)


def write_outputs(results: Iterable[Result], out: Path, *, data: Optional[TestData] = None,
                  on_problem: Problem = lambda *_: None) -> Path:
    """Write each student's report.html, report.md, results.json and facts.json (the student's copies), and the
    instructor's gradebook.csv, similarity.html (look-alike pairs, code side by side) and instructor.html (hidden
    items, look-alikes); returns gradebook.csv's path. Look-alikes go to the instructor's files only.

    The test images (for the misclassified digits) come from `data`, else from MNIST where the grader finds it
    when some result was measured; without them the reports leave the pictures of digits out.
    One student never stops the class: a step that fails for one student (the look-alike comparison, its
    reports) is told to `on_problem` and named in that student's `problems` cell; everyone else is written.
    """
    results = sorted(results, key=lambda r: r.student)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if data is None and any(r.facts.eval.accuracy is not None for r in results):
        data = prepare_test_data(None)
    problems: dict[str, list[str]] = {r.student: [] for r in results}

    def problem(student: str, what: str) -> None:
        problems[student].append(what)
        on_problem(student, what)

    codes = {r.student: r.code if r.code is not None else code_of(r.submission.hand_in()) for r in results}
    alike = look_alikes(codes, on_problem=problem)
    for r in results:  # the student's copies: nothing about look-alikes, no hidden item (grader.report.audience)
        try:
            write_student_copy(out, r.student, r.facts, r.sheet, seconds=r.seconds, name=r.submission.name, data=data)
        except Exception as exc:
            problem(r.student, f"reports not written ({exc.__class__.__name__}: {exc})"[:500])
    named = {r.student: r.submission.name for r in results}
    lines = [StudentLine(r.student, r.submission.name, r.sheet, _similar_to(alike.get(r.student, [])),
                         problems[r.student]) for r in results]
    write_class_pages(out, _pairs(alike, codes, named), lines,
                      title=", ".join(sorted({r.sheet.title for r in results})))
    return write_gradebook(out / "gradebook.csv",
                           gradebook_rows([GradebookEntry(line.student, line.sheet, r.facts, line.name, line.similar_to,
                                                          line.problems)
                                           for r, line in zip(results, lines, strict=True)]))


def write_student_copy(out: Path, student: str, facts: Facts, sheet: ScoreSheet, *, seconds: float,
                       name: Optional[str] = None, data: Optional[TestData] = None) -> None:
    """One student's report.html, report.md, results.json and facts.json in out/<student>/ (the misclassified
    digits drawn when `data` is given)."""
    write_student_reports(out, student, facts, sheet, execution_time=seconds, name=name,
                          images=data.test.images if data else None, labels=data.labels if data else None,
                          predictions=_predictions(facts, data.labels) if data else None)


def _predictions(facts: Facts, labels: np.ndarray) -> Optional[np.ndarray]:
    """The whole prediction array, rebuilt from the labels and the misclassified facts."""
    if facts.eval.misclassified is None or facts.eval.misclassified_as is None:
        return None
    predictions = labels.astype(int).copy()
    predictions[facts.eval.misclassified] = facts.eval.misclassified_as
    return predictions


def _similar_to(pairs: list[LookAlike]) -> list[str]:
    return [f"{p.other} ({p.similarity:.0%})" for p in pairs]


def _pairs(alike: dict[str, list[LookAlike]], codes: dict[str, Optional[Code]],
           names: dict[str, Optional[str]]) -> list[Pair]:
    """Each look-alike pair once, with the code it was found in: the modules alone when they were the match."""
    def side(student: str, modules: bool) -> Side:
        code = codes[student]
        text = "" if code is None else code.modules if modules else \
            "\n\n".join(part for part in (code.notebook, code.modules) if part)
        return Side(student, names.get(student), text)

    return [Pair(side(a, p.modules), side(p.other, p.modules), p.similarity, p.modules)
            for a, found in alike.items() for p in found if a < p.other]
