"""gradebook.csv: one row per student (rows are pure; `write_gradebook` is the only side effect).

Column order (stable; spreadsheets and LMS imports map columns by header):

    student, score, max_score, passed, verdict,
    <one column per rubric item id, in rubric order: that item's points>,
    quiz_score, quiz_max_score          (only when some student has a quiz result)
    quiz_error                          (only when some student's cell tagged quiz could not be read: why)
    name                                (only when some student's name is known: LMS file names, a roster)
    late, late_penalty                  (only when the LMS said whether some submission was late)
    similar_to                          (only when look-alike submissions were looked for: ids, `;`-separated)
    problems                            (only when a class-level step failed for some student: what failed)
    not_judged                          (only when the mode left items out of some student's maximum: their ids,
                                         `;`-separated; evaluate mode never judges what only a run shows)

An item id that equals one of the fixed column names gets the column `item:<id>`.
When the batch mixes rubrics, item columns are the union in order of first
appearance, and a student's cell is empty for an item their rubric lacks.
`gradebook_rows` gives the same rows as dicts of plain JSON values (what
`--json` prints); the CSV writes numbers without trailing `.0`, `passed` as
TRUE / FALSE (what spreadsheets read as booleans), UTF-8 without a BOM. A student
the grader failed on (verdict grader_failed) has an empty score and empty item
cells: not graded, which no spreadsheet sums as a 0. A student with nothing to grade
(verdict nothing_to_grade: no notebook in the hand-in, several and nothing to pick one,
or a roster's student with no hand-in) has a row too, scoring 0. An item left out of a
student's maximum (`not_judged`) has an empty cell too: it was not judged, and no points were lost on it.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from grader.facts import Facts
from grader.rubric.sheet import ScoreSheet

FIXED = ["student", "score", "max_score", "passed", "verdict"]
QUIZ = ["quiz_score", "quiz_max_score"]
QUIZ_ERROR = "quiz_error"
HAND_IN = ["name", "late", "late_penalty", "similar_to", "problems", "not_judged"]
# A text cell starting with one of these is a formula to a spreadsheet (student ids come from file names).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class GradebookEntry:
    student: str
    sheet: ScoreSheet
    facts: Optional[Facts] = None
    name: Optional[str] = None
    similar_to: Optional[Sequence[str]] = None  # None: not looked for; empty: looked for, none found
    problems: Sequence[str] = ()  # class-level steps that failed for this student (its report, the comparison)


def _item_column(item_id: str) -> str:
    return f"item:{item_id}" if item_id in (*FIXED, *QUIZ, QUIZ_ERROR, *HAND_IN) else item_id


def columns(entries: Sequence[GradebookEntry]) -> list[str]:
    items = dict.fromkeys(_item_column(i.id) for e in entries for i in e.sheet.items)
    has_quiz = any(e.facts is not None and e.facts.quiz.score is not None for e in entries)
    late = any(e.facts is not None and e.facts.submission.late is not None for e in entries)
    present = {"name": any(e.name for e in entries), "late": late, "late_penalty": late,
               "similar_to": any(e.similar_to is not None for e in entries),
               "problems": any(e.problems for e in entries), "not_judged": any(e.sheet.left_out for e in entries)}
    quiz_error = any(e.facts is not None and e.facts.quiz.error for e in entries)
    return (FIXED + list(items) + (QUIZ if has_quiz else []) + ([QUIZ_ERROR] if quiz_error else [])
            + [c for c in HAND_IN if present[c]])


def gradebook_rows(entries: Iterable[GradebookEntry]) -> list[dict[str, Any]]:
    """One dict per student with every column (None where a student has no value), in column order."""
    entries = list(entries)
    header = columns(entries)
    rows = []
    for e in entries:
        quiz = e.facts.quiz if e.facts is not None else None
        verdict = (e.facts.verdict.kind if e.facts is not None else None) or e.sheet.verdict_kind
        values: dict[str, Any] = {"student": e.student, "score": e.sheet.score, "max_score": e.sheet.max_score,
                                  "passed": e.sheet.passed, "verdict": verdict,
                                  "quiz_score": quiz.score if quiz else None,
                                  "quiz_max_score": quiz.max_score if quiz else None,
                                  QUIZ_ERROR: quiz.error if quiz else None, "name": e.name,
                                  "late": e.facts.submission.late if e.facts is not None else None,
                                  "late_penalty": e.sheet.late_penalty,
                                  "similar_to": None if e.similar_to is None else ";".join(e.similar_to),
                                  "problems": "; ".join(e.problems) or None,
                                  "not_judged": ";".join(e.sheet.left_out) or None}
        graded = e.sheet.score is not None  # not graded (the grader failed): blank, never a column of zeros
        values.update({_item_column(i.id): i.points if graded and i.id not in e.sheet.left_out else None
                       for i in e.sheet.items})
        rows.append({name: values.get(name) for name in header})
    return rows


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(round(value, 4))
    if isinstance(value, int):
        return str(value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def write_gradebook(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Write rows (from `gradebook_rows`) as CSV; the header is the first row's keys."""
    path = Path(path)
    header = list(rows[0]) if rows else FIXED
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows({k: csv_cell(row.get(k)) for k in header} for row in rows)
    return path
