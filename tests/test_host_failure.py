"""The machine's failure is never the student's grade: a bubblewrap that cannot create namespaces (a real
script first on PATH that answers as bubblewrap does on such a kernel) leaves every student not graded, blank in
every LMS file, uncached, with a batch that exits 3 and says what to fix; a machine that cannot sandbox at all
stops the batch before anything runs. A notebook that only pretends to be bubblewrap failing is graded as what it
did."""

from __future__ import annotations

import atexit
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from grader.errors import GraderError
from grader.facts import Facts, GradingFacts, NotebookFacts, VerdictFacts
from grader.rubric.load import load_rubric
from grader.rubric.score import score
from grader.sandbox.bwrap import SandboxSpec
from grader.sandbox.failure import exception_failure, sandbox_failure
from grader.sandbox.preflight import check_sandbox_starts
from grader.sandbox.run import run_sandboxed
from grader.settings import RunLimits

CHECKOUT = Path(__file__).resolve().parents[1]
EXAMPLES = CHECKOUT / "examples"
WORKSHEET = EXAMPLES / "moodle-grading-worksheet.csv"
STUDENTS = ("Ada Good_1001_assignsubmission_file_", "Ben Big_1002_assignsubmission_file_",
            "Di Terse_1004_assignsubmission_file_")
REFUSED = ("bwrap: No permissions to creating new namespace, likely because the kernel does not allow "
           "non-privileged user namespaces.")

pytestmark = pytest.mark.usefixtures("bwrap")


def _fake_bwrap(folder: Path, *, first_starts: bool) -> Path:
    """A `bwrap` that fails as bubblewrap does on a kernel without unprivileged user namespaces. `first_starts`:
    the first sandbox (the grader's check before the class) starts with the real bwrap, every later one is
    refused: the namespaces ran out mid-class (user.max_user_namespaces). A root grader starts bwrap as an
    unprivileged uid (grader.sandbox.identity), so the script lives in a folder that uid can enter and write its
    mark in (`folder`, under pytest's root-only tmp, names it only)."""
    folder = Path(tempfile.mkdtemp(prefix=f"{folder.name}-", dir="/tmp"))
    folder.chmod(0o1777)
    atexit.register(shutil.rmtree, folder, True)
    real = shutil.which("bwrap")
    first = f'if mkdir "{folder}/started" 2>/dev/null; then exec {real} "$@"; fi\n' if first_starts else ""
    script = folder / "bwrap"
    script.write_text(f"#!/bin/sh\n{first}echo '{REFUSED}' >&2\nexit 1\n")
    script.chmod(0o755)
    return folder


def _env(fake: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if fake is not None:
        env["PATH"] = f"{fake}:{env['PATH']}"
    return env


def _grade(args: list, fake: Path | None) -> subprocess.CompletedProcess:
    """`grade ...` in a fresh process (a fresh warm evaluator too), from this checkout."""
    return subprocess.run([sys.executable, "-m", "grader", *map(str, args)], cwd=CHECKOUT, env=_env(fake),
                          capture_output=True, text=True, timeout=900)


@pytest.fixture()
def klass(tmp_path):
    folder = tmp_path / "class"
    for name in STUDENTS:
        shutil.copytree(EXAMPLES / "submissions" / name, folder / name)
    return folder


def _worksheet_rows(path: Path) -> dict[str, dict[str, str]]:
    return {r["Identifier"]: r for r in csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig")))}


def test_namespaces_refused_mid_class_leave_every_student_not_graded_blank_and_uncached(klass, tmp_path,
                                                                                       real_mnist_dir):
    out = tmp_path / "out"
    args = [klass, "--rubric", "mnist-s3", "--mode", "evaluate", "--out", out, "--data", real_mnist_dir,
            "--canvas-assignment-id", "77", "--moodle-worksheet", WORKSHEET, "--jobs", "1"]
    first = _grade(args, _fake_bwrap(tmp_path / "fake1", first_starts=True))
    assert first.returncode == 3, first.stderr
    assert ("3 of 3 not graded (1001, 1002, 1004): the grader failed, not the students: bubblewrap could not "
            "create namespaces") in " ".join(first.stderr.split())
    assert "fix the machine and run again" in first.stderr and "0 graded, 3 not graded" in first.stderr
    assert not list((out / ".cache").glob("*.json"))  # nothing cached

    with open(out / "gradebook.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    # the three hand-ins not graded: blank; the worksheet's other students handed in nothing: a row each, scoring 0
    by_student = {r["student"]: (r["score"], r["passed"], r["verdict"]) for r in rows}
    assert by_student == {**{s: ("", "FALSE", "grader_failed") for s in ("1001", "1002", "1004")},
                          **{s: ("0", "FALSE", "nothing_to_grade") for s in ("1003", "1005", "1006", "1007")}}
    failed_rows = [r for r in rows if r["verdict"] == "grader_failed"]
    assert all(r["accuracy"] == "" and r["params"] == "" for r in failed_rows)  # no item reads as a zero either
    assert "4 student(s) with nothing to grade" in first.stderr
    canvas = list(csv.reader(io.StringIO((out / "canvas.csv").read_text(encoding="utf-8-sig"))))
    assert [row[1:] for row in canvas[2:]] == [[s, "", "", "", ""] for s in ("1001", "1002", "1004")]
    original, filled = _worksheet_rows(WORKSHEET), _worksheet_rows(out / WORKSHEET.name)
    assert filled == original  # every row as Moodle wrote it: no grade, no feedback
    assert (out / WORKSHEET.name).read_bytes() == WORKSHEET.read_bytes()

    report = (out / "1001" / "report.md").read_text()
    assert "not graded: the grader failed — not your fault" in report
    assert "bubblewrap could not create namespaces" in report and "— / 100" in report
    results = json.loads((out / "1001" / "results.json").read_text())
    assert "score" not in results and results["tests"] == []
    assert "Not graded: the grader failed — not your fault" in results["output"]
    facts = json.loads((out / "1001" / "facts.json").read_text())
    assert facts["verdict"]["kind"] == "grader_failed" and facts["eval"]["accuracy"] is None

    again = _grade(args, _fake_bwrap(tmp_path / "fake2", first_starts=True))
    assert again.returncode == 3 and "0 graded, 3 not graded, 0 unchanged (cached)" in again.stderr

    fixed = _grade(args, None)  # the machine fixed: the same command grades everyone
    assert fixed.returncode == 0, fixed.stderr
    assert "3 graded, 0 unchanged (cached)" in fixed.stderr
    with open(out / "gradebook.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    handed_in = [r for r in rows if r["student"] in ("1001", "1002", "1004")]
    assert [r["verdict"] for r in handed_in] == ["ok", "ok", "ok"] and all(float(r["accuracy"]) > 0 for r in handed_in)
    canvas = list(csv.reader(io.StringIO((out / "canvas.csv").read_text(encoding="utf-8-sig"))))
    assert all(row[5] != "" for row in canvas[2:])
    assert all(r["Grade"] != "" for r in _worksheet_rows(out / WORKSHEET.name).values()
               if r["Identifier"].removeprefix("Participant ") in ("1001", "1002", "1004"))


def test_a_machine_that_cannot_sandbox_stops_the_class_before_anything_runs(klass, tmp_path, real_mnist_dir):
    out = tmp_path / "out"
    done = _grade([klass, "--rubric", "mnist-s3", "--mode", "evaluate", "--out", out, "--data", real_mnist_dir],
                  _fake_bwrap(tmp_path / "fake", first_starts=False))
    said = " ".join(done.stderr.split())
    assert done.returncode == 2, done.stderr
    assert ("the sandbox check before grading: nothing was graded: the sandbox cannot start on this machine: "
            "bubblewrap could not create namespaces (bwrap: No permissions to creating new namespace") in said
    assert "-> fix the machine and run again: allow unprivileged user namespaces" in said
    assert not (out / "gradebook.csv").exists() and not list(out.glob(".cache/*.json"))


def test_the_check_says_nothing_when_the_sandbox_starts():
    check_sandbox_starts(RunLimits())  # the real bwrap: no error


def test_the_check_names_the_failure_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _env(_fake_bwrap(tmp_path / "fake", first_starts=False))["PATH"])
    with pytest.raises(GraderError) as err:
        check_sandbox_starts(RunLimits())
    text = err.value.render()
    assert "bubblewrap could not create namespaces" in text and "kernel.unprivileged_userns_clone=1" in text


def test_a_refused_sandbox_is_classified_from_its_result(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _env(_fake_bwrap(tmp_path / "fake", first_starts=False))["PATH"])
    result = run_sandboxed([sys.executable, "-c", "pass"], SandboxSpec(scratch=tmp_path / "scratch"))
    failure = sandbox_failure(result, record_written=False)
    assert result.returncode == 1 and failure is not None
    assert failure.reason == "bubblewrap could not create namespaces" and failure.detail == REFUSED
    assert sandbox_failure(result, record_written=True) is None  # a record: something ran inside


def test_a_missing_program_the_sandbox_starts_is_the_machines(tmp_path):
    gone = tmp_path / "scratch" / "env" / "bin" / "python"  # an interpreter in a folder it shows, removed
    result = run_sandboxed([str(gone), "-c", "pass"], SandboxSpec(scratch=tmp_path / "scratch"))
    failure = sandbox_failure(result, record_written=False)  # the real bwrap: "bwrap: execvp ...: No such file"
    assert failure is not None and failure.reason == "the sandbox could not find a program or folder it needs"
    assert str(gone) in failure.detail and "grade env build" in failure.fix


def test_a_command_that_ran_and_failed_is_not_the_machines(tmp_path):
    result = run_sandboxed([sys.executable, "-c", "import sys; print('bwrap: no'); sys.exit(1)"],
                           SandboxSpec(scratch=tmp_path / "scratch"))
    assert result.returncode == 1 and sandbox_failure(result, record_written=False) is None


def test_a_cgroup_that_cannot_be_made_is_the_machines():
    failure = exception_failure(PermissionError(13, "Permission denied", "/sys/fs/cgroup/mnist-grader/job-1"))
    assert failure.reason == "a cgroup for the job could not be made" and "Delegate=yes" in failure.fix
    assert exception_failure(KeyError("x")).reason == "the grader raised an error"


def test_not_graded_scores_nothing():
    facts = Facts(grading=GradingFacts(mode="execute"), notebook=NotebookFacts(comment_coverage=1.0),
                  verdict=VerdictFacts(kind="grader_failed", message="bubblewrap could not create namespaces"))
    sheet = score(facts, load_rubric("mnist-s3"))
    assert sheet.score is None and sheet.passed is False
    assert {i.status for i in sheet.items} == {"not_judged"} and all(i.points == 0 for i in sheet.items)
    assert sheet.items[0].evidence.startswith("not graded: the grader failed — not your fault")


def test_a_notebook_pretending_bubblewrap_failed_is_graded_as_what_it_did(tmp_path, capsys, real_mnist_dir):
    from grader.cli.main import main

    nb = new_notebook(cells=[new_code_cell(
        "# print what bubblewrap prints when it is refused, then kill the grader's runner\n"
        "import os, signal\n"
        f"os.write(2, b'{REFUSED}\\n')\n"
        "os.kill(os.getppid(), signal.SIGKILL)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "forger.ipynb"
    nbformat.write(nb, str(path))
    code = main(["check", str(path), "--data", str(real_mnist_dir), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["facts"]["verdict"]["kind"] == "crash" and out["score"]["score"] is not None and code == 1


def test_check_on_a_machine_without_namespaces_says_not_graded(tmp_path, monkeypatch, real_mnist_dir):
    nb = new_notebook(cells=[new_code_cell("# nothing\nx = 1")])
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, str(path))
    monkeypatch.setenv("PATH", _env(_fake_bwrap(tmp_path / "fake", first_starts=False))["PATH"])
    done = subprocess.run([sys.executable, "-m", "grader", "check", str(path), "--data", str(real_mnist_dir)],
                          cwd=CHECKOUT, env=dict(os.environ), capture_output=True, text=True, timeout=600)
    said = " ".join(done.stdout.split())
    assert done.returncode == 3, done.stdout + done.stderr
    assert "not graded: the grader failed — not your fault." in said
    assert "bubblewrap could not create namespaces" in said


def test_a_grading_environment_gone_mid_class_is_the_machines(tmp_path, real_mnist_dir):
    from grader.pipeline import grade_facts
    from grader.settings import Options

    nb = new_notebook(cells=[new_code_cell("# nothing\nx = 1")])
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, str(path))
    gone = tmp_path / "envs" / "deleted"
    (gone / "bin").mkdir(parents=True)  # the venv's folder is there, its interpreter is not
    facts = grade_facts(path, Options(mode="execute", environment=gone, data=real_mnist_dir))
    assert facts.verdict.kind == "grader_failed" and not facts.verdict.graded
    assert facts.verdict.message.startswith(f"the grading environment is missing (no interpreter at {gone}/bin/python)")
    assert "grade env build RUBRIC" in facts.verdict.message
