"""gradebook.csv: one row per student, one column per rubric item, quiz columns when there is a quiz."""

from __future__ import annotations

import csv
import json

from grader.facts import QuizFacts
from grader.report.gradebook import GradebookEntry, gradebook_rows, write_gradebook
from grader.rubric.sheet import ItemResult
from tests.test_report_samples import crashed, passing

ITEMS = ["params", "accuracy", "gap", "rf", "comments", "claims"]


def _entries():
    (alice_facts, alice_sheet), (bob_facts, bob_sheet) = passing(), crashed()
    return [GradebookEntry("alice", alice_sheet, alice_facts), GradebookEntry("bob", bob_sheet, bob_facts)]


def test_rows_are_plain_json_values_in_column_order():
    rows = gradebook_rows(_entries())
    assert list(rows[0]) == ["student", "score", "max_score", "passed", "verdict", *ITEMS]
    assert rows[0]["score"] == 9.5 and rows[0]["passed"] is True and rows[0]["verdict"] == "ok" and rows[0]["rf"] == 0.5
    assert rows[1]["verdict"] == "crash" and rows[1]["gap"] is None and rows[1]["params"] == 0
    json.dumps(rows)  # what `--json` prints


def test_the_csv_round_trips_through_dictreader_with_one_column_per_item(tmp_path):
    path = write_gradebook(tmp_path / "gradebook.csv", gradebook_rows(_entries()))
    raw = path.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw  # no BOM; csv's own line ends
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == ["student", "score", "max_score", "passed", "verdict", *ITEMS]
    assert rows[0] == {"student": "alice", "score": "9.5", "max_score": "11", "passed": "TRUE", "verdict": "ok",
                       "params": "3", "accuracy": "4", "gap": "1", "rf": "0.5", "comments": "0", "claims": "1"}
    assert rows[1]["passed"] == "FALSE" and rows[1]["gap"] == "" and rows[1]["max_score"] == "8"


def test_quiz_columns_appear_when_some_student_has_a_quiz(tmp_path):
    entries = _entries()
    quizzed = entries[0].facts.model_copy(update={"quiz": QuizFacts(score=6, max_score=7)})
    entries[0] = GradebookEntry("alice", entries[0].sheet, quizzed)
    rows = gradebook_rows(entries)
    assert list(rows[0])[-2:] == ["quiz_score", "quiz_max_score"]
    assert (rows[0]["quiz_score"], rows[0]["quiz_max_score"]) == (6, 7)
    assert rows[1]["quiz_score"] is None
    with write_gradebook(tmp_path / "g.csv", rows).open(encoding="utf-8", newline="") as f:
        assert [r["quiz_score"] for r in csv.DictReader(f)] == ["6", ""]


def test_a_student_id_that_a_spreadsheet_would_run_as_a_formula_is_kept_as_text(tmp_path):
    entry = _entries()[1]
    rows = gradebook_rows([GradebookEntry("=HYPERLINK(\"http://x\")", entry.sheet, entry.facts)])
    with write_gradebook(tmp_path / "g.csv", rows).open(encoding="utf-8", newline="") as f:
        assert next(csv.DictReader(f))["student"] == "'=HYPERLINK(\"http://x\")"


def test_item_columns_are_the_union_over_rubrics_and_never_shadow_the_fixed_ones():
    entries = _entries()
    odd = entries[1].sheet.model_copy(update={"items": [ItemResult(
        id="score", title="An item called score", fact="eval.accuracy", points=1, max_points=1, status="passed",
        evidence="", feedback="")]})
    rows = gradebook_rows([entries[0], GradebookEntry("carol", odd)])
    assert list(rows[0]) == ["student", "score", "max_score", "passed", "verdict", *ITEMS, "item:score"]
    assert rows[1]["item:score"] == 1 and rows[1]["score"] == 0 and rows[1]["params"] is None
    assert rows[0]["item:score"] is None


def test_an_empty_batch_writes_just_the_header(tmp_path):
    path = write_gradebook(tmp_path / "g.csv", gradebook_rows([]))
    assert path.read_bytes() == b"student,score,max_score,passed,verdict\r\n"
