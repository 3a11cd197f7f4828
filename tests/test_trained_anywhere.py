"""The trained model wherever it lives (issue 21): the harness follows optimizers and the module trees that hold
their parameters, not variable names. Real notebooks through the sandboxed runner under mnist-s3, on a few
hundred MNIST images: a model built and trained inside a helper (kept or dropped), variants trained in turn by a
loop with no `model` variable (run and dry run), and a `model` global that holds an untrained module."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from grader.api import grade_submission, load_rubric, options_for

pytestmark = pytest.mark.usefixtures("bwrap")

SETUP = '''import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torchvision import datasets, transforms

torch.manual_seed(1)
tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
train_set = datasets.MNIST('../data', train=True, download=True, transform=tf)
test_set = datasets.MNIST('../data', train=False, download=True, transform=tf)
train_loader = torch.utils.data.DataLoader(torch.utils.data.Subset(train_set, range(256)), batch_size=64)
test_loader = torch.utils.data.DataLoader(torch.utils.data.Subset(test_set, range(200)), batch_size=100)


class Net(nn.Module):
    """BN, GN or LN after the first convolution; `width` channels."""
    def __init__(self, norm='bn', width=8):
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3)
        self.norm = {'bn': nn.BatchNorm2d(width), 'gn': nn.GroupNorm(2, width), 'ln': nn.GroupNorm(1, width)}[norm]
        self.conv2 = nn.Conv2d(width, 10, 3)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.norm(self.conv1(x))), 2)
        return F.log_softmax(self.conv2(x).mean((2, 3)), dim=-1)


def count(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def train(model, optimizer):
    model.train()
    for data, target in train_loader:
        optimizer.zero_grad()
        F.nll_loss(model(data), target).backward()
        optimizer.step()


def test(model):
    model.eval()
    with torch.no_grad():
        correct = sum(model(d).argmax(1).eq(t).sum().item() for d, t in test_loader)
    print('accuracy', correct / len(test_loader.dataset))
'''

TRAIN_MODEL = '''def train_model(norm='gn', width=12):
    model = Net(norm, width)
    print('params', norm, count(model))
    optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    for epoch in range(1):
        train(model, optimizer)
        scheduler.step()
        test(model)
    return model
'''

VARIANTS = "for norm, width in [('bn', 8), ('gn', 12), ('ln', 16)]:\n    train_model(norm, width)\nprint('done')"


def _notebook(path: Path, *cells: str) -> Path:
    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in cells]), str(path))
    return path


def _grade(path: Path, data: Path, tmp_path: Path, dry_run: bool = False):
    rubric = load_rubric("mnist-s3")
    options = options_for(rubric, data=str(data), dry_run=dry_run, keep=tmp_path / "kept")
    facts = grade_submission(path, rubric, options).facts
    executed = nbformat.read(str(tmp_path / "kept" / "executed.ipynb"), as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    return facts, printed


def _printed_count(printed: str, norm: str) -> int:
    return int(re.search(rf"params {norm} (\d+)", printed)[1])


def test_a_model_a_helper_trained_and_returned_is_graded_under_the_variable_it_went_to(tmp_path, real_mnist_dir):
    nb = _notebook(tmp_path / "helper_kept.ipynb", SETUP, TRAIN_MODEL, "net = train_model()")
    facts, printed = _grade(nb, real_mnist_dir, tmp_path)
    assert facts.verdict.kind == "ok", facts.verdict.message
    assert facts.train.model_variable == "net" and facts.train.trained_models == ["net"]
    assert facts.train.model_reason == "the last optimizer step updated the parameters of `net`"
    assert facts.model.params.trainable == _printed_count(printed, "gn")
    assert facts.train.optimizer_steps == 4


def test_a_model_a_helper_trained_and_dropped_is_still_graded_and_named_by_the_helper(tmp_path, real_mnist_dir):
    nb = _notebook(tmp_path / "helper_dropped.ipynb", SETUP, TRAIN_MODEL, "train_model()\nprint('trained')")
    facts, printed = _grade(nb, real_mnist_dir, tmp_path)
    assert facts.verdict.kind == "ok", facts.verdict.message
    label = "the Net trained inside `train_model(norm='gn', width=12)`"
    assert facts.train.model_variable == label and facts.train.trained_models == [label]
    assert facts.train.model_reason == f"the last optimizer step updated the parameters of {label}"
    assert facts.model.params.trainable == _printed_count(printed, "gn")
    assert facts.eval.path == "export" and facts.eval.accuracy is not None


def test_variants_trained_in_turn_by_a_loop_grade_the_last_one_with_a_note(tmp_path, real_mnist_dir):
    nb = _notebook(tmp_path / "variants.ipynb", SETUP, TRAIN_MODEL, VARIANTS)
    facts, printed = _grade(nb, real_mnist_dir, tmp_path)
    assert facts.verdict.kind == "ok", facts.verdict.message
    labels = [f"the Net trained inside `train_model(norm={n!r}, width={w})`" for n, w in
              [("ln", 16), ("gn", 12), ("bn", 8)]]
    assert facts.train.trained_models == labels and facts.train.model_variable == labels[0]
    assert f"trained several models ({', '.join(labels)}): graded {labels[0]}, because the last optimizer step " \
           f"updated the parameters of {labels[0]}" in facts.verdict.message
    counts = {n: _printed_count(printed, n) for n in ("bn", "gn", "ln")}
    assert len(set(counts.values())) == 3 and facts.model.params.trainable == counts["ln"]
    assert facts.train.optimizer_steps == 12


def test_a_dry_run_grades_the_module_the_last_optimizer_built_holds(tmp_path, real_mnist_dir):
    """The dry run's train_loader yields its two batches once, to the first variant: `bn` steps, `gn` and `ln` do
    not. The full run grades `ln` (the last step); so does the dry run, through the last optimizer built."""
    nb = _notebook(tmp_path / "variants.ipynb", SETUP, TRAIN_MODEL, VARIANTS)
    facts, printed = _grade(nb, real_mnist_dir, tmp_path, dry_run=True)
    assert facts.verdict.kind == "ok" and facts.verdict.failed_cells == [], facts.verdict.message
    label, first = (f"the Net trained inside `train_model(norm={n!r}, width={w})`" for n, w in [("ln", 16), ("bn", 8)])
    assert facts.train.model_variable == label and facts.train.trained_models == [first]
    assert facts.train.model_reason == ("in a dry run, which trains once on two batches per loader; the last "
                                        f"optimizer built holds the parameters of {label}")
    assert facts.model.params.trainable == _printed_count(printed, "ln")


def test_where_training_fails_before_a_step_the_module_the_last_optimizer_built_holds_is_graded(tmp_path,
                                                                                                 real_mnist_dir):
    crashing = ("def train(model, optimizer):\n    for data, target in train_loader:\n"
                "        loss = F.nll_loss(model(data), target)\n        print(loss.data[0])  # PyTorch 0.3\n"
                "        optimizer.step()")
    nb = _notebook(tmp_path / "crashes.ipynb", SETUP, TRAIN_MODEL, crashing, "net = train_model()")
    facts, printed = _grade(nb, real_mnist_dir, tmp_path)
    assert facts.verdict.failed_cells == [4] and "IndexError: invalid index of a 0-dim tensor" in facts.verdict.message
    label = "the Net trained inside `train_model(norm='gn', width=12)`"
    assert facts.train.model_variable == label and facts.train.trained_models == []
    assert facts.train.model_reason == ("nothing was trained (no optimizer step: the training cells failed or never "
                                        f"stepped); the last optimizer built holds the parameters of {label}")


def test_a_dry_run_names_a_model_kept_in_a_dict_by_its_key(tmp_path, real_mnist_dir):
    nb = _notebook(tmp_path / "variants_dict.ipynb", SETUP, TRAIN_MODEL,
                   "models = {norm: train_model(norm, width) for norm, width in [('bn', 8), ('ln', 16)]}")
    facts, printed = _grade(nb, real_mnist_dir, tmp_path, dry_run=True)
    assert facts.train.model_variable == "models['ln']"
    assert facts.train.model_reason.endswith("the last optimizer built holds the parameters of `models['ln']`")
    assert facts.model.params.trainable == _printed_count(printed, "ln")


def test_a_model_global_holding_an_untrained_module_loses_to_the_one_a_helper_trained(tmp_path, real_mnist_dir):
    nb = _notebook(tmp_path / "model_untrained.ipynb", SETUP, TRAIN_MODEL,
                   "model = Net('bn', 8)\nprint('params bn', count(model))", "train_model()\nprint('trained')")
    facts, printed = _grade(nb, real_mnist_dir, tmp_path)
    assert facts.verdict.kind == "ok", facts.verdict.message
    label = "the Net trained inside `train_model(norm='gn', width=12)`"
    assert facts.train.model_variable == label
    assert facts.train.model_reason == (f"the last optimizer step updated the parameters of {label} (`model` holds "
                                        "another module, which that step did not update)")
    assert facts.model.params.trainable == _printed_count(printed, "gn") != _printed_count(printed, "bn")
