"""Two audiences: a class with look-alike pairs and a hidden rubric item, every output written. What students see
(report.html, report.md, the Gradescope results as Gradescope shows them, the Moodle feedback zip and worksheet
comments, the service's pages and results.json) names no other student and shows no hidden item; what the
instructor sees (gradebook.csv's similar_to, similarity.html, instructor.html) still has them."""

from __future__ import annotations

import csv
import json
import re
import shutil
import zipfile

import pytest

from grader.api import grade_class, load_rubric, options_for, write_lms_exports, write_outputs
from grader.report.instructor import Pair, Side, render_similarity, side_by_side
from grader.report.moodle import feedback_entry
from tests.fixtures.service.harness import EXAMPLES, start_server, submission

WORKSHEET = EXAMPLES.parent / "moodle-grading-worksheet.csv"
HIDDEN_TITLE = "Zebra probe: the notebook has more than four code cells"
HIDDEN_ID = "zebra-probe"
RUBRIC = f"""\
id: privacy-static
title: "Privacy: commented cells (static)"
mode: static
items:
  - id: comments
    title: Every code cell is commented
    fact: notebook.comment_coverage
    points: 10
    bands:
      - {{ge: 1.0, points: 10}}
      - {{ge: 0.5, points: 5}}
  - id: cells
    title: At least two code cells
    fact: notebook.code_cells
    ge: 2
    points: 5
  - id: {HIDDEN_ID}
    title: "{HIDDEN_TITLE}"
    fact: notebook.code_cells
    gt: 4
    points: 3
    required: true
    visibility: hidden
    feedback:
      pass: "Zebra feedback: {{{{ value }}}} cells."
      fail: "Zebra feedback: {{{{ value }}}} cells."
"""
COPIES = {"1008": "Gil Copy", "1009": "Hal Twin"}  # each hands in Ben Big's (1002) notebook


def _people() -> dict[str, str]:
    people = {m[2]: m[1] for f in EXAMPLES.iterdir() if (m := re.fullmatch(r"(.+)_(\d+)_assignsubmission_file_",
                                                                            f.name))}
    return {**people, **COPIES}


def _leaks(text: str, student: str, people: dict[str, str]) -> list[str]:
    """Another student's id or name, or the hidden item, where `student`'s copy is read."""
    found = [f"id {other}" for other in people if other != student and re.search(rf"(?<!\d){other}(?!\d)", text)]
    found += [f"name {name}" for other, name in people.items() if other != student and name in text]
    found += [f"hidden {what}" for what in (HIDDEN_TITLE, HIDDEN_ID, "Zebra") if what in text]
    return found


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("privacy")
    rubrics = root / "rubrics"
    rubrics.mkdir()
    (rubrics / "privacy-static.yaml").write_text(RUBRIC)
    folder = root / "class"
    shutil.copytree(EXAMPLES, folder)
    for student, name in COPIES.items():
        copy = folder / f"{name}_{student}_assignsubmission_file_"
        copy.mkdir()
        shutil.copy(EXAMPLES / "Ben Big_1002_assignsubmission_file_" / "notebook.ipynb", copy / "notebook.ipynb")
    rubric = load_rubric(rubrics / "privacy-static.yaml")
    out = root / "out"
    results = list(grade_class(folder, rubric, options_for(rubric), out=out))
    write_outputs(results, out)
    exports = write_lms_exports(results, out, rubric, moodle_worksheet=WORKSHEET)
    return rubrics, out, results, exports, _people()


def test_the_class_has_look_alikes_and_a_hidden_item_to_keep_private(graded):
    _, out, results, exports, people = graded
    assert sorted(r.student for r in results) == sorted(people)
    assert all(any(i.id == HIDDEN_ID and i.visibility == "hidden" for i in r.sheet.items) for r in results)
    assert set(exports.written) == {"moodle_worksheet", "moodle_feedback"}


def test_no_student_output_names_another_student_or_shows_a_hidden_item(graded):
    _, out, results, exports, people = graded
    zipped = zipfile.ZipFile(exports.written["moodle_feedback"])
    with open(exports.written["moodle_worksheet"], newline="", encoding="utf-8") as fh:
        comments = {row["Identifier"].removeprefix("Participant "): row["Feedback comments"]
                    for row in csv.DictReader(fh)}
    checked = 0
    for r in results:
        s = r.student
        copies = {name: (out / s / name).read_text() for name in ("report.html", "report.md")}
        gradescope = json.loads((out / s / "results.json").read_text())
        # Gradescope shows a student the tests not marked hidden, and the top-level output
        copies["results.json (as Gradescope shows it)"] = json.dumps(
            {"output": gradescope["output"], "tests": [t for t in gradescope["tests"] if t["visibility"] != "hidden"]})
        assert [t["visibility"] for t in gradescope["tests"] if HIDDEN_TITLE in t["name"]] == ["hidden"]
        copies["moodle-feedback.zip"] = zipped.read(feedback_entry(r.submission.name, s)).decode()
        if s in comments:
            copies["worksheet comment"] = comments[s]
            assert comments[s].startswith(f"{r.sheet.score:g} / 18 points")
        for where, text in copies.items():
            assert _leaks(text, s, people) == [], f"{s}'s {where}"
            checked += 1
        assert "look alike" not in copies["report.html"] and r.submission.name in copies["report.html"]
        assert "1 check not listed here" in copies["report.md"]  # the total counts it; it is not shown
        assert "every required item (1 not listed) passes" in copies["report.md"]
    assert checked == 4 * len(results) + 6  # 1001-1006 are in Moodle's worksheet


def test_the_instructor_outputs_keep_the_look_alikes_and_the_hidden_item(graded):
    _, out, results, _, people = graded
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as fh:
        rows = {r["student"]: r for r in csv.DictReader(fh)}
    assert rows["1008"]["similar_to"] == "1002 (100%);1009 (100%)" and rows["1002"]["similar_to"].startswith("1008")
    assert rows["1001"][HIDDEN_ID] in ("0", "3")
    page = (out / "similarity.html").read_text()
    # the example class's 1001, 1004 and 1005 are alike already (the "1004 (100%), 1005 (94%)"), and ours
    assert page.count('class="pair"') == 6
    for student in ("1001", "1004", "1005", "1002", "1008", "1009"):
        assert student in page and people[student] in page
    assert "100%" in page and 'class="same"' in page and "nn.Conv2d" in page
    summary = (out / "instructor.html").read_text()
    assert summary.count(HIDDEN_TITLE) == len(results) and all(name in summary for name in people.values())


def test_the_service_pages_and_results_json_are_the_students_copy(graded, tmp_path):
    rubrics, _, _, _, people = graded
    with start_server(tmp_path / "serve", rubrics=rubrics) as server:
        ids = {}
        for student in ("1002", "1008"):  # the same notebook twice: the service grades each alone
            response = server.submit(submission(student, "privacy-static",
                                                folder=EXAMPLES / "Ben Big_1002_assignsubmission_file_"))
            assert response.status_code == 202, response.text
            ids[student] = response.json()["id"]
        for student, job in ids.items():
            state = server.wait(job)
            assert state["status"] == "graded", state
            # the signed API is the integrator's: the whole sheet, hidden item included
            assert HIDDEN_ID in [i["id"] for i in state["sheet"]["items"]]
            pages = {name: server.http.get(f"/submissions/{job}{name}") for name in
                     ("", "/report.html", "/report.md", "/results.json")}
            for name, page in pages.items():
                assert page.status_code == 200, (name, page.text)
                assert _leaks(page.text, student, people) == [], f"{student}'s /submissions/{job}{name}"
            served = pages["/results.json"].json()
            assert served["score"] == state["score"]  # the hidden item's points are in it, under no title
            assert served["tests"][-1]["name"] == "1 check not listed here"


def test_the_look_alike_page_escapes_the_students_code_and_names():
    hostile = 'x = "</td></tr><script>alert(1)</script>"\nimport torch.nn as nn\n'
    page = render_similarity([Pair(Side("1", "<b>Eve</b>", hostile), Side("2", None, "# mine\n" + hostile), 0.9,
                                   False)], compared=2)
    assert "<script>" not in page and "<b>Eve</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;b&gt;Eve&lt;/b&gt; (1)" in page and "90%" in page
    rows = side_by_side(hostile, "# mine\n" + hostile)
    assert [(r.left, r.right, r.same) for r in rows] == [(None, "# mine", False),
                                                         (hostile.splitlines()[0], hostile.splitlines()[0], True),
                                                         ("import torch.nn as nn", "import torch.nn as nn", True)]
