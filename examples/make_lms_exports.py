"""Writes the example class as the two LMSs hand it out, from examples/submissions (Moodle-named folders):

    python examples/make_lms_exports.py

- `submissions-canvas.zip`: the same files (notebooks, models, Fay's model.py and utils.py) as Canvas's
  "Download Submissions" zip names them, flat, `lastnamefirstname_[LATE_]<canvas user id>_<attachment id>_<file>`
  (Ed Old handed in late);
- `canvas-gradebook-export.csv`: the course's gradebook as Canvas's Export gives it (the roster that
  names the students and the assignment, "S3: under 20k parameters (4242)");
- `moodle-grading-worksheet.csv`: the assignment's offline grading worksheet as Moodle's "Download
  grading worksheet" gives it, one row per participant (the numbers in the folder names).

    grade examples/submissions-canvas.zip --rubric mnist-s3 --mode evaluate \
        --roster examples/canvas-gradebook-export.csv --canvas-assignment-id 4242
    grade examples/submissions --rubric mnist-s3 --mode evaluate \
        --moodle-worksheet examples/moodle-grading-worksheet.csv
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

HERE = Path(__file__).parent
SUBMISSIONS = HERE / "submissions"
CANVAS_IDS = {"1001": 48101, "1002": 48102, "1003": 48103, "1004": 48104, "1005": 48105, "1006": 48106}
LATE = {"1005"}
ASSIGNMENT = ("S3: under 20k parameters", 4242)
STAMP = (2026, 11, 30, 10, 0, 0)  # fixed entry times: the zip is the same bytes on every run


def students() -> list[tuple[str, str, Path]]:
    """(participant number, full name, folder) per student folder."""
    out = []
    for folder in sorted(SUBMISSIONS.iterdir()):
        match = re.match(r"^(?P<name>.+?)_(?P<id>\d+)_assignsubmission_file_$", folder.name)
        if match:
            out.append((match["id"], match["name"], folder))
    return out


def canvas_zip() -> None:
    with zipfile.ZipFile(HERE / "submissions-canvas.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        attachment = 90001
        for participant, name, folder in students():
            first, last = name.split(" ", 1)
            squashed = (last + first).lower()
            late = "LATE_" if participant in LATE else ""
            for path in sorted(folder.iterdir()):
                entry = f"{squashed}_{late}{CANVAS_IDS[participant]}_{attachment}_{path.name}"
                zf.writestr(zipfile.ZipInfo(entry, STAMP), path.read_bytes(), zipfile.ZIP_DEFLATED)
                attachment += 1


def canvas_export() -> None:
    title, number = ASSIGNMENT
    lines = ["Student,ID,SIS User ID,SIS Login ID,Section,Quiz 1 (4240),"
             f"{title} ({number}),Current Score,Unposted Current Score,Final Score,Unposted Final Score",
             "    Points Possible,,,,,10.00,100.00,(read only),(read only),(read only),(read only)"]
    for participant, name, _ in students():
        first, last = name.split(" ", 1)
        uid = CANVAS_IDS[participant]
        lines.append(f'"{last}, {first}",{uid},S{participant},{first.lower()}.{last.lower()},CNN 2026 A,8.00,,'
                     "80.00,80.00,80.00,8.00")
    lines.append('"Student, Test",48199,,,CNN 2026 A,,,,,,')
    (HERE / "canvas-gradebook-export.csv").write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")


def moodle_worksheet() -> None:
    lines = ['Identifier,"Full name","Email address",Status,Grade,"Maximum Grade","Grade can be changed",'
             '"Last modified (submission)","Last modified (grade)","Feedback comments"']
    for participant, name, _ in students():
        first, last = name.split(" ", 1)
        status = "Submitted for grading" if participant not in LATE else "Submitted for grading 1 day 3 hours late"
        lines.append(f'"Participant {participant}","{name}",{first.lower()}.{last.lower()}@example.edu,'
                     f'"{status}",,100.00,Yes,"Monday, 30 November 2026, 10:00 AM",-,')
    lines.append('"Participant 1007","No Show",no.show@example.edu,"No submission",,100.00,Yes,-,-,')
    (HERE / "moodle-grading-worksheet.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    canvas_zip()
    canvas_export()
    moodle_worksheet()
