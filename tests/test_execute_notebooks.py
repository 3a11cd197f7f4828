"""Notebooks through the whole sandboxed path: each adversarial fixture ends with the right verdict,
nothing outside its scratch changes, and the next submission is graded normally."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import nbformat
import pytest

from grader.pipeline import grade_facts
from grader.settings import Options, RunLimits
from tests.bound_paths import shows_only_the_way_in

FIXTURES = Path(__file__).parent / "fixtures" / "exec"

# Fails with the fix where bubblewrap is missing or refused (conftest.py): ./setup.sh installs it.
pytestmark = pytest.mark.usefixtures("bwrap")


@pytest.fixture(scope="module")
def options(real_mnist_dir, tmp_path_factory):
    return Options(data=str(real_mnist_dir), limits=RunLimits(wall_seconds=120, cell_seconds=10, memory_bytes=2 << 30,
                                                           max_processes=96, max_file_bytes=50 << 20,
                                                           output_bytes=2 << 20))


def grade(name: str, options: Options, **changes):
    opts = Options(**{**options.__dict__, **changes})
    return grade_facts(FIXTURES / f"{name}.ipynb", opts)


def outputs_text(keep: Path) -> str:
    nb = nbformat.read(str(keep / "executed.ipynb"), as_version=4)
    return "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_realstyle_notebook_runs_end_to_end_and_is_measured(options, tmp_path):
    # a real training cell: give it the time a loaded 2-core CI machine needs
    facts = grade("realstyle_train_subset", options, keep=tmp_path,
                  limits=RunLimits(wall_seconds=600, memory_bytes=3 << 30))
    assert facts.verdict.kind == "ok"
    # the old-API cell failed, grading went on, and the verdict says what changed
    assert facts.verdict.cell == 8 and "write `next(dataiter)`" in facts.verdict.message
    assert facts.verdict.failed_cells == [8]
    # one epoch on 3,000 images from a random init: 40-75% across runs, far above the 10% of chance
    assert facts.eval.path == "export" and 25 < facts.eval.accuracy < 100
    assert sum(sum(row) for row in facts.eval.confusion) == 10000
    assert len(facts.eval.misclassified) == round(10000 * (100 - facts.eval.accuracy) / 100)
    assert facts.model.params.trainable == 6434  # counted by hand: convs 80+1168+136+1168+2320+1450, bn 2*(8+16+16+16)
    assert facts.model.layers.linear == 0 and facts.model.gap is True and facts.model.transitions == 1
    assert facts.train.optimizer_steps == 47 and facts.train.epochs == pytest.approx(1.0, abs=0.01)
    # the model's batch-norm counters bear the count out: 47 training batches and torchsummary's one forward pass
    # (in training mode); the test loop is in eval mode
    assert facts.model.stored.bn_batches == 48 and facts.train.batches_per_epoch == 47
    assert facts.train.counter_disagrees is False and facts.train.epochs_checked == facts.train.epochs
    printed = outputs_text(tmp_path)
    assert "Test set: Average loss" in printed and "Total params: 6,434" in printed  # torchsummary ran in the sandbox


@pytest.mark.parametrize("name, kind", [
    ("infinite_loop", "timeout"),
    ("sleep_past_limit", "timeout"),
    ("never_finishes_first_cell", "timeout"),
    ("memory_bomb", "memory"),
    ("print_gigabytes", "output_limit"),
    ("kill_parent", "crash"),
    ("forward_crashes", "bad_model"),
    ("nine_outputs", "bad_model"),
    ("nan_outputs", "bad_model"),
    ("no_model_at_all", "no_model"),
    ("missing_module", "missing_module"),
    ("invalid_json", "invalid_notebook"),
])
def test_adversarial_notebook_gets_a_verdict(name, kind, options):
    facts = grade(name, options)
    assert facts.verdict.kind == kind, facts.verdict.message
    assert facts.verdict.message


def test_fork_bomb_is_bounded_and_ends(options):
    # Forks past max_processes are refused; the ~90 copies of the kernel that did start may
    # also use up the memory limit first, depending on how many pages they touch.
    facts = grade("fork_bomb", options)
    assert facts.verdict.kind in ("no_model", "memory"), facts.verdict.message


def test_the_model_graded_is_the_one_bound_to_model_at_the_end(options):
    facts = grade("several_models_reassigned", options)
    assert facts.verdict.kind == "ok" and facts.model.params.trainable == 6434  # Net, not Wide (260)
    # the kernel's own "running over TCP without encryption" warning is not the student's output
    assert "without encryption" not in (facts.verdict.output_tail or "")


def test_a_model_under_another_name_is_found_by_its_shape(options):
    facts = grade("model_under_another_name", options)
    assert facts.verdict.kind == "ok" and facts.model.params.trainable == 6434  # `net`; the 1-channel conv is no model


def test_a_test_transform_that_is_not_affine_is_not_replayed_and_the_verdict_says_so(options, tmp_path):
    facts = grade("nonaffine_test_transform", options)  # the grader makes the inputs: student code never does
    assert facts.verdict.kind == "ok" and facts.eval.path == "export"
    assert facts.eval.accuracy is not None and sum(map(sum, facts.eval.confusion)) == 10000
    assert "not a per-pixel affine map" in facts.verdict.message and "ToTensor + Normalize" in facts.verdict.message


def test_missing_module_is_named(options):
    facts = grade("missing_module", options)
    assert facts.verdict.cell == 1 and "`keras_core_nonexistent`" in facts.verdict.message


def test_without_bwrap_execution_is_refused_with_the_fix(monkeypatch, real_mnist_dir, capsys):
    import grader.sandbox.run as sandbox_run
    from grader.cli.main import main

    monkeypatch.setattr(sandbox_run, "bwrap_available", lambda: None)
    assert main(["run", str(FIXTURES / "no_model_at_all.ipynb"), "--data", str(real_mnist_dir)]) == 2
    err = capsys.readouterr().err
    assert "bubblewrap (bwrap) is not installed" in err and "apt-get install -y bubblewrap" in err


def test_no_sandbox_warns_on_every_run(real_mnist_dir, capsys):
    from grader.cli.main import main

    with pytest.warns(UserWarning, match="running without the sandbox: the code can read, write and reach"):
        assert main(["run", str(FIXTURES / "no_model_at_all.ipynb"), "--no-sandbox", "--json",
                     "--data", str(real_mnist_dir), "--timeout", "120"]) == 0
    captured = capsys.readouterr()
    assert "warning: --no-sandbox" in captured.err
    assert json.loads(captured.out)["verdict"]["kind"] == "no_model"


def test_timeouts_name_the_cell(options):
    facts = grade("never_finishes_first_cell", options)
    assert facts.verdict.cell == 1 and "longer than 10 s" in facts.verdict.message


def test_a_cell_limit_in_fractions_of_a_second_holds(options):
    # nbclient takes whole seconds only: `cell_time: 2.5` once crashed the runner instead of limiting the cell
    facts = grade("never_finishes_first_cell", options, limits=options.limits.model_copy(update={"cell_seconds": 2.5}))
    assert facts.verdict.kind == "timeout" and facts.verdict.cell == 1, facts.verdict
    assert "longer than 2.5 s" in facts.verdict.message


def test_fill_disk_stops_at_the_file_limit(options, tmp_path):
    facts = grade("fill_disk", options)
    assert facts.verdict.kind == "crash" and facts.verdict.cell == 1
    assert "File too large" in facts.verdict.message or "Errno 27" in facts.verdict.message


def test_socket_to_outside_fails_and_grading_goes_on(options, tmp_path):
    facts = grade("socket_to_outside", options, keep=tmp_path)
    printed = outputs_text(tmp_path)
    assert "connected" not in printed and "1.1.1.1" in printed
    assert facts.verdict.kind == "ok" and facts.model.params.trainable == 6434


def test_grader_env_and_home_are_hidden(options, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADER_SECRET_TOKEN", "s3cr3t")
    grade("read_grader_env_and_home", options, keep=tmp_path)
    printed = outputs_text(tmp_path)
    assert "GRADER_SECRET_TOKEN" not in printed and "s3cr3t" not in printed
    # /work (where the checkout is) is not there, or shows only the way to the grader's interpreter (a .venv
    # that ./setup.sh made in the checkout): never the checkout's files
    line = next(line for line in printed.splitlines() if line.startswith("/work "))
    shown = line.split(" ", 1)[1]
    assert shown == "FileNotFoundError" or shows_only_the_way_in(ast.literal_eval(shown), "/work"), line


def test_writes_outside_scratch_change_nothing(options, tmp_path):
    before = set(os.listdir("/")), set(os.listdir("/usr")), set(os.listdir("/etc"))
    grade("write_outside_scratch", options, keep=tmp_path)
    lines = outputs_text(tmp_path).splitlines()
    for path in ("/usr/pwned", "/etc/pwned", "/work/pwned", "/pwned"):
        assert any(line.startswith(f"{path} ") and line.endswith("Error") for line in lines), lines
    # ../pwned is the job folder, which exists only as the sandbox's private /tmp: the write lands there
    assert (set(os.listdir("/")), set(os.listdir("/usr")), set(os.listdir("/etc"))) == before


def test_monkeypatched_accuracy_is_not_believed(options):
    facts = grade("fake_accuracy_monkeypatch", options)
    assert facts.claims.accuracy is None  # the fixture has no saved outputs; what it prints at run time is not a claim
    assert facts.verdict.kind == "ok" and facts.eval.accuracy < 30  # an untrained net, measured cleanly


def test_a_normal_submission_after_the_bombs_grades_normally(options):
    grade("memory_bomb", options)
    grade("fork_bomb", options)
    facts = grade("socket_to_outside", options)
    assert facts.verdict.kind == "ok" and facts.eval.accuracy is not None


def test_grade_run_json_prints_the_nested_facts(real_mnist_dir, capsys):
    from grader.cli.main import main

    code = main(["run", str(FIXTURES / "nine_outputs.ipynb"), "--json", "--data", str(real_mnist_dir),
                 "--timeout", "120"])
    facts = json.loads(capsys.readouterr().out)
    assert code == 0 and facts["verdict"]["kind"] == "bad_model"
    assert "(8, 9)" in facts["verdict"]["message"]
    assert set(facts) >= {"notebook", "claims", "model", "train", "eval", "verdict"}


def test_many_small_files_stop_at_the_disk_quota(options):
    # each file is under the per-file limit; together they pass the scratch folder's quota
    limits = options.limits.model_copy(update={"disk_bytes": 128 << 20})
    facts = grade("fill_disk_small_files", options, limits=limits)
    assert facts.verdict.kind == "disk", facts.verdict.message
    assert "filled its disk quota (128M or 10,000 files" in facts.verdict.message


@pytest.mark.parametrize("name", ["write_to_a_deleted_file", "make_empty_files"])
def test_files_a_walk_cannot_see_stop_at_the_disk_quota(options, name):
    # a file deleted while held open, or thousands of empty files: the scratch's own file system counts both
    limits = options.limits.model_copy(update={"disk_bytes": 50 << 20, "disk_files": 1000})
    facts = grade(name, options, limits=limits)
    assert facts.verdict.kind == "disk", facts.verdict.message
    assert ("filled its disk quota (50M or 1,000 files, folders and links in its working folder)"
            in facts.verdict.message)
