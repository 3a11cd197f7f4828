"""canvas.csv: the class's scores in the layout Canvas's Gradebook import reads (pure rows; one writer).

Canvas exports its gradebook as

    Student,ID,SIS User ID,SIS Login ID,Section,<Assignment title> (<assignment id>),...,Current Score,...
        Points Possible,,,,,<points>,...,(read only),...
    "Last, First",<canvas user id>,<sis user id>,<sis login id>,<section>,<score>,...

and its import takes the same layout back: students are matched on ID (then SIS User ID, SIS Login
ID), an assignment column on the id in parentheses at the end of its header, and the second row
("    Points Possible", four leading spaces as Canvas writes it) is read as the points, never as a
student. We write the five identity columns, one assignment column and that row: nothing read-only,
so the import changes only this assignment. A blank cell leaves a grade as it is in Canvas.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

IDENTITY = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
POINTS_POSSIBLE = "    Points Possible"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class CanvasStudent:
    id: str  # the Canvas user id (from the download's file names)
    score: Optional[float]  # None: no grade to send (left blank, so Canvas keeps what it has)
    name: Optional[str] = None  # Canvas writes "Last, First"; the import matches on ID, not on this
    sis_user_id: Optional[str] = None
    sis_login_id: Optional[str] = None
    section: Optional[str] = None


def assignment_column(title: str, assignment_id: str) -> str:
    return f"{title} ({assignment_id})"


def _number(value: Optional[float]) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else str(round(float(value), 2))


def _text(value: Optional[str]) -> str:
    text = value or ""
    return "'" + text if text.startswith(_FORMULA_START) else text  # names come from file names


def canvas_rows(students: Sequence[CanvasStudent], *, title: str, assignment_id: str,
                points_possible: float) -> list[list[str]]:
    """The header, the Points Possible row, and one row per student (sorted by name, as Canvas lists them)."""
    header = IDENTITY + [assignment_column(title, assignment_id)]
    rows = [header, [POINTS_POSSIBLE, "", "", "", "", _number(points_possible)]]
    for s in sorted(students, key=lambda s: ((s.name or "").casefold(), s.id)):
        rows.append([_text(s.name or s.id), s.id, _text(s.sis_user_id), _text(s.sis_login_id), _text(s.section),
                     _number(s.score)])
    return rows


def write_canvas_csv(path: Path, rows: Sequence[Sequence[str]]) -> Path:
    """UTF-8 with a byte-order mark (what Canvas writes, so spreadsheets keep accents), CRLF line ends."""
    path = Path(path)
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        csv.writer(fh, lineterminator="\r\n").writerows(rows)
    return path
