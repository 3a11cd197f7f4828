"""Writing one student's reports, and the instructor's class pages, to disk: the only module of grader.report with
side effects."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import numpy as np

from grader.facts import Facts
from grader.report.audience import Audience
from grader.report.gradescope import Visibility, sheet_results
from grader.report.html import render_html
from grader.report.instructor import Pair, StudentLine, render_instructor, render_similarity
from grader.report.markdown import render_markdown
from grader.report.summary import Digits
from grader.rubric.sheet import ScoreSheet


def student_dir(out_dir: Path, student: str) -> Path:
    """out_dir/<student>; the id must be one plain path component (ids come from students' file names)."""
    if not student or student in (".", "..") or "/" in student or "\\" in student or "\0" in student \
            or (os.altsep and os.altsep in student):
        raise ValueError(f"student id {student!r} cannot be a folder name: use one path component without slashes")
    return Path(out_dir) / student


def _write(path: Path, text: str) -> Path:
    # Write then rename: a reader (an LMS sync, a web server) never sees half a report.
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
    return path


def write_student_reports(out_dir: Path, student: str, facts: Facts, sheet: ScoreSheet, *,
                          images: Optional[np.ndarray] = None, labels: Optional[Digits] = None,
                          predictions: Optional[Digits] = None, execution_time: float,
                          audience: Audience = "student",
                          stdout_visibility: Visibility = "hidden", name: Optional[str] = None) -> dict[str, Path]:
    """Write report.html, report.md, results.json (Gradescope) and facts.json into out_dir/<student>/.

    `images` / `labels` / `predictions` are the whole test set's (optional: without
    images the misclassified grid is left out, without predictions its titles name
    only the true digit). `name` heads the reports beside the id. The reports are the student's copy
(`audience`="student": no hidden item, nothing about other students); results.json keeps every item with its
Gradescope visibility, which Gradescope enforces.
    Returns {"html", "markdown", "results", "facts"} -> path.
    """
    folder = student_dir(out_dir, student)
    folder.mkdir(parents=True, exist_ok=True)
    shown = f"{name} ({student})" if name else student  # the header; the folder stays the id
    return {
        "html": _write(folder / "report.html", render_html(
            facts, sheet, student=shown, audience=audience, images=images, labels=labels, predictions=predictions)),
        "markdown": _write(folder / "report.md", render_markdown(
            facts, sheet, student=shown, audience=audience, labels=labels, predictions=predictions)),
        "results": _write(folder / "results.json", json.dumps(
            sheet_results(sheet, facts, execution_time=execution_time, stdout_visibility=stdout_visibility),
            indent=2, ensure_ascii=False) + "\n"),
        "facts": _write(folder / "facts.json", json.dumps(facts.to_json(), indent=2, ensure_ascii=False) + "\n"),
    }


def write_class_pages(out_dir: Path, pairs: Sequence[Pair], students: Sequence[StudentLine], *,
                      title: str) -> dict[str, Path]:
    """The instructor's pages beside gradebook.csv: similarity.html and instructor.html."""
    out_dir = Path(out_dir)
    return {"similarity": _write(out_dir / "similarity.html", render_similarity(pairs, compared=len(students))),
            "instructor": _write(out_dir / "instructor.html", render_instructor(students, title=title))}
