"""The torch-2.x compat profile (issue 21): what notebooks written on PyTorch 2.0-2.5 call that current PyTorch
removed or changed. A scheduler's `verbose=` (removed in 2.7) and `torch.load` of a pickled model (weights only by
default since 2.6): each is read as it meant then, printed as it printed then, and recorded only when used; without
the profile the verdict says what changed and how to fix it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from grader.api import grade_submission, load_rubric, options_for
from grader.execute.hints import hint_for

# A course notebook of 2023-2024: StepLR and ReduceLROnPlateau built with verbose=True, a whole model saved and
# loaded back with torch.load. 300 training images, one epoch: the point is that it trains, not how well.
_CELLS = [
    """import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.optim.lr_scheduler import StepLR, ReduceLROnPlateau
from torchvision import datasets, transforms""",
    """class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3)
        self.conv2 = nn.Conv2d(8, 16, 3)
        self.conv3 = nn.Conv2d(16, 10, 1)
        self.gap = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        return F.log_softmax(self.gap(self.conv3(x)).view(-1, 10), dim=-1)

model = Net()""",
    """torch.manual_seed(1)
tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
train_set = datasets.MNIST('../data', train=True, download=True, transform=tf)
test_set = datasets.MNIST('../data', train=False, download=True, transform=tf)
train_loader = torch.utils.data.DataLoader(torch.utils.data.Subset(train_set, range(300)), batch_size=50, shuffle=True)
test_loader = torch.utils.data.DataLoader(torch.utils.data.Subset(test_set, range(200)), batch_size=100)""",
    """optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
scheduler = StepLR(optimizer, step_size=1, gamma=0.1, verbose=True)
plateau = ReduceLROnPlateau(optimizer, mode='min', factor=0.5, patience=0, verbose=True)""",
    """def test(model, loader):
    model.eval()
    loss = 0.0
    with torch.no_grad():
        for data, target in loader:
            loss += F.nll_loss(model(data), target, reduction='sum').item()
    return loss / len(loader.dataset)

for epoch in range(1):
    model.train()
    for data, target in train_loader:
        optimizer.zero_grad()
        F.nll_loss(model(data), target).backward()
        optimizer.step()
    scheduler.step()
    plateau.step(test(model, test_loader))
    plateau.step(test(model, test_loader) + 1.0)  # no better: patience 0 halves the rate""",
    """torch.save(model, 'model.pt')
reloaded = torch.load('model.pt')
print('reloaded', sum(p.numel() for p in reloaded.parameters()))""",
]


def _notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in _CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    return path


def _grade(tmp_path: Path, data: Path, compat: list[str] | None):
    rubric = load_rubric("mnist-s3")
    options = options_for(rubric, data=str(data), keep=tmp_path / "kept")
    if compat is not None:
        options = options.with_(compat=compat)
    result = grade_submission(_notebook(tmp_path / "verbose_scheduler.ipynb"), rubric, options)
    executed = nbformat.read(str(tmp_path / "kept" / "executed.ipynb"), as_version=4)
    return result.facts, executed


def _printed(nb, code_cell: int) -> str:
    cell = [c for c in nb.cells if c.cell_type == "code"][code_cell - 1]
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


@pytest.mark.usefixtures("bwrap")
def test_a_notebook_with_verbose_schedulers_and_a_pickled_model_trains_under_the_shipped_rubric(tmp_path,
                                                                                               real_mnist_dir):
    facts, nb = _grade(tmp_path, real_mnist_dir, compat=None)  # mnist-s3 loads torch-2.x
    assert facts.verdict.kind == "ok" and facts.verdict.failed_cells == []
    assert facts.train.compat_shims == ["torch-2.x: StepLR(verbose=)", "torch-2.x: ReduceLROnPlateau(verbose=)",
                                        "torch-2.x: torch.load(weights_only=False)"]
    # what 2.0-2.6 printed: StepLR at construction; then its step and the plateau's reduction
    assert _printed(nb, 4) == "Adjusting learning rate of group 0 to 1.0000e-02.\n"
    assert _printed(nb, 5) == ("Adjusting learning rate of group 0 to 1.0000e-03.\n"
                               "Epoch 00002: reducing learning rate of group 0 to 5.0000e-04.\n")
    assert _printed(nb, 6) == f"reloaded {facts.model.params.trainable}\n"
    assert facts.train.model_variable == "model"


@pytest.mark.usefixtures("bwrap")
def test_without_the_profile_the_verdict_names_what_pytorch_changed_and_the_fix(tmp_path, real_mnist_dir):
    facts, _ = _grade(tmp_path, real_mnist_dir, compat=["torch-1.x"])
    # the cells fail and grading goes on with the untrained model; the message says why each failed and the fix
    assert facts.verdict.cell == 4 and facts.verdict.failed_cells == [4, 5, 6]
    message = facts.verdict.message
    assert "code cell 4 failed: TypeError: StepLR.__init__() got an unexpected keyword argument 'verbose'" in message
    assert "lost `verbose=` in PyTorch 2.7" in message and "remove `verbose=True`" in message
    assert "scheduler.get_last_lr()" in message
    assert "code cell 6 failed: UnpicklingError: Weights only load failed" in message
    assert "`torch.load` loads only tensors by default since PyTorch 2.6" in message
    assert facts.train.compat_shims == []


def _run(code: str, cwd: Path | None = None) -> dict:
    """A fresh interpreter per case: the shims patch torch's classes."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_scheduler_takes_verbose_and_only_verbose_true_prints():
    out = _run("""
import contextlib, io, json, warnings
from grader.execute import compat
compat.load(["torch-2.x"])
before = compat.used()
import torch
from torch.optim import lr_scheduler as L
opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
quiet = io.StringIO()
with contextlib.redirect_stdout(quiet):
    L.OneCycleLR(opt, max_lr=0.1, total_steps=10, verbose=False).step()
    L.CosineAnnealingLR(opt, T_max=10)
class Warmup(L.LambdaLR):  # a course helper passing verbose on to its base
    def __init__(self, optimizer, verbose=False):
        super().__init__(optimizer, lambda epoch: 0.5, verbose=verbose)
loud = io.StringIO()
with contextlib.redirect_stdout(loud), warnings.catch_warnings():
    warnings.simplefilter("ignore")  # step(epoch) is deprecated, not removed
    w = Warmup(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1), verbose=True)
    w.step(3)
print(json.dumps({"before": before, "quiet": quiet.getvalue(), "loud": loud.getvalue(), "used": compat.used()}))
""")
    assert out["before"] == []
    assert out["quiet"] == ""  # verbose=False, and a scheduler built without it, print nothing
    assert out["loud"] == ("Adjusting learning rate of group 0 to 5.0000e-02.\n"
                           "Epoch 00003: adjusting learning rate of group 0 to 5.0000e-02.\n")  # once each step
    assert out["used"] == ["torch-2.x: OneCycleLR(verbose=)", "torch-2.x: LambdaLR(verbose=)"]


def test_torch_load_reads_a_pickled_model_from_a_path_or_a_stream_and_keeps_an_explicit_weights_only(tmp_path):
    out = _run("""
import io, json, pickle
from grader.execute import compat
compat.load(["torch-2.x"])
import torch
torch.save(torch.nn.Linear(3, 2).state_dict(), "state.pt")
torch.load("state.pt")  # tensors only: the weights-only load succeeds, nothing is read for the notebook
plain = compat.used()
torch.save(torch.nn.Linear(3, 2), "model.pt")
from_path = type(torch.load("model.pt")).__name__
buffer = io.BytesIO(open("model.pt", "rb").read())
from_stream = type(torch.load(buffer, map_location="cpu")).__name__
try:
    torch.load("model.pt", weights_only=True)
    explicit = "loaded"
except pickle.UnpicklingError:
    explicit = "refused"
print(json.dumps({"plain": plain, "path": from_path, "stream": from_stream, "explicit": explicit,
                  "used": compat.used()}))
""", cwd=tmp_path)
    assert out["plain"] == []
    assert out["path"] == out["stream"] == "Linear"
    assert out["explicit"] == "refused"  # the notebook said weights_only=True: as it says
    assert out["used"] == ["torch-2.x: torch.load(weights_only=False)"]


def test_the_hints_name_what_changed_in_pytorch_and_the_fix(tmp_path):
    for scheduler in ("StepLR", "ReduceLROnPlateau", "OneCycleLR", "CosineAnnealingWarmRestarts", "ChainedScheduler"):
        hint = hint_for(f"TypeError: {scheduler}.__init__() got an unexpected keyword argument 'verbose'")
        assert hint is not None and "PyTorch 2.7" in hint and "get_last_lr()" in hint
    assert hint_for("TypeError: Net.__init__() got an unexpected keyword argument 'verbose'") is None
    # the error torch itself raises today for a pickled model, as the kernel reports it
    error = _run("""
import json, pickle, torch
torch.save(torch.nn.Linear(3, 2), "model.pt")
try:
    torch.load("model.pt")
except pickle.UnpicklingError as exc:
    print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
""", cwd=tmp_path)["error"]
    hint = hint_for(error)
    assert hint is not None and "PyTorch 2.6" in hint and "weights_only=False" in hint
    assert "model.load_state_dict(torch.load(path))" in hint
