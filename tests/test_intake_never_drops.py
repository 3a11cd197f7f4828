"""Intake never drops a student: a zip in a student's folder is unpacked (a zip in that zip too, under the class
zip's limits), several notebooks go by the rubric's `notebook:` glob or become that student's verdict naming them,
and every student found in the folder or the roster has a gradebook row and a report that says why nothing was
graded. `grade check FOLDER` takes a folder and says what to do when it cannot pick the notebook."""

from __future__ import annotations

import csv
import io
import os
import shutil
import time
import zipfile
from pathlib import Path

import pytest

from grader import intake
from grader.cli.main import EXIT_USAGE, main
from grader.errors import GraderError
from grader.intake import discover, hand_in_at
from tests.static_rubrics import COMMENTS_ONLY

NOTEBOOK = Path(__file__).parents[1] / "examples" / "source" / "ada_good.ipynb"  # every cell commented: 10/10
MOODLE = "_assignsubmission_file_"


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _grade(klass: Path, tmp_path: Path, *extra: str, rubric: str = COMMENTS_ONLY) -> dict[str, dict[str, str]]:
    """Grade the class with the CLI (a static rubric: nothing runs); the gradebook's rows by student."""
    (tmp_path / "rubric.yaml").write_text(rubric)
    out = tmp_path / "out"
    main([str(klass), "--rubric", str(tmp_path / "rubric.yaml"), "--out", str(out), *extra])
    with open(out / "gradebook.csv", newline="") as fh:
        return {row["student"]: row for row in csv.DictReader(fh)}


def _report(tmp_path: Path, student: str) -> str:
    return (tmp_path / "out" / student / "report.md").read_text()


@pytest.fixture()
def klass(tmp_path) -> Path:
    """One student who handed in a notebook, so the class is a class; the tests add the others."""
    folder = tmp_path / "class" / f"Ann Lee_1001{MOODLE}"
    folder.mkdir(parents=True)
    shutil.copy(NOTEBOOK, folder / "S3.ipynb")
    return tmp_path / "class"


def test_a_folder_holding_only_a_zip_is_unpacked_and_graded(klass, tmp_path):
    (klass / f"Bo Kim_1002{MOODLE}").mkdir()
    (klass / f"Bo Kim_1002{MOODLE}" / "my_work.zip").write_bytes(_zip({"my_work/S3.ipynb": NOTEBOOK.read_bytes()}))
    (klass / f"Cy Dee_1003{MOODLE}").mkdir()  # a zip of the folder that held their zip
    (klass / f"Cy Dee_1003{MOODLE}" / "my_work.zip").write_bytes(_zip({"inner.zip": _zip({
        "S3.ipynb": NOTEBOOK.read_bytes()}), "__MACOSX/._inner.zip": b"\x00\x05\x16\x07 resource fork"}))
    rows = _grade(klass, tmp_path)
    assert set(rows) == {"1001", "1002", "1003"}
    assert rows["1002"]["verdict"] == "" and rows["1002"]["score"] == rows["1001"]["score"] != "0"
    assert rows["1003"]["verdict"] == "" and rows["1003"]["score"] == rows["1001"]["score"]


def test_zips_nested_too_deep_are_that_students_verdict(klass, tmp_path):
    data = _zip({"S3.ipynb": NOTEBOOK.read_bytes()})
    for _ in range(intake.MAX_NESTED_ZIPS):
        data = _zip({"again.zip": data})
    (klass / f"Bo Kim_1002{MOODLE}").mkdir()
    (klass / f"Bo Kim_1002{MOODLE}" / "my_work.zip").write_bytes(data)
    rows = _grade(klass, tmp_path)
    assert rows["1001"]["verdict"] == ""  # the class goes on
    assert rows["1002"]["verdict"] == "invalid_notebook" and rows["1002"]["score"] == "0"
    report = _report(tmp_path, "1002")
    assert f"zips nested more than {intake.MAX_NESTED_ZIPS} deep" in report
    assert "hand in the notebook, or one zip of the folder that holds it" in report


def test_zips_in_a_zip_share_one_byte_limit(tmp_path, monkeypatch):
    """Each inner zip is under the limit, together they are not: a zip in a zip is no way past it."""
    monkeypatch.setattr(intake, "MAX_TOTAL_BYTES", 1 << 20)  # the budget: 4 MiB for everything unpacked
    noise = [os.urandom(3 << 20), os.urandom(3 << 20)]  # incompressible: no ratio check stops it first
    folder = tmp_path / "class" / f"Bo Kim_1002{MOODLE}"
    folder.mkdir(parents=True)
    (folder / "my_work.zip").write_bytes(_zip({"a.zip": _zip({"S3.ipynb": b"{}", "a.bin": noise[0]}),
                                               "b.zip": _zip({"b.bin": noise[1]})}))
    [sub] = discover(tmp_path / "class", workspace=tmp_path / "workspace")
    assert sub.unreadable is not None and "refusing to unpack" in sub.unreadable and "MiB" in sub.unreadable


def test_two_notebooks_are_that_students_verdict_naming_both(klass, tmp_path):
    folder = klass / f"Bo Kim_1002{MOODLE}"
    folder.mkdir()
    shutil.copy(NOTEBOOK, folder / "S3_draft.ipynb")
    shutil.copy(NOTEBOOK, folder / "S3_final.ipynb")
    os.utime(folder / "S3_draft.ipynb", (time.time() + 60, time.time() + 60))  # the draft is the newer file
    rows = _grade(klass, tmp_path)
    assert rows["1002"]["verdict"] == "nothing_to_grade" and rows["1002"]["score"] == "0"
    report = _report(tmp_path, "1002")
    assert (f"nothing to grade in Bo Kim_1002{MOODLE}/: 2 notebooks (S3_draft.ipynb, S3_final.ipynb) and nothing "
            "says which one to grade") in report
    assert "keep only the notebook to grade (rename or remove the others)" in report
    assert "the rubric's `notebook:` pattern" in report


def test_the_rubrics_notebook_pattern_picks_one(klass, tmp_path):
    folder = klass / f"Bo Kim_1002{MOODLE}"
    (folder / "scratch").mkdir(parents=True)
    (folder / "scratch" / "S3_draft.ipynb").write_text("{}")  # not even a notebook: grading it would fail
    shutil.copy(NOTEBOOK, folder / "S3_final.ipynb")
    rows = _grade(klass, tmp_path, rubric=COMMENTS_ONLY + "notebook: '*final*.ipynb'\n")
    assert rows["1002"]["verdict"] == "" and rows["1002"]["score"] == "10"
    assert rows["1001"]["verdict"] == "nothing_to_grade"  # S3.ipynb is not named so
    [_, bo] = discover(klass, notebook="*final*.ipynb")
    assert bo.path == folder / "S3_final.ipynb" and bo.root == folder


def test_a_pattern_no_notebook_matches_says_what_it_found(tmp_path):
    folder = tmp_path / "class" / f"Bo Kim_1002{MOODLE}"
    folder.mkdir(parents=True)
    (folder / "homework.ipynb").write_text("{}")
    (tmp_path / "class" / "smith_1003_7_S4.ipynb").write_text("{}")  # Canvas: matched without its prefix
    bo, smith = discover(tmp_path / "class", notebook="S4*.ipynb")
    assert bo.nothing_to_grade == (f"nothing to grade in Bo Kim_1002{MOODLE}/: no notebook matching the rubric's "
                                   "`notebook: S4*.ipynb` (found: homework.ipynb); hand in the notebook the "
                                   "assignment asks for, named to match S4*.ipynb")
    assert smith.nothing_to_grade is None and smith.path.name == "smith_1003_7_S4.ipynb"


def test_a_student_with_nothing_gradable_has_a_row_and_a_report_saying_why(klass, tmp_path, capsys):
    (klass / f"Bo Kim_1002{MOODLE}").mkdir()
    (klass / f"Bo Kim_1002{MOODLE}" / "homework.pdf").write_bytes(b"%PDF-1.4")
    (klass / f"Cy Dee_1003{MOODLE}").mkdir()  # an empty folder
    (klass / "smith_1004_9_answers.docx").write_bytes(b"PK")  # Canvas: a file that is not a notebook
    rows = _grade(klass, tmp_path)
    assert set(rows) == {"1001", "1002", "1003", "1004"}
    for student in ("1002", "1003", "1004"):
        assert rows[student]["verdict"] == "nothing_to_grade" and rows[student]["score"] == "0"
    assert (f"nothing to grade in Bo Kim_1002{MOODLE}/: no notebook (.ipynb), script (.py), exported model (.pt2), "
            "zip of them or GitHub link (handed in: homework.pdf); hand in the notebook itself (or a zip of the "
            "folder that holds it)") in _report(tmp_path, "1002")
    assert "(the folder is empty)" in _report(tmp_path, "1003")
    assert "(handed in: smith_1004_9_answers.docx)" in _report(tmp_path, "1004")
    assert "could not be picked out of the hand-in, so nothing was graded" in _report(tmp_path, "1002")
    assert ("note: 1002, 1003, 1004: nothing to grade (no notebook in the hand-in, several and nothing to pick one, "
            "or no hand-in at all); scored 0, and each one's verdict and report say why and what to do"
            ) in " ".join(capsys.readouterr().err.split())


def test_a_student_on_the_roster_who_handed_in_nothing_has_a_row(klass, tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("id,name\n1001,Ann Lee\n1009,Di Ray\n")
    rows = _grade(klass, tmp_path, "--roster", str(roster))
    assert set(rows) == {"1001", "1009"}
    assert rows["1009"]["verdict"] == "nothing_to_grade" and rows["1009"]["name"] == "Di Ray"
    assert ("nothing to grade in class: no file or folder there carries the id 1009, which the roster lists; if the "
            "student handed in, check that the file's name carries that id") in _report(tmp_path, "1009")


def test_a_roster_student_with_no_hand_in_is_left_as_is_in_the_lms_files(klass, tmp_path, capsys):
    worksheet = tmp_path / "Grades.csv"
    worksheet.write_text("Identifier,Full name,Email address,Status,Grade,Maximum Grade,Grade can be changed,"
                         "Last modified (grade),Feedback comments\n"
                         "Participant 1001,Ann Lee,ann@example.org,Submitted for grading,,10.00,Yes,-,\n"
                         "Participant 1009,Di Ray,di@example.org,No submission,,10.00,Yes,-,\n")
    rows = _grade(klass, tmp_path, "--moodle-worksheet", str(worksheet))
    assert set(rows) == {"1001", "1009"} and rows["1009"]["verdict"] == "nothing_to_grade"
    filled = (tmp_path / "out" / "Grades.csv").read_text().splitlines()
    assert filled[1].startswith("Participant 1001,Ann Lee,") and ",10.00,Yes," in filled[1]
    assert filled[2] == "Participant 1009,Di Ray,di@example.org,No submission,,10.00,Yes,-,"
    assert ("1009: on the roster with no hand-in, so left as they are in every file for the LMS (its policy for "
            "missing work applies); their gradebook rows say so") in " ".join(capsys.readouterr().err.split())


def test_a_folder_of_folders_without_one_hand_in_is_not_a_class(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.md").write_text("# notes")
    with pytest.raises(GraderError, match="no submissions found"):
        discover(tmp_path)


# --- grade check FOLDER ----------------------------------------------------------------------------------------

def test_grade_check_takes_a_folder(tmp_path, capsys):
    folder = tmp_path / "repo"
    folder.mkdir()
    shutil.copy(NOTEBOOK, folder / "S3.ipynb")
    (tmp_path / "rubric.yaml").write_text(COMMENTS_ONLY)
    code = main(["check", str(folder), "--static", "--rubric", str(tmp_path / "rubric.yaml")])
    out = capsys.readouterr()
    assert "no such file" not in out.err + out.out
    assert code in (0, 1) and f"{folder}" in out.out and "points" in out.out


def test_grade_check_on_a_folder_with_two_notebooks_says_which_to_give(tmp_path, capsys):
    folder = tmp_path / "repo"
    folder.mkdir()
    shutil.copy(NOTEBOOK, folder / "a.ipynb")
    shutil.copy(NOTEBOOK, folder / "b.ipynb")
    (tmp_path / "rubric.yaml").write_text(COMMENTS_ONLY)
    assert main(["check", str(folder), "--static", "--rubric", str(tmp_path / "rubric.yaml")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"error: {folder}: 2 notebooks (a.ipynb, b.ipynb) and nothing says which one to grade" in err
    assert f"-> give the notebook's path ({folder / 'NAME.ipynb'}), or keep only that notebook in the folder" in err


def test_grade_check_on_a_folder_holding_a_zip_says_to_unzip_it(tmp_path):
    (tmp_path / "my_work.zip").write_bytes(_zip({"S3.ipynb": b"{}"}))
    with pytest.raises(GraderError) as err:
        hand_in_at(tmp_path)
    assert err.value.what.endswith("in this folder, only my_work.zip")
    assert err.value.fix == "unzip it and give the folder it makes, or the notebook's path"


def test_only_one_student_again_keeps_the_rows_with_nothing_to_grade(klass, tmp_path):
    (klass / f"Bo Kim_1002{MOODLE}").mkdir()  # nothing in it: no run, nothing cached, still a row
    _grade(klass, tmp_path)
    rows = _grade(klass, tmp_path, "--only", "1001")
    assert set(rows) == {"1001", "1002"} and rows["1002"]["verdict"] == "nothing_to_grade"


@pytest.mark.parametrize("path, pattern, expected", [
    ("S5/S5.ipynb", "S5/*.ipynb", True),
    ("era-v1-main/S5/S5.ipynb", "S5/*.ipynb", True),  # a zip or repository that wraps everything in a folder
    ("S4/S4.ipynb", "S5/*.ipynb", False),
    ("notebooks/final.ipynb", "*final*.ipynb", True),
    ("draft.ipynb", "*final*.ipynb", False),
])
def test_the_notebook_glob_matches_the_path_or_its_end(path, pattern, expected):
    from grader.handin import matches

    assert matches(path, pattern) is expected
