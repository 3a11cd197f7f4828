"""One student never stops a class: text that is not Unicode is refused at intake as invalid_notebook naming the
cell; a class-level step that fails for one student (its reports, the look-alike comparison) marks that student's
row and the rest of the class is graded and written."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest

from grader.cli.main import main
from grader.errors import GraderError
from grader.inspect.notebook import parse_notebook
from grader.intake import discover
from grader.similarity import look_alikes
from tests.static_rubrics import COMMENTS_ONLY

NOTEBOOKS = Path(__file__).parent / "fixtures" / "notebooks"
LONE = "\ud800"  # a lone surrogate: JSON can spell it (json.dumps writes it as \\ud800), no UTF-8 text holds it


def _with_lone_surrogate(source: Path, target: Path, where: str = "code") -> Path:
    """A copy of a notebook whose first `where` cell (code or markdown) holds a lone surrogate, escaped in JSON."""
    nb = json.loads(source.read_text())
    cell = next(c for c in nb["cells"] if c["cell_type"] == where)
    cell["source"] = ["# look at this\n", f"x = 1  # {LONE} here\n"]
    target.write_text(json.dumps(nb))
    assert '# \\ud800 here' in target.read_text()  # escaped in the JSON, as a hostile file would carry it
    return target


@pytest.fixture()
def klass(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    shutil.copy(NOTEBOOKS / "realstyle_s3_torchsummary.ipynb", folder / "smith_111_1_hw.ipynb")
    shutil.copy(NOTEBOOKS / "colab_badges.ipynb", folder / "doe_222_1_hw.ipynb")
    _with_lone_surrogate(NOTEBOOKS / "colab_badges.ipynb", folder / "lee_333_1_hw.ipynb")
    rubric = tmp_path / "static.yaml"
    rubric.write_text(COMMENTS_ONLY)
    return folder, rubric


def _gradebook(out: Path) -> list[dict[str, str]]:
    with open(out / "gradebook.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_a_lone_surrogate_in_one_notebook_is_its_verdict_and_the_class_is_written(klass, tmp_path, capsys):
    folder, rubric = klass
    out = tmp_path / "out"
    assert main([str(folder), "--rubric", str(rubric), "--out", str(out), "--json"]) == 0
    rows = {r["student"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["111"]["verdict"] is None and rows["222"]["verdict"] is None  # graded (a static check)
    assert rows["111"]["score"] is not None and rows["222"]["score"] is not None
    assert rows["333"]["verdict"] == "invalid_notebook" and rows["333"]["score"] == 0
    assert [r["student"] for r in _gradebook(out)] == ["111", "222", "333"]
    for student in ("111", "222", "333"):
        for name in ("report.html", "report.md", "results.json", "facts.json"):
            assert (out / student / name).is_file()
    message = json.loads((out / "333" / "facts.json").read_text())["verdict"]["message"]
    assert message.startswith(f"{folder / 'lee_333_1_hw.ipynb'}: code cell 1, line 2 of its source, holds a "
                              "character that is not valid Unicode")
    assert "delete that character (retype the line), save the notebook and hand it in again" in message


@pytest.mark.parametrize("where, named", [("markdown", "cell 1 (markdown), line 2 of its source,"),
                                          ("outputs", "code cell 1, in its saved outputs or metadata,")])
def test_the_refusal_names_the_cell(where, named):
    nb = json.loads((NOTEBOOKS / "colab_badges.ipynb").read_text())
    if where == "markdown":
        nb["cells"].insert(0, {"cell_type": "markdown", "metadata": {}, "source": f"# Title\nbad {LONE}"})
    else:
        code = next(c for c in nb["cells"] if c["cell_type"] == "code")
        code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": f"loss {LONE}\n"}]
    text = json.dumps(nb)
    with pytest.raises(GraderError) as err:
        parse_notebook(text, where="nb.ipynb")
    assert err.value.render().startswith(f"nb.ipynb: {named} holds a character that is not valid Unicode")


def test_a_report_that_cannot_be_written_marks_that_student_and_the_rest_is_written(klass, tmp_path, capsys):
    folder, rubric = klass
    out = tmp_path / "out"
    out.mkdir()
    (out / "222").write_text("a file where the student's report folder goes\n")
    assert main([str(folder), "--rubric", str(rubric), "--out", str(out)]) == 3
    err = " ".join(capsys.readouterr().err.split())
    assert "problem: 222: reports not written (FileExistsError" in err and "the rest of the class was written" in err
    rows = {r["student"]: r for r in _gradebook(out)}
    assert rows["222"]["problems"].startswith("reports not written (FileExistsError")
    assert rows["111"]["problems"] == "" and rows["333"]["problems"] == ""
    assert (out / "111" / "report.html").is_file() and (out / "333" / "report.html").is_file()


def test_code_that_cannot_be_tokenised_is_left_out_of_the_comparison_only():
    code = (NOTEBOOKS / "realstyle_s3_torchsummary.ipynb").read_text()
    said: list[tuple[str, str]] = []
    found = look_alikes({"a": code, "b": code, "c": f"x = 1  # {LONE}\n" + code},
                        on_problem=lambda student, what: said.append((student, what)))
    assert [s for s, _ in said] == ["c"] and said[0][1].startswith("not compared for look-alikes (UnicodeEncodeError")
    assert [p.other for p in found["a"]] == ["b"] and found["c"] == []


def test_a_file_name_that_is_not_utf8_still_names_the_student(tmp_path, capsys):
    folder = tmp_path / "class"
    folder.mkdir()
    name = os.fsdecode(b"Ad\xff Good_1001_assignsubmission_file_")  # bytes an LMS zip can carry
    (folder / name).mkdir()
    shutil.copy(NOTEBOOKS / "colab_badges.ipynb", folder / name / "notebook.ipynb")
    [submission] = discover(folder)
    assert (submission.student, submission.name) == ("1001", "Ad\ufffd Good")
    rubric = tmp_path / "static.yaml"
    rubric.write_text(COMMENTS_ONLY)
    out = tmp_path / "out"
    assert main([str(folder), "--rubric", str(rubric), "--out", str(out)]) == 0
    assert "Ad\ufffd Good (1001)" in (out / "1001" / "report.md").read_text()
    assert _gradebook(out)[0]["name"] == "Ad\ufffd Good"


def test_a_quiz_answer_the_checker_cannot_read_marks_that_student_and_the_class_goes_on(klass, tmp_path, capsys):
    import nbformat

    folder, rubric = klass
    main(["quiz", "make", "quizzes/cnn-basics.yaml", "--student", "111", "--format", "json", "--with-key"])
    key = json.loads(capsys.readouterr().out)
    nb = nbformat.read(str(folder / "smith_111_1_hw.ipynb"), as_version=4)
    huge = int("1" + "0" * 400)  # an int no float holds: the quiz checker raised OverflowError on it
    answers = {q["id"]: huge for q in key["questions"]}
    cell = nbformat.v4.new_code_cell(f"# Quiz answers\nanswers = {answers!r}")
    cell.metadata["tags"] = ["quiz"]
    nb.cells.append(cell)
    nbformat.write(nb, str(folder / "smith_111_1_hw.ipynb"))
    out = tmp_path / "out"
    assert main([str(folder), "--rubric", str(rubric), "--out", str(out), "--quiz", "quizzes/cnn-basics.yaml",
                 "--json"]) == 3
    captured = capsys.readouterr()
    rows = {r["student"]: r for r in json.loads(captured.out)}
    assert rows["111"]["verdict"] == "grader_failed" and rows["111"]["score"] is None
    assert rows["222"]["quiz_score"] == 0 and rows["222"]["score"] is not None  # the others are graded
    assert rows["333"]["verdict"] == "invalid_notebook"
    said = " ".join(captured.err.split())
    assert "1 of 3 not graded (111): the grader failed, not the students: the grader raised an error " \
           "(OverflowError: int too large to convert to float)" in said
    assert "a bug in the grader: report it" in said
    assert (out / "111" / "report.md").is_file() and (out / "gradebook.csv").is_file()
