"""`grade rubric lint|show|facts`: exit codes and what they print."""

from grader.cli.main import main
from grader.rubric.load import RUBRICS, load_rubric

BROKEN = ("id: t\ntitle: T\nitems:\n"
          "  - id: a\n    title: A\n    points: 10\n    fact: model.param.trainable\n    lt: 1\n")


def test_lint_accepts_the_shipped_rubrics(capsys):
    assert main(["rubric", "lint", *[str(p) for p in sorted(RUBRICS.glob("*.yaml"))]]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and all(line.startswith("ok: ") for line in out)
    assert f"mnist-s4, {len(load_rubric('mnist-s4').items)} items, 100 points, hash " in out[1]


def test_lint_takes_names_too(capsys):
    assert main(["rubric", "lint", "mnist-s3"]) == 0
    assert f"mnist-s3, {len(load_rubric('mnist-s3').items)} items, 100 points" in capsys.readouterr().out


def test_lint_reports_every_broken_file_and_exits_2(tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN)
    missing = tmp_path / "missing.yaml"
    assert main(["rubric", "lint", "mnist-s3", str(broken), str(missing)]) == 2
    captured = capsys.readouterr()
    assert captured.out.startswith("ok: ") and "mnist-s3" in captured.out
    assert f"error: {broken}:7: item 'a': fact: unknown fact 'model.param.trainable'" in captured.err
    assert "-> known facts: " in captured.err
    assert f"error: {missing}: file not found" in captured.err


def test_show_prints_the_items_and_what_needs_a_run(capsys):
    assert main(["rubric", "show", "mnist-s4"]) == 0
    out = capsys.readouterr().out
    assert ("mnist-s4" in out and f"{len(load_rubric('mnist-s4').items)} items, 100 points" in out
            and "mode execute" in out)
    for text in ("model.stored.learned", "< 20,000", ">= 99.4%: 30", "notebook.comment_coverage", "needs a run"):
        assert text in out


def test_show_of_a_broken_rubric_is_a_usage_error(tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN)
    assert main(["rubric", "show", str(broken)]) == 2
    assert "unknown fact" in capsys.readouterr().err


def test_facts_lists_every_fact_with_its_kind(capsys):
    assert main(["rubric", "facts"]) == 0
    out = capsys.readouterr().out
    assert "model.params.trainable" in out and "eval.accuracy" in out and "ok | timeout" in out


def test_lint_refuses_a_static_rubric_that_reads_a_run_only_fact(tmp_path, capsys):
    path = tmp_path / "static.yaml"
    path.write_text("id: s\ntitle: S\nmode: static\nitems:\n  - id: printed\n    title: Printed while graded\n"
                    "    fact: claims.run_accuracy\n    ge: 99\n    points: 5\n")
    assert main(["rubric", "lint", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:7" in err and "item 'printed' reads claims.run_accuracy, which only a run measures" in err
    assert "but mode is static" in err and "use mode: execute, or drop the item" in err


def test_facts_says_what_each_fact_is_declared_as(capsys):
    assert main(["rubric", "facts"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "eval.unseen_accuracy" in line)
    assert "number (percent)" in row and "evaluation" in row and "grader" in row and "evaluate, execute" in row


def test_rubric_without_an_action_prints_help_and_exits_2(capsys):
    assert main(["rubric"]) == 2
    assert "grade rubric lint" in capsys.readouterr().out


def test_show_says_which_grading_environment_the_notebooks_run_in(capsys):
    assert main(["rubric", "show", "tests/fixtures/handed_in/keras-eip.yaml"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "grading environment: default packages + keras>=3; compat keras-1, keras-2" in out
    assert "grade env build tests/fixtures/handed_in/keras-eip.yaml" in out
