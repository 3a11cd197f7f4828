"""The reference networks: the rubric's architecture through the grader's own engine, short training, notebooks.

No full training here (bench/reference.py does that; RESULTS.md has the figures).
Training tests run a few hundred steps on a 2,048-image subset of the real MNIST.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace

import nbformat
import pytest
import torch

from grader.arch.structure import structure_facts
from grader.arch.torch_graph import table_from_module
from grader.cli.main import main
from grader.data import load_mnist, stage_torchvision_layout
from grader.inspect.static import inspect_submission
from reference_models import make_notebooks
from reference_models.nets import REFERENCES
from reference_models.train import (
    NORMALIZE,
    DeviceMNIST,
    batches,
    fit,
    make_optimizer,
    seed_everything,
    to_device_tensors,
    train,
)

# the counts RESULTS.md reports; a change to a network must show up here and there
PARAMS = {"s3": 13_282, "s4": 10_382, "s5": 7_644, "stretch": 3_744}
TEST_LINE = re.compile(r"^Test set: Average loss: \d+\.\d{4}, Accuracy: \d+/\d+ \(\d+\.\d{2}%\)$", re.M)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # CI machines are small and shared
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def subset(real_mnist_dir):
    train_split, test_split = load_mnist(real_mnist_dir, "train"), load_mnist(real_mnist_dir, "test")
    train_set = DeviceMNIST(*to_device_tensors(train_split.images[:2048], train_split.labels[:2048], NORMALIZE, "cpu"),
                            train=True)
    test_set = DeviceMNIST(*to_device_tensors(test_split.images[:1000], test_split.labels[:1000], NORMALIZE, "cpu"),
                           train=False)
    return train_set, test_set


@pytest.mark.parametrize("name", list(REFERENCES))
def test_reference_meets_its_rubric_architecture(name):
    ref = REFERENCES[name]
    table = table_from_module(ref.net())
    facts = structure_facts(table, trainable=table.trainable, total=table.total, buffers=table.module_buffers)
    assert facts.params.trainable == PARAMS[name] < ref.max_params
    assert facts.output_shape == [10]
    assert ref.max_epochs is None or ref.epochs <= ref.max_epochs
    assert facts.layers.linear == 0 or ref.allows_linear
    if ref.needs_gap:
        assert facts.gap
    if ref.needs_transition:
        assert facts.transitions >= 1
    if ref.needs_batchnorm:
        assert facts.layers.batchnorm >= 1
    if ref.needs_dropout:
        assert facts.layers.dropout >= 1
    assert facts.rf.final >= 18  # a digit is about 20 pixels wide in its 28x28 frame


@pytest.mark.parametrize("name", list(REFERENCES))
def test_reference_learns_on_a_subset(name, subset, capsys):
    train_set, test_set = subset
    # batch 32 for 4 epochs of 64 steps: 256 steps, the one-cycle schedule squeezed into them
    run = fit(replace(REFERENCES[name], batch_size=32), seed=0, train_set=train_set, test_set=test_set, epochs=4)
    assert run.train_losses[-1] < 0.5 * run.train_losses[0]
    assert run.accuracies[-1] > 80.0
    assert len(TEST_LINE.findall(capsys.readouterr().out)) == 4  # the course's test line, once an epoch


def test_training_is_deterministic_for_a_seed(subset):
    train_set, _ = subset

    def weights_after_steps(seed):
        generator = seed_everything(seed)
        model = REFERENCES["s5"].net()  # the one with dropout: its masks come from the seed too
        loader = batches(train_set, 64, generator)
        optimizer, scheduler = make_optimizer(model, 1, len(loader), max_lr=0.1, weight_decay=0.0)
        train(model, loader, optimizer, scheduler, degrees=7.0, translate=2.0, generator=generator, max_steps=10)
        return torch.cat([p.detach().flatten() for p in model.state_dict().values() if p.is_floating_point()])

    assert torch.equal(weights_after_steps(1), weights_after_steps(1))
    assert not torch.equal(weights_after_steps(1), weights_after_steps(2))


@pytest.mark.parametrize("name", list(REFERENCES))
def test_notebook_is_the_generated_one(name):
    path = make_notebooks.HERE / f"{name}.ipynb"
    shipped = [c.source for c in nbformat.read(path, as_version=4).cells]
    generated = [c.source for c in make_notebooks.notebook(REFERENCES[name]).cells]
    assert shipped == generated, f"{path.name} is stale: run python -m reference_models.make_notebooks"


@pytest.mark.parametrize("name", list(REFERENCES))
def test_notebook_is_what_a_student_hands_in(name):
    report = inspect_submission(make_notebooks.HERE / f"{name}.ipynb")
    assert report.notebook_facts.comment_coverage == 1.0, report.notebook_facts.uncommented_cells
    assert not any(i.startswith("reference_models") for i in report.notebook_facts.imports)
    assert "../data" in report.mnist_roots
    source = "\n".join(c.source for c in report.notebook.cells if c.cell_type == "code")
    assert 'torch.device("cuda" if torch.cuda.is_available() else "cpu")' in source
    assert re.search(r"^model = \w+\(\)\.to\(device\)$", source, re.M)


def test_notebook_runs_as_a_kernel_would(real_mnist_dir, tmp_path, monkeypatch, capsys):
    """Every cell but the training loop, then a few steps through the notebook's own functions."""
    stage_torchvision_layout(real_mnist_dir, tmp_path / "data")
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")  # the notebook reads ../data, as in the course
    cells = [c.source for c in make_notebooks.notebook(REFERENCES["s5"]).cells if c.cell_type == "code"]
    ns: dict = {"__name__": "__main__"}
    exec(compile("\n\n".join(cells[:-1]), "s5.ipynb", "exec"), ns)
    optimizer, scheduler = ns["make_optimizer"](ns["model"], 1, len(ns["train_loader"]), max_lr=0.1, weight_decay=0.0)
    ns["train"](ns["model"], ns["train_loader"], optimizer, scheduler, degrees=7.0, translate=0.0,
                generator=ns["generator"], max_steps=5)
    ns["test"](ns["model"], ns["test_loader"])
    out = capsys.readouterr().out
    assert "Trainable params: 7,644" in out
    assert re.search(r"Accuracy: \d+/10000 ", TEST_LINE.search(out).group())
    assert ns["model"](torch.zeros(1, 1, 28, 28)).shape == (1, 10)


@pytest.mark.usefixtures("bwrap")
@pytest.mark.parametrize("name", [n for n, r in REFERENCES.items() if r.rubric])
def test_notebook_passes_its_rubric_in_a_dry_run(name, real_mnist_dir, capsys):
    """`grade check` in the sandbox, each loader yielding two batches once: every item a dry run judges passes.
    The full run (15 epochs each) is bench/check_references.py; RESULTS.md has its figures."""
    ref = REFERENCES[name]
    code = main(["check", str(make_notebooks.HERE / f"{name}.ipynb"), "--dry-run", "--json",
                 "--rubric", ref.rubric, "--data", str(real_mnist_dir)])
    out = json.loads(capsys.readouterr().out)
    facts, items = out["facts"], {i["id"]: i for i in out["score"]["items"]}
    assert facts["verdict"]["kind"] == "ok", facts["verdict"]["message"]
    assert facts["model"]["params"]["trainable"] == PARAMS[name]
    assert not [i for i in items.values() if i["status"] in ("failed", "partial", "not_measured")], items
    assert items["accuracy"]["status"] == "not_judged"  # two batches train nothing: judged only by the full run
    assert out["score"]["passed"] is False and "accuracy" in out["score"]["not_judged"]  # so never "passed"
    assert code == 0  # nothing a dry run judges failed


def test_regenerating_keeps_the_outputs_of_unchanged_notebooks(tmp_path, capsys):
    """The committed notebooks carry the outputs of their last `grade check`: regenerating must not drop them."""
    make_notebooks.main(["s5", "--out", str(tmp_path)])
    path = tmp_path / "s5.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", text="cpu\n")]
    nbformat.write(nb, str(path))
    make_notebooks.main(["s5", "--out", str(tmp_path)])
    assert "unchanged, kept with its outputs" in capsys.readouterr().out
    assert nbformat.read(str(path), as_version=4).cells[2].outputs[0].text == "cpu\n"
    nb.cells[2].source += "\n# an edit"  # a notebook whose cells differ from nets.py / train.py is rewritten
    nbformat.write(nb, str(path))
    make_notebooks.main(["s5", "--out", str(tmp_path)])
    assert "without outputs" in capsys.readouterr().out
    assert nbformat.read(str(path), as_version=4).cells[2].outputs == []
