"""What `grade` says when the input is wrong or the grader itself breaks: what is wrong, where, what to do,
and an exit code that means it (2 a usage or input error, 3 an internal error)."""

from __future__ import annotations

from pathlib import Path

import pytest

import grader.cli.arch_cmd
import grader.cli.batch_cmd
from grader.cli.main import EXIT_INTERNAL, EXIT_USAGE, main


def test_a_first_word_that_is_neither_a_path_nor_a_command_is_named_as_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["nosuchdir"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: nosuchdir: no such file or folder (and it is not a command either)\n")
    assert "`grade --help` explains each" in err and "invalid choice" not in err


def test_a_mistyped_command_is_suggested(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["chek", "my.ipynb"]) == EXIT_USAGE
    assert "-> did you mean `grade check`? " in capsys.readouterr().err


def test_an_existing_folder_is_still_graded_as_a_class(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(grader.cli.batch_cmd, "run", lambda args: seen.append(args.command) or 0)
    assert main([str(tmp_path)]) == 0 and seen == ["batch"]


def test_arch_on_a_notebook_points_to_grade_check(tmp_path, capsys):
    notebook = tmp_path / "fake.ipynb"
    notebook.write_text("{}")
    assert main(["arch", str(notebook)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"error: {notebook}: a notebook is not a layer stack, so `grade arch` cannot read it\n")
    assert f"-> to check the model a notebook builds, run `grade check {notebook}`" in err
    assert "HxWxC" not in err


def test_arch_on_another_file_says_which_files_it_reads(capsys):
    assert main(["arch", "model.py"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "'model.py' looks like a file name, but not one of the files a layer stack is read from" in err
    assert "model.py:ClassName" in err


def test_a_rubric_with_two_mistakes_shows_both_with_their_lines(tmp_path, capsys):
    rubric = tmp_path / "r.yaml"
    rubric.write_text("id: t\ntitle: T\nitems:\n"
                      "  - id: a\n    title: A\n    points: 10\n    fact: nope\n    lt: 1\n"
                      "  - id: b\n    title: B\n    points: 5\n    fact: eval.accuracy\n    gte: 99\n")
    assert main(["rubric", "lint", str(rubric)]) == EXIT_USAGE
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"error: {rubric}: 2 problems, each with its line and what to do:"
    assert err[1] == f"  {rubric}:7: item 'a': fact: unknown fact 'nope'"
    assert err[2].startswith("    -> known facts: ")
    # The misspelt comparison is reported once, as a misspelling, not also as "no comparison given".
    assert err[3:] == [f"  {rubric}:13: item 'b': unknown key 'gte' (did you mean 'ge'?)",
                       "    -> allowed keys here: lt, le, ge, gt, eq, in, between, id, title, fact, points, bands, "
                       "required, visibility, feedback"]
    assert "more problem" not in "\n".join(err)


def test_a_quiz_bank_with_two_mistakes_shows_both(tmp_path, capsys):
    bank = tmp_path / "bank.yaml"
    bank.write_text("quiz: q\ntitle: Q\nquestions:\n"
                    "  - id: a\n    kind: rf\n    text: x\n    stack: '28x28x1 > c3:4'\n    colour: red\n"
                    "  - id: b\n    kind: shape\n    text: x\n    layer: 1\n    stack: s\n    ask: hwcd\n")
    assert main(["quiz", "validate", str(bank)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"error: {bank}: 2 problems, each with its line and what to do:\n" in err
    assert f"  {bank}:8: questions[0]: unknown key 'colour'\n" in err
    assert f"  {bank}:14: questions[1].ask: 'hwcd' is not allowed\n    -> use one of: 'hwc', 'hw' or 'c'" in err


def test_an_internal_error_is_one_line_with_the_log_and_exit_3(tmp_path, monkeypatch, capsys):
    def broken(spec: str, input_chw: str):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(grader.cli.arch_cmd, "load_table", broken)
    assert main(["arch", "28x28x1 > c3:8"]) == EXIT_INTERNAL
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert lines[0].startswith("internal error in `grade arch`: RuntimeError: boom (at test_cli_messages.py:")
    log = Path(lines[0].split("the full log is ", 1)[1].split(";", 1)[0])
    assert log.parent == tmp_path / "cache" / "mnist-grader" / "logs"
    text = log.read_text()
    assert text.startswith("grade arch 28x28x1 > c3:8\nmnist-grader ")
    assert "Traceback (most recent call last)" in text and "RuntimeError: boom\nsecond line" in text


def test_an_internal_error_without_a_writable_cache_logs_to_the_temporary_folder(tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))  # a file: no folder can be made under it
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr("tempfile.tempdir", None)  # gettempdir() reads TMPDIR again
    monkeypatch.setattr(grader.cli.arch_cmd, "load_table", lambda spec, input_chw: {}["missing"])
    assert main(["arch", "28x28x1 > c3:8"]) == EXIT_INTERNAL
    line = capsys.readouterr().err.strip()
    assert line.startswith("internal error in `grade arch`: KeyError: 'missing'")
    assert f"the full log is {tmp_path / 'tmp'}/grade-" in line


@pytest.mark.parametrize("argv", [["--version"], ["arch", "--help"]])
def test_argparse_exits_are_not_internal_errors(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 0
