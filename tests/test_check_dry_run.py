"""`grade check --dry-run`: the training and test code run once, on two batches of fixed MNIST images per loader,
so a loop that crashes on its first batch fails here; the model's facts are real — the parameter count equals the
notebook's own torchsummary output, and GAP is recognised however it is written."""

from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
import pytest

from grader.cli.main import main
from grader.data.idx import read_labels

GAP = Path(__file__).parent / "fixtures" / "gap"

# Fails with the fix where bubblewrap is missing or refused (conftest.py): ./setup.sh installs it.
pytestmark = pytest.mark.usefixtures("bwrap")


@pytest.mark.parametrize("name, gap", [
    ("gap_adaptive_avgpool", True),
    ("gap_avgpool_whole_map", True),
    ("gap_functional_size", True),
    ("gap_mean_dims", True),
    ("gap_partial_avgpool_not_global", False),
])
def test_dry_run_counts_what_torchsummary_printed(name, gap, real_mnist_dir, capsys, tmp_path):
    started = time.monotonic()
    code = main(["check", str(GAP / f"{name}.ipynb"), "--dry-run", "--json", "--rubric", "mnist-s4",
                 "--data", str(real_mnist_dir), "--keep", str(tmp_path / "kept")])
    seconds = time.monotonic() - started
    out = json.loads(capsys.readouterr().out)
    facts, sheet = out["facts"], {i["id"]: i for i in out["score"]["items"]}
    assert facts["verdict"]["kind"] == "ok", facts["verdict"]["message"]
    assert facts["claims"]["params"] is not None
    assert facts["model"]["params"]["trainable"] == facts["claims"]["params"]  # torchsummary's "Total params"
    assert facts["model"]["gap"] is gap
    assert sheet["gap"]["status"] == ("passed" if gap else "failed")
    assert facts["model"]["transitions"] == 1 and facts["model"]["layers"]["linear"] == 0
    # nothing trained: accuracy and epochs are not judged, and say why
    assert facts["eval"]["accuracy"] is None and "dry run" in sheet["accuracy"]["evidence"]
    assert code == (0 if gap else 1)  # GAP is required in mnist-s4; the rest that a dry run judges passes
    # --keep hands back the notebook as it ran (the student's cells only, with this run's outputs)
    kept = nbformat.read(str(tmp_path / "kept" / "executed.ipynb"), as_version=4)
    assert len(kept.cells) == len(nbformat.read(str(GAP / f"{name}.ipynb"), as_version=4).cells)
    assert any(cell.get("outputs") for cell in kept.cells if cell.cell_type == "code")
    counts = [cell.execution_count for cell in kept.cells if cell.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1))  # numbered as if the student's cells ran alone
    assert (tmp_path / "kept" / "model.pt2").is_file()
    assert seconds < 180  # ~15 s on an idle 2-core CPU; a shared, loaded CI machine is far slower


# PyTorch 0.3 style: `loss.data[0]` on the 0-dim loss raises on the first batch (no compat profile reads it).
# The loader shuffles with no seed: only a fixed subset makes the labels it prints the same on every run.
OLD_LOOP = [
    "# libraries and data\nimport torch, torch.nn as nn, torch.nn.functional as F\n"
    "from torchvision import datasets, transforms\n"
    "t = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])\n"
    "train_loader = torch.utils.data.DataLoader(datasets.MNIST('../data', train=True, download=True, transform=t),\n"
    "                                           batch_size=64, shuffle=True)\n"
    "dataiter = iter(train_loader)  # one batch to look at, PyTorch 1.x style (the torch-1.x profile reads it)\n"
    "images, labels = dataiter.next()\nprint('first', labels[:8].tolist())",
    "# a small CNN with GAP\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
    "        self.c1 = nn.Conv2d(1, 8, 3)\n        self.c2 = nn.Conv2d(8, 10, 3)\n"
    "    def forward(self, x):\n        x = self.c2(F.relu(self.c1(x)))\n"
    "        return F.log_softmax(F.adaptive_avg_pool2d(x, 1).flatten(1), -1)\n"
    "model = Net()\noptimizer = torch.optim.SGD(model.parameters(), lr=0.01)",
    "# train for 20 epochs\nfor epoch in range(20):\n    for batch, (data, target) in enumerate(train_loader):\n"
    "        print('labels', batch, target[:8].tolist())\n"
    "        optimizer.zero_grad()\n        loss = F.nll_loss(model(data), target)\n        loss.backward()\n"
    "        optimizer.step()\n        print('loss', loss.data[0])",
]


def test_a_training_loop_that_crashes_on_its_first_batch_fails_the_dry_run(tmp_path, capsys, real_mnist_dir):
    path = tmp_path / "old_loop.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in OLD_LOOP]), str(path))
    started = time.monotonic()
    code = main(["check", str(path), "--dry-run", "--json", "--data", str(real_mnist_dir), "--keep", str(tmp_path)])
    seconds = time.monotonic() - started
    out = json.loads(capsys.readouterr().out)
    verdict, items = out["facts"]["verdict"], {i["id"]: i for i in out["score"]["items"]}
    assert verdict["failed_cells"] == [3] and verdict["cell"] == 3
    assert "code cell 3 failed: IndexError: invalid index of a 0-dim tensor" in verdict["message"]
    assert "write `loss.item()`" in verdict["message"]
    assert items["no-errors"]["status"] == "failed" and "IndexError" in items["no-errors"]["feedback"]
    assert "failed only because" not in verdict["message"]  # a real error is never excused
    # the first batch is the fixed subset's (indices spread evenly over the 60,000), however the loader shuffles
    labels = read_labels(next(Path(real_mnist_dir).glob("train-labels-idx1-ubyte*")))
    spread = [i * 60_000 // 128 for i in range(8)]
    printed = "".join(o.get("text", "") for c in nbformat.read(str(tmp_path / "executed.ipynb"), as_version=4).cells
                      for o in c.get("outputs", []))
    first = [int(labels[i]) for i in spread]
    assert f"labels 0 {first}" in printed and "labels 1" not in printed  # crashed at once
    assert f"first {first}" in printed  # every pass of a dry run's loader starts with the same images
    assert code == 0  # nothing required failed; the report says no-errors failed (accuracy: the full run's)
    assert seconds < 180


def test_a_dry_run_loader_gives_the_same_fixed_batches_whatever_its_shuffling():
    """Two batches from indices spread evenly over the dataset, in the loader's own batching (batch_size=N, or a
    BatchSampler as the sampler as the s3 reference has it), whatever its sampler's shuffling."""
    import torch
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

    from grader.execute.kernel_harness import DRY_RUN_BATCHES, _dry_pass

    data = TensorDataset(torch.arange(1000))
    shuffled = DataLoader(data, batch_size=10, shuffle=True)
    whole_batches = DataLoader(data, batch_size=None, sampler=BatchSampler(RandomSampler(data), 10, False),
                               collate_fn=lambda b: b)

    def seen(loader) -> list[list[int]]:
        batches, count = _dry_pass(loader, DataLoader.__iter__)
        got = [batch[0].tolist() for batch in batches]
        assert count == len(got) == DRY_RUN_BATCHES
        return got

    spread = [i * 1000 // 20 for i in range(20)]
    assert seen(shuffled) == seen(shuffled) == [spread[:10], spread[10:]]
    assert seen(whole_batches) == [spread[:10], spread[10:]]
