"""Names, ids and late flags from Canvas and Moodle file names and rosters; the rubric's late penalty."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from grader import yamlio
from grader.cli.main import main
from grader.errors import GraderError
from grader.facts import Facts
from grader.intake import discover, identify, read_roster, with_roster
from grader.rubric.load import rubric_from_yaml
from grader.rubric.score import score

NOTEBOOKS = Path(__file__).parent / "fixtures" / "notebooks"

STATIC_RUBRIC = """\
id: comments-only
title: Comments only
mode: static
late: {penalty: 10%}
items:
  - id: cells
    title: At least three code cells
    fact: notebook.code_cells
    ge: 3
    points: 20
"""


@pytest.mark.parametrize("name, student, who, late, lms", [
    ("goodada_1001_555_hw.ipynb", "1001", None, False, "canvas"),
    ("goodada_LATE_1001_555_hw.ipynb", "1001", None, True, "canvas"),
    ("Ada Good_17_assignsubmission_file_", "17", "Ada Good", None, "moodle"),
    ("Jean-Luc O'Neil_18_assignsubmission_onlinetext_", "18", "Jean-Luc O'Neil", None, "moodle"),
    ("Ada Good_17_assignsubmission_file_notebook.ipynb", "17", "Ada Good", None, "moodle"),
    ("alice.ipynb", "alice", None, None, None),
])
def test_file_names_give_id_name_late_and_lms(name, student, who, late, lms):
    got = identify(name)
    assert (got.student, got.name, got.late, got.lms) == (student, who, late, lms)


def test_moodle_number_is_the_participant_number_of_the_worksheet(tmp_path):
    (tmp_path / "Ada Good_17_assignsubmission_file_").mkdir()
    (tmp_path / "Ada Good_17_assignsubmission_file_" / "nb.ipynb").write_text("{}")
    worksheet = tmp_path / "grades.csv"
    worksheet.write_text('Identifier,"Full name","Email address",Status,Grade\n'
                         'Participant 17,"Ada Good",ada@example.org,"Submitted for grading - 1 day 2 hours late",\n',
                         encoding="utf-8")
    sub, = with_roster(discover(tmp_path), read_roster(worksheet))
    assert (sub.student, sub.name, sub.email, sub.late, sub.lms) == (
        "17", "Ada Good", "ada@example.org", True, "moodle")


def test_canvas_export_as_roster_fills_names_sections_and_sis_ids(tmp_path):
    (tmp_path / "goodada_LATE_1001_9_hw.ipynb").write_text("{}")
    (tmp_path / "bigben_1002_9_hw.ipynb").write_text("{}")
    export = tmp_path / "export.csv"
    export.write_text('\ufeffStudent,ID,SIS User ID,SIS Login ID,Section,HW 1 (77),Current Score\n'
                      '    Points Possible,,,,,100,(read only)\n'
                      '"Good, Ada",1001,S1,ada,Sec A,,\n"Big, Ben",1002,S2,ben,Sec B,,\n', encoding="utf-8")
    subs = with_roster(discover(tmp_path), read_roster(export))
    assert [(s.student, s.name, s.sis_user_id, s.sis_login_id, s.section, s.late) for s in subs] == [
        ("1001", "Good, Ada", "S1", "ada", "Sec A", True), ("1002", "Big, Ben", "S2", "ben", "Sec B", False)]


def test_generic_roster_and_its_errors(tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("ID,Name,Email\n1001,Ada Good,ada@x.org\n", encoding="utf-8")
    assert read_roster(roster)["1001"].name == "Ada Good"
    bad = tmp_path / "bad.csv"
    bad.write_text("who,mail\nAda,ada@x.org\n", encoding="utf-8")
    with pytest.raises(GraderError, match="no id column") as err:
        read_roster(bad)
    assert err.value.where == str(bad) and "`id`" in err.value.fix
    with pytest.raises(GraderError, match="cannot read the roster"):
        read_roster(tmp_path / "missing.csv")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("id,name\n1,Zo\xe9\n".encode("latin-1"))
    with pytest.raises(GraderError, match="not UTF-8"):
        read_roster(latin)


def _rubric(late: str):
    return rubric_from_yaml(yamlio.loads(STATIC_RUBRIC.replace("{penalty: 10%}", late), "r.yaml"))


def test_late_penalty_percent_of_the_maximum_and_points_never_below_zero():
    on_time = Facts.model_validate({"notebook": {"code_cells": 5}, "submission": {"late": False}})
    late = Facts.model_validate({"notebook": {"code_cells": 5}, "submission": {"late": True}})
    assert score(on_time, _rubric("{penalty: 10%}")).score == 20
    sheet = score(late, _rubric("{penalty: 10%}"))
    assert (sheet.score, sheet.late_penalty, sheet.passed) == (18, 2, True)
    assert score(late, _rubric("{penalty: 5}")).score == 15
    failed = Facts.model_validate({"notebook": {"code_cells": 1}, "submission": {"late": True}})
    assert score(failed, _rubric("{penalty: 50%}")).score == 0


@pytest.mark.parametrize("late, message", [("{penalty: ten}", "'ten' is not a percentage"),
                                           ("{penalty: 150%}", "'150%' is not a percentage"),
                                           ("{penalty: -3}", "-3 is negative"),
                                           ("{penalti: 10%}", "penalti")])
def test_bad_late_penalties_say_what_to_write(late, message):
    with pytest.raises(GraderError) as err:
        _rubric(late)
    assert message in err.value.render() and "r.yaml" in err.value.render()


def test_class_from_moodle_and_canvas_names_has_names_and_late_in_reports_and_gradebook(tmp_path, capsys):
    folder = tmp_path / "class"
    (folder / "Ada Good_17_assignsubmission_file_").mkdir(parents=True)
    shutil.copy(NOTEBOOKS / "realstyle_s3_torchsummary.ipynb",
                folder / "Ada Good_17_assignsubmission_file_" / "a.ipynb")
    shutil.copy(NOTEBOOKS / "realstyle_s3_torchsummary.ipynb", folder / "bigben_LATE_1002_9_hw.ipynb")
    rubric = tmp_path / "r.yaml"
    rubric.write_text(STATIC_RUBRIC)
    out = tmp_path / "out"
    assert main([str(folder), "--rubric", str(rubric), "--out", str(out), "--json"]) == 0
    rows = {r["student"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["17"]["name"] == "Ada Good" and rows["17"]["late"] is None and rows["17"]["score"] == 20
    assert rows["1002"]["late"] is True and rows["1002"]["score"] == 18 and rows["1002"]["late_penalty"] == 2
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as fh:
        table = {r["student"]: r for r in csv.DictReader(fh)}
    assert table["17"]["name"] == "Ada Good" and table["1002"]["late"] == "TRUE"
    assert "Ada Good (17)" in (out / "17" / "report.html").read_text()
    assert (out / "17" / "report.md").read_text().startswith("# Ada Good (17): 20 / 20")
    assert "Handed in late: 2 points taken off" in (out / "1002" / "report.md").read_text()
    assert json.loads((out / "1002" / "facts.json").read_text())["submission"]["late"] is True
    gradescope = json.loads((out / "1002" / "results.json").read_text())
    assert gradescope["score"] == 18 and gradescope["tests"][-1]["name"] == "Late submission"
