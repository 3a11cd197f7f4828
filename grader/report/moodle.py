"""Moodle: the assignment's offline grading worksheet filled in, and the feedback-files zip (pure text in, text out).

The worksheet is what "Download grading worksheet" gives (Moodle writes it with PHP's fputcsv):

    Identifier,"Full name","Email address",Status,Grade,"Maximum Grade","Grade can be changed",
    "Last modified (submission)","Last modified (grade)","Feedback comments"
    "Participant 17","Ada Good",ada@example.org,"Submitted for grading",,100.00,Yes,"Monday, ...",-,

"Upload grading worksheet" matches rows on the Identifier ("Participant N": N is the number in the
submission folders' names) and reads Grade and Feedback comments. `fill_worksheet` rewrites only those
two cells of the rows it has a grade for (the rubric's score scaled to the row's Maximum Grade);
every other byte of the file (the other cells, their quoting, the line ends, a byte-order mark,
rows of students it did not grade) stays exactly as it was.

The feedback zip is what "Upload multiple feedback files in a zip" reads: flat entries named
`<Full name>_<participant>_assignsubmission_file_<file>` (Moodle splits the name on `_` and takes the
second part as the participant), here each student's report.html.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

IDENTIFIER, GRADE, MAXIMUM, FEEDBACK = "Identifier", "Grade", "Maximum Grade", "Feedback comments"


class WorksheetError(ValueError):
    """The text is not a Moodle grading worksheet (the message says what is missing)."""


@dataclass(frozen=True)
class MoodleGrade:
    participant: str  # the number after "Participant "
    score: float  # the rubric's points ...
    max_score: float  # ... out of these; written scaled to the worksheet's Maximum Grade
    feedback: str


@dataclass
class _Record:
    fields: list[str]  # each cell as written, quotes included
    end: str  # its line end ("\r\n", "\n", or "" for a last line without one)


def _records(text: str) -> list[_Record]:
    """Split CSV text into records of raw cells, keeping each cell's bytes (quotes, doubled quotes) as they are."""
    records, fields, start, quoted, i = [], [], 0, False, 0
    while i < len(text):
        ch = text[i]
        if quoted:
            if ch == '"':
                if text.startswith('""', i):
                    i += 1
                else:
                    quoted = False
        elif ch == '"':
            quoted = True
        elif ch == ",":
            fields.append(text[start:i])
            start = i + 1
        elif ch in "\r\n":
            end = "\r\n" if text.startswith("\r\n", i) else ch
            fields.append(text[start:i])
            records.append(_Record(fields, end))
            fields, i = [], i + len(end)
            start = i
            continue
        i += 1
    if start < len(text) or fields:
        fields.append(text[start:])
        records.append(_Record(fields, ""))
    return records


def _value(raw: str) -> str:
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        return raw[1:-1].replace('""', '"')
    return raw


def _quote(value: str) -> str:
    """As PHP's fputcsv writes a cell: quoted when it holds a separator, quote, space or line break."""
    if re.search(r'[,"\s\\]', value):
        return '"' + value.replace('"', '""') + '"'
    return value


def _grade(value: float) -> str:
    return f"{value:.2f}"  # Moodle writes grades with two decimals


def _scaled(grade: MoodleGrade, maximum: Optional[str]) -> float:
    """The rubric's score on the worksheet's scale (Moodle refuses a grade over the assignment's maximum)."""
    try:
        top = float(_value(maximum or "").replace(",", "."))
    except ValueError:
        return grade.score
    return grade.score * top / grade.max_score if grade.max_score else grade.score


def fill_worksheet(text: str, grades: Sequence[MoodleGrade]) -> tuple[str, list[str]]:
    """The worksheet with Grade and Feedback comments set for each graded participant; and the participants
    graded here that the worksheet has no row for (they were not in the assignment when it was downloaded)."""
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    records = _records(text[len(bom):])
    if not records:
        raise WorksheetError("the worksheet is empty")
    header = [_value(f) for f in records[0].fields]
    missing = [c for c in (IDENTIFIER, GRADE) if c not in header]
    if missing:
        raise WorksheetError(f"no {' or '.join(repr(c) for c in missing)} column (its columns: {', '.join(header)})")
    at_id, at_grade = header.index(IDENTIFIER), header.index(GRADE)
    at_feedback: Optional[int] = header.index(FEEDBACK) if FEEDBACK in header else None
    lower = [h.lower() for h in header]
    at_max: Optional[int] = lower.index(MAXIMUM.lower()) if MAXIMUM.lower() in lower else None
    by_participant = {g.participant: g for g in grades}
    seen = set()
    for record in records[1:]:
        if len(record.fields) <= at_id:
            continue
        match = re.fullmatch(r"\D*?(\d+)", _value(record.fields[at_id]))
        grade = by_participant.get(match[1]) if match else None
        if grade is None:
            continue
        seen.add(grade.participant)
        record.fields[at_grade] = _grade(_scaled(grade, record.fields[at_max] if at_max is not None else None))
        if at_feedback is not None and at_feedback < len(record.fields):
            record.fields[at_feedback] = _quote(grade.feedback)
    return bom + "".join(",".join(r.fields) + r.end for r in records), [p for p in by_participant if p not in seen]


def has_feedback_column(text: str) -> bool:
    records = _records(text.lstrip("\ufeff"))
    return bool(records) and FEEDBACK in [_value(f) for f in records[0].fields]


def feedback_entry(name: str, participant: str, filename: str = "report.html") -> str:
    """The zip entry Moodle's feedback-files upload matches to participant N (underscores in names would shift
    Moodle's split, so they become spaces)."""
    return f"{name.replace('_', ' ')}_{participant}_assignsubmission_file_{filename}"
