"""`from grader import check; check()` made for notebooks: executed by a real ipykernel through nbclient, it
renders once (a score card with what to change, in place of one updating progress line), writes no escape
code although ipykernel sets FORCE_COLOR, and hands back a result with `.passed`; it finds its notebook where
VS Code, Jupyter or Colab says; and a server's student results read into the same result."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from grader import check
from grader.api import grade_submission, load_rubric, options_for
from grader.cli.main import main
from grader.errors import GraderError
from grader.report.audience import student_results
from grader.selfcheck import CheckResult

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "source" / "ada_good.ipynb"  # a student's s3 notebook: commented, small, trains
UNCOMMENTED = ROOT / "tests" / "fixtures" / "notebooks" / "fake_comments_and_claims.ipynb"  # fails `comments`
MAX_LINES = 80
ESCAPE = "\x1b"
HIDDEN_RUBRIC = """\
id: selfcheck-static
title: "Self-check: commented cells (static)"
mode: static
items:
  - id: comments
    title: Every code cell is commented
    fact: notebook.comment_coverage
    points: 10
    required: true
    bands:
      - {ge: 1.0, points: 10}
      - {ge: 0.5, points: 5}
    feedback:
      fail: "Put a comment in each code cell: {{ value }} of them have one."
  - id: cells
    title: At least two code cells
    fact: notebook.code_cells
    ge: 2
    points: 5
  - id: probe
    title: A probe the students do not see
    fact: notebook.code_cells
    gt: 4
    points: 3
    visibility: hidden
"""


class RecordingClient(NotebookClient):
    """nbclient with a real kernel, keeping each cell's iopub message types (to see display updates)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.messages: dict[int, list[str]] = {}

    def process_message(self, msg, cell, cell_index):
        self.messages.setdefault(cell_index, []).append(msg["header"]["msg_type"])
        return super().process_message(msg, cell, cell_index)


def execute(sources: list[str], *, cwd: Path = ROOT, timeout: int = 300) -> tuple[Any, RecordingClient]:
    """Run cells in a fresh python3 kernel started in `cwd` (the checkout: the kernel imports this `grader`)."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    client = RecordingClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return nb, client


def plain_lines(outputs: list) -> int:
    """Output lines as a reader sees them: stream text and each display's text/plain."""
    return sum(len((o.get("text") or o.get("data", {}).get("text/plain", "")).splitlines()) for o in outputs)


def escapes(outputs: list) -> int:
    return sum(json.dumps(o).count("\\u001b") for o in outputs)


def student_copy(tmp_path: Path, source: Path = EXAMPLE) -> Path:
    """The notebook alone in a student's folder (not inside this repository, whose files would be staged)."""
    folder = tmp_path / "student"
    folder.mkdir(exist_ok=True)
    return Path(shutil.copy(source, folder / source.name))


def test_check_in_a_notebook_cell_renders_once_without_escape_codes(tmp_path):
    good, bad = student_copy(tmp_path), student_copy(tmp_path, UNCOMMENTED)
    nb, client = execute([
        f"from grader import check\nr = check({str(bad)!r}, depth='static')",
        "import os\nprint(r.passed, r.score, r.max_score, [i.id for i in r.items], os.environ.get('FORCE_COLOR'))",
        f"check({str(good)!r}, depth='static')",  # as the cell's value: still one card
        "r",  # a later cell shows the result again
    ])
    first, printed, as_value, later = (cell.outputs for cell in nb.cells)
    # one output: the progress line, updated in place, became the card; no spinner, no stream of frames
    assert [o.output_type for o in first] == ["display_data"]
    assert client.messages[0].count("display_data") == 1 and "stream" not in client.messages[0]
    assert client.messages[0].count("update_display_data") >= 2  # a step of the check, then the card
    assert plain_lines(first) < MAX_LINES and escapes(first) == 0
    card = first[0]["data"]["text/html"]
    assert 'class="grader-check"' in card and 'data-outcome="failed"' in card
    assert "Not passed: required items not passed: comments." in card
    assert "What to change" in card and "Every code cell is commented" in card
    assert "fake_comments_and_claims.ipynb against mnist-s3 (static check): 0 / 100 points" in card
    assert "What to change" in first[0]["data"]["text/plain"]
    # the result is there for the next cell; the kernel did set FORCE_COLOR, and no colour came of it
    assert printed[0]["text"].split(" ", 3)[:3] == ["False", "0.0", "100.0"]
    assert "'comments'" in printed[0]["text"] and printed[0]["text"].strip().endswith("1")
    assert [o.output_type for o in as_value] == ["display_data"]  # not a second copy as the cell's Out
    assert 'data-outcome="undecided"' in as_value[0]["data"]["text/html"]
    assert "not a pass yet" in as_value[0]["data"]["text/plain"]
    assert len(later) == 1 and 'data-outcome="failed"' in later[0]["data"]["text/html"]
    assert escapes(printed + as_value + later) == 0


def test_a_dry_run_from_a_notebook_cell(tmp_path, bwrap, real_mnist_dir, monkeypatch):
    monkeypatch.setenv("GRADER_DATA", str(real_mnist_dir))
    nb, client = execute([f"from grader import check\nr = check({str(student_copy(tmp_path))!r})",
                          "print(r.depth, r.passed, {i.id: i.status for i in r.items}['params'])"], timeout=600)
    outputs = nb.cells[0].outputs
    assert [o.output_type for o in outputs] == ["display_data"] and client.messages[0].count("display_data") == 1
    assert plain_lines(outputs) < MAX_LINES and escapes(outputs) == 0
    assert "(dry run)" in outputs[0]["data"]["text/html"]
    assert nb.cells[1].outputs[0]["text"].split() == ["dry-run", "None", "passed"]  # accuracy needs the full run


def test_check_finds_its_notebook_where_the_front_end_says(tmp_path):
    notebook = student_copy(tmp_path)
    week = tmp_path / "course" / "week3"
    week.mkdir(parents=True)
    shutil.copy(EXAMPLE, week / "s3.ipynb")
    saved = nbformat.read(str(EXAMPLE), as_version=4)
    saved.metadata["colab"] = {"name": "../S3 <Assignment>.ipynb"}
    nb, _ = execute([
        "import glob, json, os, sys, tempfile, types\n"
        "from grader import check\n"
        "from grader.selfcheck.locate import notebook_to_check\n"
        "def where():\n"
        "    with notebook_to_check(None) as found:\n"
        "        return [str(found.source), found.shown]",
        f"__vsc_ipynb_file__ = {str(notebook)!r}\nprint(json.dumps(where()))\ndel __vsc_ipynb_file__",
        f"__session__ = {str(notebook)!r}\nprint(json.dumps(where()))\ndel __session__",
        # Jupyter names it relative to the server's root; the kernel starts in the notebook's folder
        f"os.environ['JPY_SESSION_NAME'] = 'course/week3/s3.ipynb'\nos.chdir({str(week)!r})\n"
        "print(json.dumps(where()))\ndel os.environ['JPY_SESSION_NAME']",
        f"__vsc_ipynb_file__ = {str(notebook)!r}\nr = check(depth='static')\ndel __vsc_ipynb_file__\n"
        "print(json.dumps([r.notebook, r.score]))",
        # Colab: no file on disk; its front end hands the notebook over (this stands in for google.colab)
        "asked = []\n"
        "message = types.ModuleType('google.colab._message')\n"
        "def blocking_request(kind, request='', timeout_sec=5, parent=None):\n"
        f"    asked.append(kind); return {{'ipynb': json.loads({nbformat.writes(saved)!r})}}\n"
        "message.blocking_request = blocking_request\n"
        "colab = types.ModuleType('google.colab'); colab._message = message\n"
        "sys.modules.setdefault('google', types.ModuleType('google'))\n"
        "sys.modules.update({'google.colab': colab, 'google.colab._message': message})\n"
        "before = set(glob.glob(os.path.join(tempfile.gettempdir(), 'grader-check-*')))\n"
        "r = check(depth='static')\n"
        "left = set(glob.glob(os.path.join(tempfile.gettempdir(), 'grader-check-*'))) - before\n"
        "print(json.dumps([r.notebook, r.score, asked, sorted(left)]))",
    ], cwd=ROOT)
    said = [json.loads(cell.outputs[-1]["text"]) for cell in nb.cells[1:]]
    assert said[0] == [str(notebook), notebook.name]  # VS Code
    assert said[1] == [str(notebook), notebook.name]  # Jupyter's __session__
    assert said[2] == [str(week / "s3.ipynb"), "s3.ipynb"]  # JPY_SESSION_NAME, relative to the server's root
    assert said[3] == [notebook.name, 15.0]  # check() with no path, end to end: the comments item's points
    assert said[4] == ["S3 _Assignment_.ipynb (from Colab)", 15.0, ["get_ipynb"], []]  # the copy is gone after


def test_check_asks_for_the_path_when_no_front_end_says(monkeypatch, tmp_path):
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    with pytest.raises(GraderError) as raised:
        check(depth="static")
    assert raised.value.render() == (
        "check(): cannot tell which notebook this is: the front end does not say (VS Code's __vsc_ipynb_file__, "
        "Jupyter's __session__ or JPY_SESSION_NAME, Colab)\n"
        '  -> save the notebook and pass its path: check("my_notebook.ipynb")')
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "never_saved.ipynb"))
    with pytest.raises(GraderError, match=r"the front end names this notebook, but no such file is saved here "
                                          r"\(Jupyter's JPY_SESSION_NAME says .*never_saved\.ipynb\)") as raised:
        check(depth="static")
    assert raised.value.fix.startswith("save the notebook and pass its path")
    with pytest.raises(GraderError) as raised:
        check(str(tmp_path / "typo.ipynb"))
    assert raised.value.what == "no such notebook or folder" and "typo.ipynb" in raised.value.where
    assert raised.value.fix.endswith(f"relative to {Path.cwd()} or absolute")
    with pytest.raises(GraderError, match="depth 'quick' is not one of static, dry-run, full"):
        check(EXAMPLE, depth="quick")
    with pytest.raises(GraderError, match="a server's self-check runs only static and dry-run, not 'full'"):
        check(EXAMPLE, depth="full", server="https://grader.example.edu")


def test_an_error_of_grade_check_comes_back_as_its_own_message(tmp_path):
    with pytest.raises(GraderError) as raised:
        check(student_copy(tmp_path), rubric="no-such-rubric", depth="static")
    message = raised.value.render()
    assert "no-such-rubric" in message and "\n  -> " in message and "checking:" not in message


def test_piped_output_has_no_escape_codes_even_with_force_color(tmp_path):
    notebook = student_copy(tmp_path, UNCOMMENTED)
    env = {**os.environ, "FORCE_COLOR": "1", "PYTHONPATH": str(ROOT)}
    shown = subprocess.run([sys.executable, "-m", "grader", "check", str(notebook), "--static"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
    assert shown.returncode == 1, shown.stderr
    assert ESCAPE not in shown.stdout + shown.stderr
    assert "against mnist-s3 (static check): 0 / 100 points" in shown.stdout and "What to change" in shown.stdout
    assert "checking: inspecting" in shown.stderr.splitlines()  # the steps, one plain line each, no spinner
    printed = subprocess.run([sys.executable, "-c", f"from grader import check\nprint(check({str(notebook)!r}, "
                              "depth='static'))"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert printed.returncode == 0, printed.stderr
    assert ESCAPE not in printed.stdout + printed.stderr and printed.stderr == ""  # no progress off a terminal
    assert printed.stdout.startswith(f"{notebook} against mnist-s3 (static check): 0 / 100 points\n")
    assert re.search(r"^  failed +0/15  Every code cell is commented \(required\): notebook.comment_coverage = 20%",
                     printed.stdout, re.M)
    assert "What to change\n- Every code cell is commented: 20% of the code cells have a comment." in printed.stdout


@pytest.mark.parametrize("rubric_name", ["hidden-item", "mnist-s3"])
def test_from_results_reads_what_the_server_answers(rubric_name, tmp_path, capsys):
    """The service's student results (Gradescope format, `audience.student_results`) of a real static sheet give
    the items, the score and the pass/fail/undecided call that `grade check --json` gives."""
    rubric_file = tmp_path / "selfcheck-static.yaml"
    rubric_file.write_text(HIDDEN_RUBRIC)
    rubric = str(rubric_file) if rubric_name == "hidden-item" else rubric_name
    notebook = student_copy(tmp_path, UNCOMMENTED)
    code = main(["check", str(notebook), "--json", "--static", "--rubric", rubric])
    local = CheckResult.from_check(json.loads(capsys.readouterr().out), notebook=notebook.name, depth="static")
    graded = grade_submission(notebook, load_rubric(rubric), options_for(load_rubric(rubric), mode="static"),
                              show_hidden=True)
    served = CheckResult.from_results(json.loads(json.dumps(student_results(graded.sheet, graded.facts))),
                                      notebook=notebook.name, depth="static", rubric=graded.sheet.rubric)
    hidden = [i for i in graded.sheet.items if i.visibility == "hidden"]
    assert served.items[:len(local.items)] == local.items  # ids, titles, status, points, required, evidence, feedback
    assert served.passed == local.passed == {"hidden-item": False, "mnist-s3": False}[rubric_name]
    assert code == 1 and [i.status for i in local.items if i.id == "comments"] == ["failed"]
    assert served.score == graded.sheet.score and served.max_score == graded.sheet.max_score
    if hidden:  # one line sums what the student may not see, with no title or id of it
        lump = served.items[-1]
        assert (lump.id, lump.title, lump.points, lump.max_points) == ("", "1 check not listed here", 3.0, 3.0)
        assert "probe" not in str(served) and "probe" not in served._repr_html_()
    assert served._repr_html_().count("<tr>") == len(served.items) + 1
    assert "Put a comment in each code cell" in str(served) or rubric_name == "mnist-s3"


def test_from_results_undecided_and_ungraded():
    undecided = CheckResult.from_results(
        {"score": 15.0, "output": "S3: 15 / 100 (not passed: a required item failed)", "tests": [
            {"name": "At least 99.4% test accuracy (measured) (accuracy) [required]", "score": 0, "max_score": 40,
             "status": "failed", "output": "[not judged] not judged in a dry run\nNot judged in a dry run."},
            {"name": "Every code cell is commented (comments) [required]", "score": 15, "max_score": 15,
             "status": "passed", "output": "notebook.comment_coverage = 100%"}]},
        notebook="s3.ipynb", depth="dry-run")
    assert undecided.passed is None and undecided.not_judged == ["accuracy"] and undecided.outcome == "undecided"
    assert [(i.id, i.status, i.required, i.message) for i in undecided.items] == [
        ("accuracy", "not_judged", True, "not judged in a dry run"),
        ("comments", "passed", True, "notebook.comment_coverage = 100%")]
    assert "accuracy is not judged in a dry run (run the full check)" in str(undecided)
    ungraded = CheckResult.from_results({"output": "S3: Not graded. The grader failed.", "tests": []},
                                        notebook="s3.ipynb", depth="static")
    assert ungraded.score is None and ungraded.passed is None and "Not graded" in ungraded._repr_html_()


def test_the_card_escapes_what_a_submission_wrote():
    hostile = CheckResult.from_results(
        {"score": 0, "output": "T: 0 / 1 (not passed: a required item failed)\n<script>alert(1)</script>",
         "tests": [{"name": "<img src=x onerror=alert(1)> (x) [required]", "score": 0, "max_score": 1,
                    "status": "failed", "output": "<script>alert(2)</script>\n<b>do this</b>"}]},
        notebook="<i>nb</i>.ipynb", depth="static")
    card = hostile._repr_html_()
    assert "<script>" not in card and "<img" not in card and "<b>do" not in card and "<i>nb" not in card
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in card and "&lt;b&gt;do this&lt;/b&gt;" in card
    assert 'data-outcome="failed"' in card


def test_importing_check_loads_no_grading_stage():
    done = subprocess.run([sys.executable, "-c", "import sys\nfrom grader import check\n"
                           "print(sorted(m for m in sys.modules if m.startswith(('torch', 'grader.cli', 'grader.api', "
                           "'grader.sandbox', 'rich', 'pydantic'))))"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
