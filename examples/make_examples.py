"""Writes the example class in examples/source/: notebooks in the course's style, one per student.

    python examples/make_examples.py                 # write the notebooks
    python examples/make_examples.py --execute       # also run each in the sandbox (CPU: about an hour in all)

`--execute` runs every notebook through `grade run --keep` and stores, per student,
`examples/submissions/<student>/notebook.ipynb` (with the outputs of that real run) and the
`model.pt2` the harness exported from it. Fay hands in a repository (examples/repos/fay_modular/:
S3.ipynb importing model.py and utils.py); her folder gets the repository's files, its notebook with
the outputs of the run, and the model. Grading `examples/submissions` in `evaluate` mode
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
REPOS = HERE / "repos"  # students who hand in a repository: the notebook imports its own .py files
SUBMISSIONS = HERE / "submissions"
RUNS = HERE / "runs"  # what `grade run --keep` left (not committed)

SETUP = ("# Imports: PyTorch, torchvision datasets/transforms and the summary helper\n"
         "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\nimport torch.optim as optim\n"
         "from torchvision import datasets, transforms\nfrom torchsummary import summary")
DATA = ("# Data: normalise with the MNIST mean/std; small rotations help generalise\n"
        "torch.manual_seed(1)\nuse_cuda = torch.cuda.is_available()\ndevice = torch.device(\"cuda\" if use_cuda else "
        "\"cpu\")\n"
        "train_tf = transforms.Compose([transforms.RandomRotation((-7.0, 7.0), fill=(0,)), transforms.ToTensor(),\n"
        "                               transforms.Normalize((0.1307,), (0.3081,))])\n"
        "test_tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])\n"
        "train_loader = torch.utils.data.DataLoader(datasets.MNIST('../data', train=True, download=True, "
        "transform=train_tf),\n"
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
         "    print('Test set: Average loss: {:.4f}, Accuracy: {}/{} ({:.2f}%)'"
         ".format(loss / n, correct, n, 100. * correct / n))")
RUN = ("# One-cycle learning rate over {epochs} epochs\n"
       "model = Net().to(device)\n"
       "EPOCHS = {epochs}\n"
       "optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)\n"
       "scheduler = optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, epochs=EPOCHS, "
       "steps_per_epoch=len(train_loader))\n"
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

# Fay's repository: the network and the loops in their own files, as the course asks from session 5 on
MODULAR_IMPORTS = ("# Imports: PyTorch and torchvision; the network and the loops are this repo's model.py, utils.py\n"
                   "import torch\nimport torch.optim as optim\nfrom torchvision import datasets, transforms\n"
                   "from torchsummary import summary\n\nfrom model import Net\nfrom utils import train, test")
MODEL_PY = '''"""My network: 3x3 blocks (batch norm, a little dropout), max-pool + 1x1 transition, GAP: 6,544 parameters."""
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()

        def block(cin, cout):  # conv 3x3 -> batch norm -> ReLU -> dropout
            return nn.Sequential(nn.Conv2d(cin, cout, 3, bias=False), nn.BatchNorm2d(cout), nn.ReLU(), nn.Dropout(0.05))

        self.convblock1 = block(1, 8)                  # 28 -> 26, RF 3
        self.convblock2 = block(8, 16)                 # 26 -> 24, RF 5
        self.pool = nn.MaxPool2d(2)                    # 24 -> 12, RF 6
        self.trans = nn.Conv2d(16, 8, 1, bias=False)   # transition: 16 -> 8 channels
        self.convblock3 = block(8, 12)                 # 12 -> 10, RF 10
        self.convblock4 = block(12, 16)                # 10 -> 8, RF 14
        self.convblock5 = block(16, 16)                # 8 -> 6, RF 18
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.out = nn.Conv2d(16, 10, 1, bias=False)    # ten classes, no Linear layer

    def forward(self, x):
        x = self.trans(self.pool(self.convblock2(self.convblock1(x))))
        x = self.convblock5(self.convblock4(self.convblock3(x)))
        return F.log_softmax(self.out(self.gap(x)).view(-1, 10), dim=-1)
'''  # noqa: E501 (the student's model.py as written)
UTILS_PY = ('"""Training and test loops."""\n'
            "import torch\nimport torch.nn.functional as F\n\n\n" + LOOPS + "\n")


def modular_repo(title: str, epochs: int) -> dict[str, object]:
    """A repository's files: the notebook (importing Net from model.py, train and test from utils.py) and both."""
    cells = [MODULAR_IMPORTS, DATA, SUMMARY, RUN.format(epochs=epochs)]
    nb = new_notebook(cells=[new_markdown_cell(f"# {title}"), *[new_code_cell(c) for c in cells]])
    for index, cell in enumerate(nb.cells):  # fixed ids: the same repository on every run
        cell.id = f"cell-{index}"
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return {"S3.ipynb": nb, "model.py": MODEL_PY, "utils.py": UTILS_PY}


OLD_LOOPS = LOOPS.replace("        loss.backward()\n",
                          "        loss.backward()\n        print(loss.data[0])  # PyTorch 0.3 style\n")


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


# student folder -> (repository folder under examples/repos, its files). Fay trains 2 epochs, like Ben and Cy.
REPO_CLASS = {
    "Fay Modular_1006_assignsubmission_file_": ("fay_modular",
                                                modular_repo("Session 3: my repo, model.py + utils.py", 2)),
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


def stem(student: str) -> str:
    return student.split("_")[0].replace(" ", "_").lower()


def write_sources() -> dict[str, Path]:
    """Write every student's notebook (and repository); returns student -> the notebook `--execute` runs."""
    SOURCE.mkdir(exist_ok=True)
    runs = {}
    for student, nb in CLASS.items():
        runs[student] = SOURCE / f"{stem(student)}.ipynb"
        nbformat.write(nb, str(runs[student]))
    for student, (folder, files) in REPO_CLASS.items():
        repo = REPOS / folder
        repo.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            if name.endswith(".ipynb"):
                nbformat.write(content, str(repo / name))
                runs[student] = repo / name
            else:
                (repo / name).write_text(content)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--execute", nargs="*", metavar="STUDENT",
                        help="run these (default: all) and store the results")
    parser.add_argument("--data")
    parser.add_argument("--collect", action="store_true", help="only copy finished runs into submissions/")
    args = parser.parse_args()
    if args.collect:
        collect()
        return
    runs = write_sources()
    if args.execute is None:
        return
    for student, src in runs.items():
        if args.execute and student.split("_")[0] not in args.execute:
            continue
        hand_in = src.parent if student in REPO_CLASS else src  # a repository is run as the folder it is
        command = [sys.executable, "-m", "grader", "run", str(hand_in), "--keep", str(RUNS / stem(student)),
                   "--timeout", "7200"]
        subprocess.run(command + (["--data", args.data] if args.data else []), check=True)
    collect()


def _small_copy(src: Path, dest: Path) -> None:
    """The exported program, re-saved with a 2-image example input (runs before the harness did that keep 1000)."""
    import torch

    program = torch.export.load(src)
    program._example_inputs = ((torch.zeros(2, 1, 28, 28),), {})
    torch.export.save(program, dest)


def collect() -> None:
    """Copy each finished run into the class folder (a repository's files with it); Di's is derived from Ada's."""
    for student in [*CLASS, *REPO_CLASS]:
        keep = RUNS / stem(student)
        if not (keep / "executed.ipynb").exists():
            continue
        dest = SUBMISSIONS / student
        dest.mkdir(parents=True, exist_ok=True)
        notebook_name = "notebook.ipynb"
        if student in REPO_CLASS:
            repo = REPOS / REPO_CLASS[student][0]
            for path in sorted(repo.iterdir()):
                if path.suffix != ".ipynb":
                    shutil.copyfile(path, dest / path.name)
                else:
                    notebook_name = path.name
        shutil.copyfile(keep / "executed.ipynb", dest / notebook_name)
        if (keep / "model.pt2").exists():
            _small_copy(keep / "model.pt2", dest / "model.pt2")
    if (SUBMISSIONS / TERSE[1] / "model.pt2").exists():
        make_terse(SUBMISSIONS)


if __name__ == "__main__":
    main()
