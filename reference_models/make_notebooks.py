"""Write the reference notebooks (s3.ipynb, s4.ipynb, s5.ipynb, stretch.ipynb) from nets.py and train.py.

    python -m reference_models.make_notebooks                 # write those whose cells changed, without outputs
    python -m reference_models.make_notebooks s5 --execute    # also run them (the full training) and keep the outputs

A notebook is what a student hands in, so it is self-contained: it imports
torch and torchvision, never `reference_models`. Its network and training cells
are the source of the classes and functions in `nets.py` / `train.py`
(`inspect.getsource`), and its settings are the registry's, so the notebook and
the module the tests and the benchmark use cannot drift. With the same seed and
device, a notebook prints the numbers `bench/reference.py` records.
"""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from reference_models import train as t
from reference_models.nets import REFERENCES, Reference, conv_block, separable_block

HERE = Path(__file__).resolve().parent
SEED = 0  # the seed the notebooks run with; RESULTS.md reports it among the others

IMPORTS = """\
# libraries: torch for the network and its training, torchvision for the MNIST files and the normalising transform
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler
from torchvision import datasets, transforms"""

DEVICE = """\
# train on the GPU when there is one
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
print(device)"""

TARGETS = {
    "s3": "fewer than 20,000 parameters and at least 99.4% on the 10,000 test images",
    "s4": "the session 3 target in at most 20 epochs, with batch norm, dropout, a 1x1 transition after the max-pool "
          "and global average pooling instead of a fully-connected layer",
    "s5": "at least 99.4% with fewer than 8,000 parameters in at most 15 epochs, with the session 4 architecture",
    "stretch": "fewer than 4,000 parameters and at least 99.4% in each of the last 3 of at most 15 epochs",
}


def source(obj) -> str:
    return inspect.getsource(obj).rstrip()


def blocks_of(net: type) -> list:
    """The block functions of nets.py that a network's source calls, for its notebook cell."""
    return [block for block in (conv_block, separable_block) if f"{block.__name__}(" in source(net)]


def notebook(ref: Reference) -> nbformat.NotebookNode:
    rubric = f"rubric `{ref.rubric}`" if ref.rubric else "no rubric of its own (a stretch goal)"
    normalize = f"transforms.Normalize({tuple(t.NORMALIZE.mean)}, {tuple(t.NORMALIZE.std)})"
    cells = [
        new_markdown_cell(
            f"# MNIST reference: {ref.name}\n\n"
            f"Target: {TARGETS[ref.name]} ({rubric}).\n\n"
            f"`{ref.net.__name__}`, trained for {ref.epochs} epochs with SGD (Nesterov momentum 0.9), a one-cycle "
            f"learning rate peaking at {ref.max_lr}, batch {ref.batch_size} and random rotation of up to "
            f"{ref.degrees:g} degrees. The data sits on the device as tensors and is augmented in whole batches, "
            "so an epoch costs the network's compute and little else.\n\n"
            "Written by `reference_models/make_notebooks.py` from `reference_models/nets.py` and `train.py`: "
            "change those and regenerate, never this file. Measured figures: `reference_models/RESULTS.md`."),
        new_code_cell(IMPORTS),
        new_code_cell(DEVICE),
        new_code_cell(f"{source(t.seed_everything)}\n\n\n"
                      f"# a fixed seed: the same device gives the same numbers on every run\n"
                      f"generator = seed_everything({SEED})"),
        new_code_cell(f"{source(t.to_device_tensors)}\n\n\n{source(t.DeviceMNIST)}\n\n\n{source(t.batches)}\n\n\n"
                      "# MNIST through torchvision; the datasets carry the per-image transform (the grader reads it),\n"
                      "# the training uses the same normalisation applied once to each whole split on the device\n"
                      f"BATCH_SIZE = {ref.batch_size}\n"
                      f"normalize = {normalize}\n"
                      "transform = transforms.Compose([transforms.ToTensor(), normalize])\n"
                      "train_set = datasets.MNIST('../data', train=True, download=True, transform=transform)\n"
                      "test_set = datasets.MNIST('../data', train=False, download=True, transform=transform)\n"
                      "train_loader = batches(DeviceMNIST(*to_device_tensors(train_set.data, train_set.targets, "
                      "normalize, device), train=True), BATCH_SIZE, generator)\n"
                      "test_loader = batches(DeviceMNIST(*to_device_tensors(test_set.data, test_set.targets, "
                      "normalize, device), train=False), 1000)\n"
                      "print(len(train_loader.dataset), 'training images,', len(test_loader.dataset), 'test images')"),
        new_code_cell(source(t.augment)),
        new_code_cell("\n\n\n".join([*(source(block) for block in blocks_of(ref.net)), source(ref.net)])),
        new_code_cell("# the network on the device; the grader measures the model left in `model`\n"
                      f"model = {ref.net.__name__}().to(device)\n"
                      "print(model)\n"
                      "print(f'Trainable params: {sum(p.numel() for p in model.parameters() if p.requires_grad):,}')"),
        new_code_cell(f"{source(t.make_optimizer)}\n\n\n{source(t.train)}\n\n\n{source(t.test)}"),
        new_code_cell(f"# {ref.epochs} epochs, the budget; the test line after each one\n"
                      f"EPOCHS = {ref.epochs}\n"
                      f"optimizer, scheduler = make_optimizer(model, EPOCHS, len(train_loader), "
                      f"max_lr={ref.max_lr}, weight_decay={ref.weight_decay})\n"
                      "for epoch in range(1, EPOCHS + 1):\n"
                      "    print(f'EPOCH: {epoch}')\n"
                      f"    loss = train(model, train_loader, optimizer, scheduler, degrees={ref.degrees}, "
                      f"translate={ref.translate}, generator=generator)\n"
                      "    print(f'Train loss: {loss:.4f}')\n"
                      "    test(model, test_loader)"),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def _same_cells(path: Path, nb: nbformat.NotebookNode) -> bool:
    """Whether the notebook at `path` has exactly the cells (type and source) of `nb`."""
    if not path.exists():
        return False
    shipped = nbformat.read(str(path), as_version=4)
    return [(c.cell_type, c.source) for c in shipped.cells] == [(c.cell_type, c.source) for c in nb.cells]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", default=list(REFERENCES), help="references to write (default: all)")
    parser.add_argument("--out", type=Path, default=HERE, help="folder for the notebooks (default: reference_models/)")
    parser.add_argument("--execute", action="store_true",
                        help="run each notebook (full training) in a kernel and save it with its outputs")
    parser.add_argument("--data-parent", type=Path, default=HERE,
                        help="the folder the notebooks run in when executed; MNIST is looked for in ../data from it")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.names:
        nb = notebook(REFERENCES[name])
        if args.execute:
            from nbclient import NotebookClient

            NotebookClient(nb, timeout=None, resources={"metadata": {"path": str(args.data_parent)}}).execute()
        path = args.out / f"{name}.ipynb"
        if not args.execute and _same_cells(path, nb):
            print(f"{path}: unchanged, kept with its outputs")  # the outputs of its last `grade check` run
            continue
        nbformat.write(nb, path)
        print(f"wrote {path}" + ("" if args.execute else " (without outputs: bench/check_references.py "
                                                        "--save-outputs runs it and keeps them)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
