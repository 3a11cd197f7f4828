"""What a re-grade changed: each student's score and pass before and after, and the items whose points moved.

Pure (`Standing`, `diff`, `tally`) but for reading a gradebook.csv and writing changes.csv. The CLI compares the
gradebook it is about to replace with the new results; the service compares a stored job's score sheet with
the sheet its current rubric gives. A student is listed when the score, the maximum, `passed` or an item's
points differ, or when they are new or gone; unchanged students are left out.

changes.csv columns: student, before_score, after_score, delta, before_passed, after_passed, passed_flipped,
items_changed (`id before→after` for each item whose points moved, `;`-separated), note (new, gone, not graded).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from grader.report.gradebook import FIXED, HAND_IN, QUIZ, csv_cell
from grader.rubric.sheet import ScoreSheet

COLUMNS = ["student", "before_score", "after_score", "delta", "before_passed", "after_passed", "passed_flipped",
           "items_changed", "note"]


@dataclass(frozen=True)
class Standing:
    """One student's result as the diff sees it; score None: not graded."""

    student: str
    score: Optional[float]
    max_score: Optional[float]
    passed: Optional[bool]
    items: Mapping[str, Optional[float]] = field(default_factory=dict)  # item id -> points

    @staticmethod
    def of(student: str, sheet: ScoreSheet) -> Standing:
        graded = sheet.score is not None
        return Standing(student, sheet.score, sheet.max_score, sheet.passed,
                        {i.id: i.points if graded else None for i in sheet.items})


@dataclass(frozen=True)
class Change:
    student: str
    before: Optional[Standing]  # None: not in the previous gradebook (new)
    after: Optional[Standing]  # None: not graded this time (gone)
    items: tuple[str, ...]  # "id before→after"

    @property
    def delta(self) -> Optional[float]:
        if self.before is None or self.after is None or self.before.score is None or self.after.score is None:
            return None
        return round(self.after.score - self.before.score, 4)

    @property
    def flipped(self) -> bool:
        return (self.before is not None and self.after is not None and self.before.passed is not None
                and self.after.passed is not None and self.before.passed != self.after.passed)

    @property
    def note(self) -> str:
        if self.before is None:
            return "new"
        if self.after is None:
            return "gone"
        if self.after.score is None:
            return "not graded"
        return "not graded before" if self.before.score is None else ""

    def row(self) -> dict[str, object]:
        return {"student": self.student, "before_score": self.before.score if self.before else None,
                "after_score": self.after.score if self.after else None, "delta": self.delta,
                "before_passed": self.before.passed if self.before else None,
                "after_passed": self.after.passed if self.after else None, "passed_flipped": self.flipped,
                "items_changed": "; ".join(self.items), "note": self.note}


def _points(value: Optional[float]) -> str:
    return "-" if value is None else csv_cell(float(value))


def diff(before: Mapping[str, Standing], after: Mapping[str, Standing]) -> list[Change]:
    """Every student whose standing differs, by student id."""
    changes = []
    for student in sorted(set(before) | set(after)):
        old, new = before.get(student), after.get(student)
        items: tuple[str, ...] = ()
        if old is not None and new is not None:
            ids = list(dict.fromkeys([*new.items, *old.items]))
            items = tuple(f"{i} {_points(old.items.get(i))}→{_points(new.items.get(i))}" for i in ids
                          if old.items.get(i) != new.items.get(i))
            if (old.score, old.max_score, old.passed) == (new.score, new.max_score, new.passed) and not items:
                continue
        changes.append(Change(student, old, new, items))
    return changes


@dataclass(frozen=True)
class Tally:
    changed: int  # students listed
    up: int
    down: int
    flipped_to_pass: int
    flipped_to_fail: int

    def line(self) -> str:
        """'3 changed: 2 up, 1 down; pass flips: 1 now passes, 0 now fails'."""
        return (f"{self.changed} changed: {self.up} up, {self.down} down; pass flips: {self.flipped_to_pass} now "
                f"pass{'es' if self.flipped_to_pass == 1 else ''}, {self.flipped_to_fail} now "
                f"fail{'s' if self.flipped_to_fail == 1 else ''}")

    def as_json(self) -> dict[str, int]:
        return {"changed": self.changed, "up": self.up, "down": self.down, "flipped_to_pass": self.flipped_to_pass,
                "flipped_to_fail": self.flipped_to_fail}


def tally(changes: Iterable[Change]) -> Tally:
    changes = list(changes)
    return Tally(len(changes), sum((c.delta or 0) > 0 for c in changes), sum((c.delta or 0) < 0 for c in changes),
                 sum(c.flipped and bool(c.after and c.after.passed) for c in changes),
                 sum(c.flipped and not (c.after and c.after.passed) for c in changes))


def _number(cell: str) -> Optional[float]:
    try:
        return float(cell) if cell.strip() else None
    except ValueError:
        return None


def read_gradebook(path: Path) -> dict[str, Standing]:
    """Each student's standing in a gradebook.csv this grader wrote (item columns: every column that is neither
    fixed, nor the quiz's, nor the hand-in's)."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        item_columns = [c for c in reader.fieldnames or [] if c not in FIXED + QUIZ + HAND_IN]
        standings = {}
        for row in reader:
            passed = {"TRUE": True, "FALSE": False}.get(row.get("passed", ""))
            standings[row["student"]] = Standing(
                row["student"], _number(row.get("score", "")), _number(row.get("max_score", "")), passed,
                {c.removeprefix("item:"): _number(row.get(c) or "") for c in item_columns if row.get(c, "") != ""})
        return standings


def write_changes(path: Path, changes: Iterable[Change]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({k: csv_cell(v) for k, v in c.row().items()} for c in changes)
    return path
