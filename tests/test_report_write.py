"""write_student_reports: the four files of one student's folder."""

from __future__ import annotations

import json

import pytest

from grader.facts import Facts
from grader.report import write_student_reports
from tests.test_report_samples import crashed, eval_arrays, passing


def test_a_student_folder_gets_html_markdown_gradescope_results_and_facts(tmp_path):
    facts, sheet = passing()
    images, labels, predictions = eval_arrays()
    paths = write_student_reports(tmp_path, "alice", facts, sheet, images=images, labels=labels,
                                  predictions=predictions, execution_time=3.2)
    assert paths == {"html": tmp_path / "alice" / "report.html", "markdown": tmp_path / "alice" / "report.md",
                     "results": tmp_path / "alice" / "results.json", "facts": tmp_path / "alice" / "facts.json"}
    assert sorted(p.name for p in (tmp_path / "alice").iterdir()) == ["facts.json", "report.html", "report.md",
                                                                     "results.json"]
    assert Facts.model_validate(json.loads(paths["facts"].read_text())) == facts
    results = json.loads(paths["results"].read_text())
    assert results["score"] == 9.5 and results["execution_time"] == 3.2
    assert "data:image/png;base64," in paths["html"].read_text()
    assert paths["markdown"].read_text().startswith("# alice: 9.5 / 11")


def test_writing_again_replaces_the_reports(tmp_path):
    facts, sheet = crashed()
    write_student_reports(tmp_path, "bob", facts, sheet, execution_time=0)
    paths = write_student_reports(tmp_path, "bob", facts, sheet, execution_time=1, audience="instructor")
    assert "INSTRUCTOR COPY" in paths["html"].read_text()
    assert len(list((tmp_path / "bob").iterdir())) == 4


@pytest.mark.parametrize("student", ["", ".", "..", "../escape", "a/b", "a\\b"])
def test_a_student_id_that_is_not_one_folder_name_is_refused(tmp_path, student):
    facts, sheet = crashed()
    with pytest.raises(ValueError, match="cannot be a folder name"):
        write_student_reports(tmp_path / "out", student, facts, sheet, execution_time=0)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
