"""Batch grading: gradebook and reports for a class, resumable, one bad submission never stops it."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from grader.cli.main import main

NOTEBOOKS = Path(__file__).parent / "fixtures" / "notebooks"
EXEC = Path(__file__).parent / "fixtures" / "exec"

STATIC_RUBRIC = """\
id: comments-only
title: Comments only
mode: static
items:
  - id: comments
    title: Every code cell is commented
    fact: notebook.comment_coverage
    ge: 1.0
    points: 10
  - id: cells
    title: At least three code cells
    fact: notebook.code_cells
    ge: 3
    points: 5
"""


@pytest.fixture()
def klass(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    shutil.copy(NOTEBOOKS / "realstyle_s3_torchsummary.ipynb", folder / "smith_111_1_hw.ipynb")
    shutil.copy(NOTEBOOKS / "colab_badges.ipynb", folder / "doe_222_1_hw.ipynb")
    shutil.copy(NOTEBOOKS / "invalid_json.ipynb", folder / "lee_333_1_hw.ipynb")
    rubric = tmp_path / "static.yaml"
    rubric.write_text(STATIC_RUBRIC)
    return folder, rubric


def run_batch(folder, rubric, out, *extra):
    return main([str(folder), "--rubric", str(rubric), "--out", str(out), "--json", *extra])


def test_static_batch_writes_gradebook_and_reports(klass, tmp_path, capsys):
    folder, rubric = klass
    out = tmp_path / "out"
    assert run_batch(folder, rubric, out) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["student"] for r in rows] == ["111", "222", "333"]
    bad = rows[2]
    assert bad["verdict"] == "invalid_notebook" and bad["score"] == 0  # one broken file, the batch went on
    with open(out / "gradebook.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [r["student"] for r in table] == ["111", "222", "333"]
    assert set(table[0]) >= {"student", "score", "max_score", "passed", "verdict", "comments", "cells"}
    for student in ("111", "222", "333"):
        for name in ("report.html", "report.md", "results.json", "facts.json"):
            assert (out / student / name).is_file()
    results = json.loads((out / "111" / "results.json").read_text())
    assert results["score"] == sum(t["score"] for t in results["tests"])


def test_rerun_grades_nothing_and_a_changed_file_only_itself(klass, tmp_path, capsys):
    folder, rubric = klass
    out = tmp_path / "out"
    run_batch(folder, rubric, out)
    capsys.readouterr()
    run_batch(folder, rubric, out)
    assert "0 graded, 3 unchanged (cached)" in capsys.readouterr().err
    changed = folder / "doe_222_1_hw.ipynb"
    changed.write_text(changed.read_text() + "\n")  # new bytes: a resubmission
    run_batch(folder, rubric, out)
    assert "1 graded, 2 unchanged (cached)" in capsys.readouterr().err
    run_batch(folder, rubric, out, "--force")
    assert "3 graded, 0 unchanged (cached)" in capsys.readouterr().err


def test_changed_rubric_rescoring_runs_nothing(klass, tmp_path, capsys):
    folder, rubric = klass
    out = tmp_path / "out"
    run_batch(folder, rubric, out)
    capsys.readouterr()
    rubric.write_text(STATIC_RUBRIC.replace("points: 5", "points: 50"))
    run_batch(folder, rubric, out)
    captured = capsys.readouterr()
    assert "0 graded, 3 unchanged (cached)" in captured.err
    assert json.loads(captured.out)[0]["max_score"] == 60


def test_zip_export_is_graded_like_its_folder(klass, tmp_path, capsys):
    folder, rubric = klass
    archive = shutil.make_archive(str(tmp_path / "export"), "zip", root_dir=tmp_path, base_dir="class")
    assert run_batch(archive, rubric, tmp_path / "out") == 0
    assert [r["student"] for r in json.loads(capsys.readouterr().out)] == ["111", "222", "333"]


@pytest.mark.parametrize("args, message", [
    (["--jobs", "0"], "--jobs must be at least 1"),
    (["--id-pattern", "(x)"], "--id-pattern has no group named `id`"),
])
def test_batch_usage_errors(klass, tmp_path, capsys, args, message):
    folder, rubric = klass
    assert run_batch(folder, rubric, tmp_path / "out", *args) == 2
    assert message in capsys.readouterr().err


def test_check_static_reports_items_needing_a_run(capsys):
    code = main(["check", str(NOTEBOOKS / "realstyle_s3_torchsummary.ipynb"), "--static", "--json"])
    out = json.loads(capsys.readouterr().out)
    items = {i["id"]: i for i in out["score"]["items"]}
    assert items["params"]["status"] == "not_judged" and "static check" in items["params"]["evidence"]
    assert items["comments"]["status"] in ("partial", "failed") and items["comments"]["required"]
    assert out["facts"]["notebook"]["uncommented_cells"] == [1, 2, 8, 10]
    assert out["score"]["passed"] is False and code == 1  # a required item was judged and did not pass


def test_quiz_answers_in_a_tagged_cell_join_the_gradebook(klass, tmp_path, capsys):
    import nbformat

    folder, rubric = klass
    main(["quiz", "make", "quizzes/cnn-basics.yaml", "--student", "111", "--format", "json", "--with-key"])
    key = json.loads(capsys.readouterr().out)
    nb = nbformat.read(str(folder / "smith_111_1_hw.ipynb"), as_version=4)
    answers = {q["id"]: q["answer"] for q in key["questions"]}
    cell = nbformat.v4.new_code_cell(f"# Quiz answers (a dict keeps the cell valid Python)\nanswers = {answers!r}")
    cell.metadata["tags"] = ["quiz"]
    nb.cells.append(cell)
    nbformat.write(nb, str(folder / "smith_111_1_hw.ipynb"))
    assert run_batch(folder, rubric, tmp_path / "out", "--quiz", "quizzes/cnn-basics.yaml") == 0
    rows = {r["student"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["111"]["quiz_score"] == rows["111"]["quiz_max_score"] > 0  # every keyed answer is right
    assert rows["222"]["quiz_score"] == 0  # no quiz cell: every question missing
    assert "quiz_error" not in rows["111"]  # every cell tagged quiz was read


def test_an_unreadable_quiz_cell_is_a_fact_with_its_error_not_a_missing_cell(klass, tmp_path, capsys):
    import nbformat

    folder, rubric = klass
    nb = nbformat.read(str(folder / "smith_111_1_hw.ipynb"), as_version=4)
    cell = nbformat.v4.new_code_cell("# my answers\nprint('rf is 5, output 26x26')")
    cell.metadata["tags"] = ["quiz"]
    nb.cells.append(cell)
    nbformat.write(nb, str(folder / "smith_111_1_hw.ipynb"))
    assert run_batch(folder, rubric, tmp_path / "out", "--quiz", "quizzes/cnn-basics.yaml") == 0
    rows = {r["student"]: r for r in json.loads(capsys.readouterr().out)}
    error = rows["111"]["quiz_error"]
    assert error.startswith(f"smith_111_1_hw.ipynb, cell {len(nb.cells)} (tagged quiz): the cell tagged `quiz` "
                            "holds no answers I can read"), error
    assert "-> write `question-id: answer` per line" in error  # what to do
    assert rows["222"]["quiz_error"] is None  # no quiz cell is no error: its questions are missing
    facts = json.loads((tmp_path / "out" / "111" / "facts.json").read_text())
    assert facts["quiz"]["answers"] is None and facts["quiz"]["error"] == error
    assert facts["quiz"]["score"] == 0
    assert json.loads((tmp_path / "out" / "222" / "facts.json").read_text())["quiz"]["error"] is None
