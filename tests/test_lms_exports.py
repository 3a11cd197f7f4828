"""What goes back to the LMS: canvas.csv for Canvas's Gradebook import, Moodle's grading worksheet filled in
(every other byte as it was), and Moodle's feedback-files zip; the example class in both LMSs' layouts."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import pytest

from grader.cli.main import main
from grader.report.moodle import MoodleGrade, fill_worksheet

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CANVAS_EXPORT = EXAMPLES / "canvas-gradebook-export.csv"
WORKSHEET = EXAMPLES / "moodle-grading-worksheet.csv"


def canvas_import(text: str) -> tuple[dict[str, float], dict[str, dict[str, str]]]:
    """Read a file the way Canvas's Gradebook import does: header by name, assignment columns by the id in
    parentheses, the Points Possible row as points (never a student), students by ID."""
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    header = rows[0]
    assert header[:2] == ["Student", "ID"]
    points = {}
    students = {}
    for row in rows[1:]:
        cells = dict(zip(header, row, strict=False))
        if cells["Student"].strip() == "Points Possible":
            points = {h: float(v) for h, v in cells.items() if h.endswith(")") and v not in ("", "(read only)")}
            continue
        students[cells["ID"]] = cells
    return points, students


@pytest.fixture(scope="module")
def canvas_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("canvas") / "out"
    code = main([str(EXAMPLES / "submissions-canvas.zip"), "--rubric", "mnist-s3", "--mode", "static",
                 "--out", str(out), "--roster", str(CANVAS_EXPORT), "--canvas-assignment-id", "4242"])
    return code, out


def test_canvas_csv_round_trips_through_the_layout_canvas_exports(canvas_run):
    code, out = canvas_run
    assert code in (0, 1)
    raw = (out / "canvas.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw
    text = raw.decode("utf-8")
    export_points, exported = canvas_import(CANVAS_EXPORT.read_text(encoding="utf-8"))
    points, imported = canvas_import(text)
    column = "S3: under 20k parameters (4242)"
    header = next(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert header == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", column]
    assert text.lstrip("\ufeff").splitlines()[1].startswith("    Points Possible,")  # as Canvas writes the row
    assert points == {column: export_points[column]}
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as fh:
        gradebook = {r["student"]: r for r in csv.DictReader(fh)}
    assert sorted(imported) == ["48101", "48102", "48103", "48104", "48105", "48106"]  # the test student is not touched
    for uid, row in imported.items():
        for identity in ("Student", "SIS User ID", "SIS Login ID", "Section"):
            assert row[identity] == exported[uid][identity]
        assert float(row[column]) == float(gradebook[uid]["score"])
    assert imported["48101"]["Student"] == "Good, Ada" and gradebook["48101"]["name"] == "Good, Ada"
    assert gradebook["48105"]["late"] == "TRUE" and gradebook["48101"]["late"] == "FALSE"
    # the zip's files are gone once the class is graded; the look-alike check still saw them
    assert gradebook["48101"]["similar_to"].startswith("48104 (100%)") and gradebook["48102"]["similar_to"] == ""


def test_canvas_zip_names_the_reports(canvas_run):
    _, out = canvas_run
    assert "Good, Ada (48101)" in (out / "48101" / "report.html").read_text(encoding="utf-8")


def test_canvas_without_an_assignment_id_says_how_to_get_one(tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(EXAMPLES / "submissions-canvas.zip"), "--rubric", "mnist-s3", "--mode", "static",
                 "--out", str(out)]) in (0, 1)
    assert not (out / "canvas.csv").exists()
    assert "--canvas-assignment-id" in capsys.readouterr().err


def test_a_roster_with_several_assignments_and_no_id_stops_before_grading(tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(EXAMPLES / "submissions-canvas.zip"), "--rubric", "mnist-s3", "--mode", "static",
                 "--out", str(out), "--roster", str(CANVAS_EXPORT)]) == 2
    err = capsys.readouterr().err
    assert "2 assignments" in err and "S3: under 20k parameters (4242)" in err and "--canvas-assignment-id" in err
    assert not out.exists()


@pytest.mark.parametrize("flag, value, message", [
    ("--canvas-assignment-id", "S3", "is not a number"),
    ("--moodle-worksheet", "missing.csv", "no such file"),
    ("--roster", "missing.csv", "no such file"),
])
def test_lms_flag_mistakes_are_usage_errors(tmp_path, capsys, flag, value, message):
    assert main([str(EXAMPLES / "submissions"), "--rubric", "mnist-s3", "--mode", "static",
                 "--out", str(tmp_path / "out"), flag, value]) == 2
    assert message in capsys.readouterr().err


@pytest.fixture(scope="module")
def moodle_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("moodle") / "out"
    code = main([str(EXAMPLES / "submissions"), "--rubric", "mnist-s3", "--mode", "static", "--out", str(out),
                 "--moodle-worksheet", str(WORKSHEET), "--json"])
    return code, out


def test_moodle_worksheet_keeps_every_untouched_cell_byte_for_byte(moodle_run):
    code, out = moodle_run
    assert code in (0, 1)
    before = WORKSHEET.read_bytes().split(b"\n")
    after = (out / WORKSHEET.name).read_bytes().split(b"\n")
    assert len(before) == len(after) and before[0] == after[0]
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as fh:
        gradebook = {r["student"]: r for r in csv.DictReader(fh)}
    for old, new in zip(before[1:], after[1:], strict=True):
        cells = next(csv.reader([old.decode()]), [])
        if not cells:
            assert new == old
            continue
        participant = cells[0].removeprefix("Participant ")
        if participant not in gradebook or gradebook[participant]["verdict"] == "nothing_to_grade":
            assert new == old  # a participant who handed in nothing (a gradebook row, no grade): untouched
            continue
        row = gradebook[participant]
        grade = float(row["score"]) * 100 / float(row["max_score"])
        expected_prefix = old[:-1].replace(b",,100.00,", f",{grade:.2f},100.00,".encode(), 1)
        assert new.startswith(expected_prefix + b',"')  # only Grade and then Feedback comments changed
        feedback = next(csv.reader([new.decode()]))[-1]
        assert feedback.startswith(f"{row['score']} / {row['max_score']} points")


def test_moodle_feedback_zip_in_the_layout_moodle_reads(moodle_run):
    _, out = moodle_run
    with zipfile.ZipFile(out / "moodle-feedback.zip") as zf:
        names = sorted(zf.namelist())
        assert names[0] == "Ada Good_1001_assignsubmission_file_report.html"
        assert len(names) == 6 and b"Ada Good (1001)" in zf.read(names[0])


def test_fill_worksheet_keeps_bom_crlf_quotes_and_multiline_cells():
    text = ('\ufeffIdentifier,"Full name",Status,Grade,"Maximum Grade","Online text","Feedback comments"\r\n'
            '"Participant 7","Zoë ""Z"" Ng","Submitted for grading",,20.00,"line one\r\nline, two",old\r\n'
            '"Participant 8",Solo,"No submission",,20.00,,\r\n')
    filled, unmatched = fill_worksheet(text, [MoodleGrade("7", 15, 20, 'ok, "good"'), MoodleGrade("9", 1, 20, "x")])
    assert unmatched == ["9"]
    assert filled == text.replace(',,20.00,"line one\r\nline, two",old',
                                  ',15.00,20.00,"line one\r\nline, two","ok, ""good"""')


def test_moodle_worksheet_mistakes_say_what_to_do(tmp_path, capsys):
    bad = tmp_path / "grades.csv"
    bad.write_text("Name,Score\nAda,1\n", encoding="utf-8")
    assert main([str(EXAMPLES / "submissions"), "--rubric", "mnist-s3", "--mode", "static",
                 "--out", str(tmp_path / "out"), "--moodle-worksheet", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "not a Moodle grading worksheet" in err and "Identifier" in err and "Download grading worksheet" in err
    latin = tmp_path / "latin.csv"
    latin.write_bytes('Identifier,Grade\n"Participant 1","Zo\xe9"\n'.encode("latin-1"))
    assert main([str(EXAMPLES / "submissions"), "--rubric", "mnist-s3", "--mode", "static",
                 "--out", str(tmp_path / "out2"), "--moodle-worksheet", str(latin)]) == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_moodle_gradebook_json_has_names(moodle_run, capsys):
    _, out = moodle_run
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as fh:
        names = {r["student"]: r["name"] for r in csv.DictReader(fh)}
    assert names == {"1001": "Ada Good", "1002": "Ben Big", "1003": "Cy Dense", "1004": "Di Terse", "1005": "Ed Old",
                     "1006": "Fay Modular", "1007": "No Show"}  # No Show handed in nothing: a row that says so
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as fh:
        late = {r["student"]: r["late"] for r in csv.DictReader(fh)}
    assert late["1005"] == "TRUE" and late["1001"] == ""  # the worksheet's status says who was late
    assert json.loads((out / "1001" / "facts.json").read_text())["submission"]["late"] is None
