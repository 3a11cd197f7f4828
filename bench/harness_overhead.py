"""How much the grader adds to running a notebook: `grade run` vs `jupyter nbconvert --execute`.

    python bench/harness_overhead.py [--data DIR] [--repeat 3]

Two notebooks: a trivial one (builds a small model, no training) and one that trains for
about a minute on a 2-core CPU (3 epochs of a 3,994-parameter net over the 60,000
training images). Both tools run them in the same process of this script, interleaved,
so the ratios come from one run on one machine; the device is printed with them.
The grader's figure is split into execution (sandbox + kernel + harness + export) and the
clean evaluation that nbconvert does not do at all.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from grader.data.fetch import ensure_mnist  # noqa: E402
from grader.data.staging import staged_root  # noqa: E402
from grader.execute.job import execute_notebook  # noqa: E402
from grader.pipeline import Options, grade_facts  # noqa: E402
from grader.settings import RunLimits as Limits  # noqa: E402
from grader.verdict import Outcome, decide  # noqa: E402

NET = ("# model\nimport torch, torch.nn as nn, torch.nn.functional as F\n"
       "model = nn.Sequential(nn.Conv2d(1, 16, 3), nn.ReLU(), nn.BatchNorm2d(16), nn.MaxPool2d(2),\n"
       "                      nn.Conv2d(16, 16, 3), nn.ReLU(), nn.BatchNorm2d(16), nn.Conv2d(16, 10, 3),\n"
       "                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LogSoftmax(-1))\n")
TRAIN = ("# about a minute of training on CPU\nfrom torchvision import datasets, transforms\n"
         "tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])\n"
         "train = datasets.MNIST('../data', train=True, download=True, transform=tf)\n"
         "loader = torch.utils.data.DataLoader(torch.utils.data.Subset(train, range(N)), batch_size=64, shuffle=True)\n"
         "opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)\nmodel.train()\n"
         "for epoch in range(EPOCHS):\n    for x, y in loader:\n        opt.zero_grad()\n"
         "        F.nll_loss(model(x), y).backward()\n        opt.step()\n"
         "print('done')\n")


def notebook(cells: list[str]) -> nbformat.NotebookNode:
    nb = new_notebook(cells=[new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def time_nbconvert(nb: nbformat.NotebookNode, workdir: Path) -> float:
    path = workdir / "work" / "bench.ipynb"
    nbformat.write(nb, str(path))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--execute", "--to", "notebook", "--output",
                    str(workdir / "out.ipynb"), str(path)], check=True, capture_output=True, cwd=path.parent)
    return time.perf_counter() - start


def time_grader(nb: nbformat.NotebookNode, staged: Path, data: Path) -> tuple[float, float]:
    """(execution only, whole `grade run`)"""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        options = Options(variable="model", variable_named=True, limits=Limits(wall_seconds=900))
        execution = execute_notebook(nb, options, jobdir=Path(tmp), staged=staged, mnist_roots=("../data",))
        executed = time.perf_counter() - start
        verdict = decide(Outcome(execution=execution, limits=Limits(wall_seconds=900)))
        assert verdict.kind == "ok", verdict.message
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.ipynb"
        nbformat.write(nb, str(path))
        start = time.perf_counter()
        facts = grade_facts(path, Options(data=str(data), limits=Limits(wall_seconds=900)))
        whole = time.perf_counter() - start
        assert facts.eval.accuracy is not None, facts.verdict.message
    return executed, whole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--train-images", type=int, default=60000, help="training images per epoch (default: all)")
    parser.add_argument("--train-epochs", type=int, default=3,
                        help="epochs of the training notebook (default 3: about a minute on a 2-core CPU)")
    args = parser.parse_args()
    data = ensure_mnist(args.data)
    staged = staged_root(data)
    cases = {"trivial": notebook([NET]), "training": notebook([NET, TRAIN.replace("N)", f"{args.train_images})")
                                                            .replace("EPOCHS", str(args.train_epochs))])}
    print(f"device: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, no GPU used; "
          f"{args.repeat} interleaved repeats")
    for name, nb in cases.items():
        rows = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / "work").mkdir()
                os.symlink(staged, Path(tmp) / "data")
                base = time_nbconvert(nb, Path(tmp))
            executed, whole = time_grader(nb, staged, data)
            rows.append((base, executed, whole))
        base, executed, whole = (statistics.median(col) for col in zip(*rows, strict=True))
        print(f"{name:9s} nbconvert {base:6.1f} s | grader execution {executed:6.1f} s "
              f"(+{executed - base:5.1f} s, x{executed / base:4.2f}) | whole grade run {whole:6.1f} s "
              f"(+{whole - base:5.1f} s, x{whole / base:4.2f})  [medians]")


if __name__ == "__main__":
    main()
