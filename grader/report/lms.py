"""What goes back to the LMS, beside the gradebook: canvas.csv (Canvas's Gradebook import), the Moodle grading
worksheet filled in, and moodle-feedback.zip (each student's report.html)."""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Protocol

from grader.errors import GraderError
from grader.intake import Submission, canvas_assignments
from grader.report.audience import student_comment
from grader.report.canvas import CanvasStudent, canvas_rows, write_canvas_csv
from grader.report.moodle import MoodleGrade, WorksheetError, feedback_entry, fill_worksheet, has_feedback_column
from grader.rubric.schema import Rubric
from grader.rubric.sheet import ScoreSheet


class Graded(Protocol):
    """What the LMS files read of one graded submission (`grader.api.Result` is one)."""

    @property
    def student(self) -> str: ...

    @property
    def submission(self) -> Submission: ...

    @property
    def sheet(self) -> ScoreSheet: ...


@dataclass(frozen=True)
class LmsExports:
    """The files written for the LMS, and what the instructor should know about them."""

    written: dict[str, Path]  # "canvas" | "moodle_worksheet" | "moodle_feedback" -> the file
    notes: list[str]  # what was not written, or not matched, and what to do about it


def canvas_target(rubric: Rubric, assignment_id: Optional[str] = None,
                  roster: Optional[Path] = None) -> Optional[tuple[str, str]]:
    """(assignment id, title) for canvas.csv: the id given, else the one assignment of a Canvas gradebook export
    given as the roster (or the one titled like the rubric); None when neither names one."""
    if assignment_id is not None and not str(assignment_id).isdigit():
        raise GraderError(f"--canvas-assignment-id {assignment_id!r} is not a number", where="--canvas-assignment-id",
                          fix="give the number after /assignments/ in the assignment's Canvas address")
    assignments = canvas_assignments(Path(roster)) if roster is not None else {}
    if assignment_id is not None:
        return str(assignment_id), assignments.get(str(assignment_id), rubric.title)
    if len(assignments) == 1:
        return next(iter(assignments.items()))
    titled = [(i, t) for i, t in assignments.items() if t.strip().casefold() == rubric.title.strip().casefold()]
    if len(titled) == 1:
        return titled[0]
    if assignments:
        listed = ", ".join(f"{t} ({i})" for i, t in assignments.items())
        raise GraderError(f"the Canvas gradebook export has {len(assignments)} assignments ({listed}) and none is "
                          f"titled like the rubric ({rubric.title!r})", where=str(roster),
                          fix="say which with --canvas-assignment-id N")
    return None


def write_lms_exports(results: Iterable[Graded], out: Path, rubric: Rubric, *,
                      canvas_assignment_id: Optional[str] = None, roster: Optional[Path] = None,
                      moodle_worksheet: Optional[Path] = None) -> LmsExports:
    """Files that import back into the LMS, beside the gradebook in `out` (write_outputs wrote the reports):

    Students on the roster who handed in nothing are left out of these files (their gradebook row is there).
    canvas.csv (Canvas's Gradebook import) when an assignment is known (`canvas_target`); the Moodle grading
    worksheet filled in (same file name, in `out`) when one is given; moodle-feedback.zip (each report.html, for
    "Upload multiple feedback files in a zip") when the submissions carry Moodle's participant numbers and names.
    """
    results = sorted(results, key=lambda r: r.student)
    out = Path(out)
    written: dict[str, Path] = {}
    notes: list[str] = []
    absent = [r.student for r in results if not r.submission.handed_in]
    results = [r for r in results if r.submission.handed_in]  # the LMS's own policy for missing work applies
    target = canvas_target(rubric, canvas_assignment_id, roster)
    if target is not None:
        students = [CanvasStudent(r.student, r.sheet.score_out_of(rubric.max_score), r.submission.name,
                                  r.submission.sis_user_id,
                                  r.submission.sis_login_id, r.submission.section) for r in results]
        written["canvas"] = write_canvas_csv(out / "canvas.csv", canvas_rows(
            students, title=target[1], assignment_id=target[0], points_possible=rubric.max_score))
        odd = [r.student for r in results if not r.student.isdigit()]
        if odd:
            notes.append(f"canvas.csv: {', '.join(odd)} are not Canvas user ids (not numbers), so Canvas will not "
                         "match them; grade the zip Canvas exported, or give --roster")
    elif any(r.submission.lms == "canvas" for r in results):
        notes.append("canvas.csv not written: Canvas file names carry no assignment id; give --canvas-assignment-id N "
                     "(the number after /assignments/ in its address) or --roster with Canvas's gradebook export")
    if moodle_worksheet is not None:
        source = Path(moodle_worksheet)
        text = check_moodle_worksheet(source)
        see = "The attached report.html explains each item."
        grades = [MoodleGrade(r.student, r.sheet.score, r.sheet.max_score, student_comment(r.sheet, see=see))
                  for r in results if r.sheet.score is not None]  # not graded: the row is left as Moodle wrote it
        filled, unmatched = fill_worksheet(text, grades)
        target_path = out / source.name
        with open(target_path, "w", encoding="utf-8", newline="") as fh:
            fh.write(filled)
        written["moodle_worksheet"] = target_path
        if unmatched:
            notes.append(f"{source.name}: no row for participant {', '.join(unmatched)} (graded, but not in the "
                         "worksheet: download it again after they submitted)")
        if not has_feedback_column(text):
            notes.append(f"{source.name}: no Feedback comments column, so only grades were written; turn on "
                         "Feedback comments (and the offline grading worksheet) in the assignment's settings")
    moodle = [r for r in results if r.submission.lms == "moodle" or moodle_worksheet is not None]
    if moodle:
        named = [(r.submission.name, r.student) for r in moodle if r.submission.name and r.sheet.score is not None
                 and (out / r.student / "report.html").is_file()]
        if named:
            path = out / "moodle-feedback.zip"
            with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
                for name, student in named:
                    zf.write(out / student / "report.html", feedback_entry(name, student))
            written["moodle_feedback"] = path
        nameless = [r.student for r in moodle if not r.submission.name]
        if nameless:
            notes.append("moodle-feedback.zip leaves out " + ", ".join(nameless)
                         + ": no name known (Moodle matches on name and participant); give --roster")
    if absent and written:
        notes.append(f"{', '.join(absent)}: on the roster with no hand-in, so left as they are in every file for the "
                     "LMS (its policy for missing work applies); their gradebook rows say so")
    not_graded = [r.student for r in results if r.sheet.score is None]
    if not_graded and written:
        notes.append(f"{', '.join(not_graded)}: not graded (the grader failed), so left blank in every file for "
                     "the LMS; grade again once the grader works")
    return LmsExports(written, notes)


def check_moodle_worksheet(path: Path) -> str:
    """The worksheet's text, checked to be one (GraderError says what to download instead)."""
    text = _read_worksheet(path)
    try:
        fill_worksheet(text, [])
    except WorksheetError as err:
        raise GraderError(f"not a Moodle grading worksheet: {err}", where=str(path),
                          fix="download it from the assignment: View all submissions > Grading action > "
                              "Download grading worksheet") from None
    return text


def _read_worksheet(path: Path) -> str:
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return fh.read()
    except OSError as exc:
        raise GraderError(f"cannot read the Moodle grading worksheet ({exc.strerror})", where=str(path),
                          fix="give the CSV Moodle's Download grading worksheet saved") from None
    except UnicodeDecodeError:
        raise GraderError("the Moodle grading worksheet is not UTF-8 (it was saved by a spreadsheet?)",
                          where=str(path), fix="download it again from Moodle and give that file unchanged") from None
