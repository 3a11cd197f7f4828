"""Writes the example class in examples/source/: notebooks in the course's style, one per student.

    python examples/make_examples.py                 # write the notebooks
    python examples/make_examples.py --execute       # also run each in the sandbox (CPU: about an hour in all)

`--execute` runs every notebook through `grade run --keep` and stores, per student,
`examples/submissions/<student>/notebook.ipynb` (with the outputs of that real run) and the
`model.pt2` the harness exported from it. Grading `examples/submissions` in `evaluate` mode
then measures those models without running any student code, in about a minute.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent
SOURCE = HERE / "source"
SUBMISSIONS = HERE / "submissions"
RUNS = HERE / "runs"  # what `grade run --keep` left (not committed)

SETUP = ("# Imports: PyTorch, torchvision datasets/transforms and the summary helper\n"
         "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\nimport torch.optim as optim\n"
         "from torchvision import datasets, transforms\nfrom torchsummary import summary")
DATA = ("# Data: normalise with the MNIST mean/std; small rotations help generalise\n"
        "torch.manual_seed(1)\nuse_cuda = torch.cuda.is_available()\ndevice = torch.device(\"cuda\" if use_cuda else \"cpu\")\n"
        "train_tf = transforms.Compose([transforms.RandomRotation((-7.0, 7.0), fill=(0,)), transforms.ToTensor(),\n"
        "                               transforms.Normalize((0.1307,), (0.3081,))])\n"
        "test_tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])\n"
        "train_loader = torch.utils.data.DataLoader(datasets.MNIST('../data', train=True, download=True, transform=train_tf),\n"
        "                                           batch_size=128, shuffle=True)\n"
        "test_loader = torch.utils.data.DataLoader(datasets.MNIST('../data', train=False, transform=test_tf),\n"
        "                                          batch_size=1000)")
# Without the rotation: PIL rotation per image triples a CPU epoch, and this net reaches 99.4% without it.
DATA_PLAIN = DATA.replace("# Data: normalise with the MNIST mean/std; small rotations help generalise",
                          "# Data: normalise with the MNIST mean/std").replace(
    "transforms.RandomRotation((-7.0, 7.0), fill=(0,)), ", "")
LOOPS = ("# Train one epoch, then report the test accuracy in the course's format\n"
         "def train(model, device, loader, optimizer, scheduler):\n"
         "    model.train()\n"
         "    for data, target in loader:\n"
         "        data, target = data.to(device), target.to(device)\n"
         "        optimizer.zero_grad()\n"
         "        loss = F.nll_loss(model(data), target)\n"
         "        loss.backward()\n"
         "        optimizer.step()\n"
         "        scheduler.step()\n\n"
         "def test(model, device, loader):\n"
         "    model.eval()\n"
         "    loss, correct = 0.0, 0\n"
         "    with torch.no_grad():\n"
         "        for data, target in loader:\n"
         "            data, target = data.to(device), target.to(device)\n"
         "            output = model(data)\n"
         "            loss += F.nll_loss(output, target, reduction='sum').item()\n"
         "            correct += output.argmax(dim=1).eq(target).sum().item()\n"
         "    n = len(loader.dataset)\n"
         "    print('Test set: Average loss: {:.4f}, Accuracy: {}/{} ({:.2f}%)'.format(loss / n, correct, n, 100. * correct / n))")
RUN = ("# One-cycle learning rate over {epochs} epochs\n"
       "model = Net().to(device)\n"
       "EPOCHS = {epochs}\n"
       "optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)\n"
       "scheduler = optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, epochs=EPOCHS, steps_per_epoch=len(train_loader))\n"
       "for epoch in range(1, EPOCHS + 1):\n"
       "    print('EPOCH:', epoch)\n"
       "    train(model, device, train_loader, optimizer, scheduler)\n"
       "    test(model, device, test_loader)")
SUMMARY = "# Parameter count and output sizes\nsummary(Net().to(device), input_size=(1, 28, 28))"

GOOD_NET = '''# The network: 3x3 blocks, max-pool + 1x1 transition, GAP head, no fully-connected layer
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        def block(cin, cout):  # conv 3x3 -> ReLU -> batch norm -> light dropout
            return nn.Sequential(nn.Conv2d(cin, cout, 3, bias=False), nn.ReLU(), nn.BatchNorm2d(cout), nn.Dropout(0.05))
        self.features = nn.Sequential(
            block(1, 10), block(10, 16),                 # 28 -> 26 -> 24, RF 5
            nn.MaxPool2d(2), nn.Conv2d(16, 10, 1),        # transition: 12x12x10, RF 6
            block(10, 16), block(16, 16), block(16, 16),  # 12 -> 10 -> 8 -> 6, RF 18
            nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(16),  # 6x6, RF 22
        )
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Conv2d(16, 10, 1)                  # 1x1 "classifier" instead of a Linear layer

    def forward(self, x):
        x = self.head(self.gap(self.features(x)))
        return F.log_softmax(x.view(-1, 10), dim=-1)'''

BIG_NET = '''# The network: more channels for more accuracy (too many parameters for the assignment)
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(), nn.BatchNorm2d(32),
            nn.Conv2d(32, 32, 3), nn.ReLU(), nn.BatchNorm2d(32),
            nn.MaxPool2d(2), nn.Conv2d(32, 16, 1),
            nn.Conv2d(16, 32, 3), nn.ReLU(), nn.BatchNorm2d(32),
            nn.Conv2d(32, 32, 3), nn.ReLU(), nn.BatchNorm2d(32),
            nn.Conv2d(32, 10, 3),
        )
        self.gap = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        return F.log_softmax(self.gap(self.features(x)).view(-1, 10), dim=-1)'''

FC_NET = '''# The network: convolutions, then a fully-connected head on the flattened map
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3), nn.ReLU(), nn.BatchNorm2d(8),
            nn.Conv2d(8, 16, 3), nn.ReLU(), nn.BatchNorm2d(16),
            nn.MaxPool2d(2), nn.Conv2d(16, 8, 1),
            nn.Conv2d(8, 16, 3), nn.ReLU(), nn.BatchNorm2d(16),
            nn.Conv2d(16, 32, 3), nn.ReLU(), nn.BatchNorm2d(32),
        )
        self.fc = nn.Linear(32 * 8 * 8, 10)  # 20,490 parameters in one layer

    def forward(self, x):
        x = self.features(x)
        return F.log_softmax(self.fc(x.view(x.size(0), -1)), dim=-1)'''

OLD_LOOPS = LOOPS.replace("        loss.backward()\n", "        loss.backward()\n        print(loss.data[0])  # PyTorch 0.3 style\n")


def strip_comments(source: str) -> str:
    lines = [line.split("  #")[0].rstrip() if "  #" in line else line for line in source.splitlines()]
    return "\n".join(line for line in lines if not line.lstrip().startswith("#"))


def notebook(title: str, net: str, epochs: int, *, comments: bool = True, loops: str = LOOPS,
             data: str = DATA) -> nbformat.NotebookNode:
    cells = [SETUP, data, net, SUMMARY, loops, RUN.format(epochs=epochs)]
    if not comments:
        cells = [strip_comments(c) for c in cells]
    nb = new_notebook(cells=[new_markdown_cell(f"# {title}"), *[new_code_cell(c) for c in cells]])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


# student folder name (Moodle-style: name_id_...) -> notebook. Ben and Cy train 2 epochs only (they fail on
# their parameter count whatever their accuracy); Di's notebook is Ada's with the comments taken out (see TERSE).
CLASS = {
    "Ada Good_1001_assignsubmission_file_": notebook("Session 3: under 20k, 99.4%", GOOD_NET, 15, data=DATA_PLAIN),
    "Ben Big_1002_assignsubmission_file_": notebook("Session 3: my bigger net", BIG_NET, 2),
    "Cy Dense_1003_assignsubmission_file_": notebook("Session 3: conv + FC head", FC_NET, 2),
    "Ed Old_1005_assignsubmission_file_": notebook("Session 3: written for PyTorch 0.3", GOOD_NET, 15, loops=OLD_LOOPS),
}


TERSE = ("Di Terse_1004_assignsubmission_file_", "Ada Good_1001_assignsubmission_file_")


def make_terse(submissions: Path) -> None:
    """Di hands in Ada's notebook without comments: the same code, so Ada's outputs and model are Di's too."""
    terse, good = (submissions / name for name in TERSE)
    nb = nbformat.read(str(good / "notebook.ipynb"), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source = strip_comments(cell.source)
    terse.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(terse / "notebook.ipynb"))
    shutil.copyfile(good / "model.pt2", terse / "model.pt2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--execute", nargs="*", metavar="STUDENT", help="run these (default: all) and store the results")
    parser.add_argument("--data")
    parser.add_argument("--collect", action="store_true", help="only copy finished runs into submissions/")
    args = parser.parse_args()
    if args.collect:
        collect()
        return
    SOURCE.mkdir(exist_ok=True)
    for student, nb in CLASS.items():
        nbformat.write(nb, str(SOURCE / f"{student.split('_')[0].replace(' ', '_').lower()}.ipynb"))
    if args.execute is None:
        return
    for student in CLASS:
        if args.execute and student.split("_")[0] not in args.execute:
            continue
        src = SOURCE / f"{student.split('_')[0].replace(' ', '_').lower()}.ipynb"
        command = [sys.executable, "-m", "grader", "run", str(src), "--keep", str(RUNS / src.stem), "--timeout", "7200"]
        subprocess.run(command + (["--data", args.data] if args.data else []), check=True)
    collect()


def _small_copy(src: Path, dest: Path) -> None:
    """The exported program, re-saved with a 2-image example input (runs before the harness did that keep 1000)."""
    import torch

    program = torch.export.load(src)
    program._example_inputs = ((torch.zeros(2, 1, 28, 28),), {})
    torch.export.save(program, dest)


def collect() -> None:
    """Copy each finished run into the class folder; Di's folder is derived from Ada's."""
    for student in CLASS:
        keep = RUNS / f"{student.split('_')[0].replace(' ', '_').lower()}"
        if not (keep / "executed.ipynb").exists():
            continue
        dest = SUBMISSIONS / student
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(keep / "executed.ipynb", dest / "notebook.ipynb")
        if (keep / "model.pt2").exists():
            _small_copy(keep / "model.pt2", dest / "model.pt2")
    if (SUBMISSIONS / TERSE[1] / "model.pt2").exists():
        make_terse(SUBMISSIONS)

if __name__ == "__main__":
    main()
