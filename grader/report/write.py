"""Writing one student's reports to disk: the only module of grader.report with side effects."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from grader.facts import Facts
from grader.report.gradescope import Visibility, sheet_results
from grader.report.html import render_html
from grader.report.markdown import render_markdown
from grader.report.summary import Audience
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
                          images: Optional[np.ndarray] = None, labels: Optional[Sequence[int]] = None,
                          predictions: Optional[Sequence[int]] = None, execution_time: float,
                          audience: Audience = "student",
                          stdout_visibility: Visibility = "hidden", name: Optional[str] = None,
                          notes: Sequence[str] = ()) -> dict[str, Path]:
    """Write report.html, report.md, results.json (Gradescope) and facts.json into out_dir/<student>/.

    `images` / `labels` / `predictions` are the whole test set's (optional: without
    images the misclassified grid is left out, without predictions its titles name
    only the true digit). `name` heads the reports beside the id; `notes` (look-alike submissions) go under it.
    Returns {"html", "markdown", "results", "facts"} -> path.
    """
    folder = student_dir(out_dir, student)
    folder.mkdir(parents=True, exist_ok=True)
    shown = f"{name} ({student})" if name else student  # the header; the folder stays the id
    return {
        "html": _write(folder / "report.html", render_html(
            facts, sheet, student=shown, audience=audience, images=images, labels=labels, predictions=predictions,
            notes=notes)),
        "markdown": _write(folder / "report.md", render_markdown(
            facts, sheet, student=shown, audience=audience, labels=labels, predictions=predictions, notes=notes)),
        "results": _write(folder / "results.json", json.dumps(
            sheet_results(sheet, facts, execution_time=execution_time, stdout_visibility=stdout_visibility),
            indent=2, ensure_ascii=False) + "\n"),
        "facts": _write(folder / "facts.json", json.dumps(facts.to_json(), indent=2, ensure_ascii=False) + "\n"),
    }
