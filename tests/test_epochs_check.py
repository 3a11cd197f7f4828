"""The epoch count is kept in the student's process (the kernel harness): a notebook can change it. It is set
against the exported model's batch-norm counters and the optimizers' own step counts (grader.epochs_check), and the
shipped rubrics' epoch budget reads the count only when they bear it out."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.epochs_check import check_epochs
from grader.pipeline import grade_facts
from grader.rubric.load import load_rubric
from grader.rubric.score import score
from grader.settings import Options, RunLimits

FIXTURES = Path(__file__).parent / "fixtures" / "counters"


# --- the arithmetic -------------------------------------------------------------------------------------------


def test_batchnorm_counters_that_show_more_epochs_than_counted_disagree():
    # 40 epochs of 469 batches, a 10-batch test loop each epoch in training mode, the count set to 12
    check = check_epochs(counted=12.0, batches_per_epoch=469, bn_batches=40 * 479, no_grad_batches=400,
                         optimizer_state_steps=None)
    assert check.disagrees is True and check.checked is None and check.at_least == 40.0
    assert check.message == (
        "the harness in the notebook's process counted 12 epochs, but the model's batch-norm counters show at least "
        "40 epochs (19,160 batches in training mode less 400 handed out without gradients, 469 a pass of the "
        "training loader): the count was changed or missed training, so it cannot decide the epoch budget")


def test_an_optimizer_step_count_that_shows_more_epochs_than_counted_disagrees():
    check = check_epochs(counted=12.0, batches_per_epoch=469, bn_batches=None, no_grad_batches=0,
                         optimizer_state_steps=40 * 469)
    assert check.disagrees is True and check.checked is None and check.at_least == 40.0
    assert "the optimizers' own step counts show at least 40 epochs (18,760 steps" in check.message


def test_counters_that_agree_back_the_count():
    check = check_epochs(counted=15.0, batches_per_epoch=469, bn_batches=15 * 469, no_grad_batches=150,
                         optimizer_state_steps=15 * 469)
    assert check.disagrees is False and check.checked == 15.0 and check.at_least == 15.0
    assert check.message.endswith("469 a pass of the training loader): they agree")


def test_the_tolerance_is_ten_percent_and_half_an_epoch():
    # 20 counted: up to 20 * 1.1 + 0.5 = 22.5 epochs' worth of batches agree, more do not
    at = {bn: check_epochs(counted=20.0, batches_per_epoch=100, bn_batches=bn, no_grad_batches=0,
                           optimizer_state_steps=None) for bn in (2250, 2251)}
    assert at[2250].disagrees is False and at[2250].checked == 20.0
    assert at[2251].disagrees is True and at[2251].checked is None


def test_fewer_epochs_in_the_model_than_counted_is_no_disagreement():
    # the harness counts every model the notebook trained; the graded model's counters only its own
    check = check_epochs(counted=45.0, batches_per_epoch=100, bn_batches=1500, no_grad_batches=0,
                         optimizer_state_steps=1500)
    assert check.disagrees is False and check.checked == 45.0 and check.at_least == 15.0


def test_a_test_loop_without_eval_mode_is_no_false_alarm():
    # 10 epochs of 100 batches, each followed by 157 test batches under no_grad but in training mode
    check = check_epochs(counted=10.0, batches_per_epoch=100, bn_batches=10 * 257, no_grad_batches=1570,
                         optimizer_state_steps=None)
    assert check.disagrees is False and check.checked == 10.0 and check.at_least == 10.0


def test_without_a_cross_check_the_count_backs_nothing_and_says_why():
    sgd_no_bn = check_epochs(counted=12.0, batches_per_epoch=469, bn_batches=None, no_grad_batches=0,
                             optimizer_state_steps=None)
    assert (sgd_no_bn.checked, sgd_no_bn.disagrees, sgd_no_bn.at_least) == (None, None, None)
    assert sgd_no_bn.message == (
        "the harness in the notebook's process counted 12 epochs, and no second counter can confirm it: the graded "
        "model has no batch-norm counters and no optimizer kept a step count (SGD keeps none)")
    no_length = check_epochs(counted=12.0, batches_per_epoch=None, bn_batches=5000, no_grad_batches=0,
                             optimizer_state_steps=5000)
    assert no_length.checked is None and no_length.message.endswith("the training DataLoader has no length")
    nothing = check_epochs(counted=None, batches_per_epoch=None, bn_batches=5000, no_grad_batches=0,
                           optimizer_state_steps=None)
    assert nothing.checked is None and "counted no training epochs" in nothing.message


# --- notebooks run in the sandbox -----------------------------------------------------------------------------

# Fails with the fix where bubblewrap is missing or refused (conftest.py): ./setup.sh installs it.
sandboxed = pytest.mark.usefixtures("bwrap")


@pytest.fixture(scope="module")
def options(real_mnist_dir):
    return Options(data=str(real_mnist_dir), limits=RunLimits(wall_seconds=300, cell_seconds=120,
                                                           memory_bytes=3 << 30, max_processes=96,
                                                           max_file_bytes=50 << 20, output_bytes=2 << 20))


def graded(name: str, options: Options):
    facts = grade_facts(FIXTURES / f"{name}.ipynb", options)
    assert facts.verdict.kind == "ok", facts.verdict.message
    return facts, {item.id: item for item in score(facts, load_rubric("mnist-s4")).items}


@sandboxed
def test_an_honest_count_passes_the_epoch_budget(options):
    facts, items = graded("honest_three_epochs", options)
    train = facts.train
    assert (train.epochs, train.batches_per_epoch, train.optimizer_steps) == (3.0, 4, 12)
    assert train.optimizer_state_steps == 12  # Adam's own `step`
    assert train.no_grad_batches == 12  # 4 test batches after each epoch
    assert facts.model.stored.bn_batches == 24  # the test loop forgot model.eval(): 12 training + 12 test batches
    assert train.counter_disagrees is False and train.epochs_at_least == 3.0 and train.epochs_checked == 3.0
    assert items["epochs"].status == "passed" and items["epochs"].evidence == "train.epochs_checked = 3; needs <= 20"


@sandboxed
def test_setting_the_old_module_global_counter_changes_nothing(options):
    facts, items = graded("counter_set_lower_in_module_global", options)
    assert facts.verdict.failed_cells == [4]  # `h._state`: no such attribute any more
    assert facts.train.epochs == 40.0 and facts.train.epochs_checked == 40.0
    assert items["epochs"].status == "failed" and items["epochs"].evidence == "train.epochs_checked = 40; needs <= 20"


@sandboxed
@pytest.mark.parametrize("name, source, batches", [
    ("counter_set_lower_in_closure", "the model's batch-norm counters", "320 batches in training mode less 160"),
    ("counter_set_lower_without_batchnorm", "the optimizers' own step counts", "160 steps"),
])
def test_a_counter_set_lower_after_training_does_not_pass_the_epoch_budget(name, source, batches, options):
    facts, items = graded(name, options)
    train = facts.train
    assert train.epochs == 12.0  # what the notebook's process says
    assert train.counter_disagrees is True and train.epochs_at_least == 40.0 and train.epochs_checked is None
    assert f"counted 12 epochs, but {source} show at least 40 epochs ({batches}" in train.epochs_check
    epochs = items["epochs"]
    assert epochs.status == "not_measured" and epochs.points == 0 and epochs.required
    assert epochs.feedback == f"Not measured: {train.epochs_check}."
    assert not score(facts, load_rubric("mnist-s4")).passed
