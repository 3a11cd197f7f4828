"""The colab compat profile (issue 21): a notebook written in Colab runs against its hand-in folder. Drive's MyDrive is
the hand-in's root, /content is the notebook's folder, `files.upload()` returns the files handed in beside the
notebook, imports through a Drive path find the hand-in's modules, and every use is recorded.

The kernel side runs in a fresh interpreter with a real IPython shell (its own `%cd` magic); one notebook runs in the
sandboxed kernel through the runner, and one is graded end to end from its folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

import grader
from grader.api import grade_submission, load_rubric, options_for
from grader.data.staging import prepare_test_data
from grader.execute.hints import hint_for
from grader.execute.job import execute_notebook
from grader.settings import Options, RunLimits

CHECKOUT = str(Path(grader.__file__).resolve().parents[1])  # the grader under test, whatever the cwd

# 80 + 90 trainable parameters; the notebook prints the count it measured
MODEL = '''import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.out = nn.Conv2d(8, 10, 1)

    def forward(self, x):
        return self.out(self.gap(torch.relu(self.conv(x)))).flatten(1)


Network = Net
'''
UTILS = "def double(x):\n    return 2 * x\n"


def _handin(tmp_path: Path) -> Path:
    """A course repo as a student hands it in: the notebook's folder S5/ holds its modules, lib/ one more."""
    root = tmp_path / "era-s5"
    (root / "S5").mkdir(parents=True)
    (root / "S5" / "model.py").write_text(MODEL)
    (root / "S5" / "utils.py").write_text(UTILS)
    (root / "S5" / ".secret").write_text("not an upload")
    (root / "lib").mkdir()
    (root / "lib" / "helpers.py").write_text("ANSWER = 42\n")
    return root


def _kernel(root: Path, cells: str, extra_path: str = "") -> dict:
    """Run `cells` (a list of cell sources, as Python text) in a fresh interpreter set up as the runner sets up the
    kernel: cwd and sys.path[0] the notebook's folder, then the hand-in's root, and the colab profile loaded. Returns
    {"errors": [the error of each cell or None], "cwd": [the working directory after each cell], "used": ...}."""
    notebook_dir = root / "S5"
    code = textwrap.dedent(f"""
        import json, os, sys
        sys.path[:0] = [{str(notebook_dir)!r}, {str(root)!r}] + ([{extra_path!r}] if {extra_path!r} else [])
        from grader.execute import compat
        compat.load(["colab"], root={str(root)!r}, notebook_dir={str(notebook_dir)!r})
        used_at_load = compat.used()
        from IPython.core.interactiveshell import InteractiveShell
        shell = InteractiveShell.instance()
        errors, cwds = [], []
        for source in {cells}:
            result = shell.run_cell(source, silent=True)
            failed = result.error_in_exec or result.error_before_exec
            errors.append(None if failed is None else f"{{type(failed).__name__}}: {{failed}}")
            cwds.append(os.getcwd())
        print(json.dumps({{"errors": errors, "cwd": cwds, "ns": {{k: v for k, v in shell.user_ns.items()
                          if k.startswith("out_")}}, "used": compat.used(), "at_load": used_at_load,
                          "skipped": compat.skipped()}}))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=notebook_dir, env={**os.environ, "PYTHONPATH": CHECKOUT})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_drive_mount_then_cd_into_drive_lands_in_the_handin_and_the_notebook_imports_its_model(tmp_path):
    root = _handin(tmp_path)
    out = _kernel(root, repr([
        "from google.colab import drive\ndrive.mount('/content/drive')",
        "%cd /content/drive/MyDrive/ERA/S5",  # the student's Drive folder: the hand-in is that folder
        "from model import Net\nout_params = sum(p.numel() for p in Net().parameters())",
        "%cd /content/drive/MyDrive/Course/lib",  # a tail of the path is a folder of the hand-in: there
        "%cd '/content/drive/My Drive'",  # Drive's root is the hand-in's root
        f"%cd {tmp_path}",  # any other path is left as it is
        "import os\nos.chdir('/content')",  # Colab's working directory is the notebook's folder
        "%cd drive/MyDrive/Course/lib",  # Drive from there
    ]))
    assert out["errors"] == [None] * 8
    assert out["cwd"] == [str(root / "S5"), str(root / "S5"), str(root / "S5"), str(root / "lib"), str(root),
                          str(tmp_path), str(root / "S5"), str(root / "lib")]
    assert out["ns"] == {"out_params": 170}
    assert out["at_load"] == []  # loading a profile is not using it
    assert out["used"] == ["colab: drive.mount", "colab: %cd /content/..."] and out["skipped"] == []


def test_files_upload_returns_the_files_handed_in_beside_the_notebook_and_the_module_then_imports(tmp_path):
    root = _handin(tmp_path)
    (root / "S5" / "S5.ipynb").write_text("{}")  # the notebook is not one of its uploads
    (root / "S5" / "data").mkdir()  # nor is a folder
    out = _kernel(root, repr([
        "from google.colab import files\nuploaded = files.upload()\n"
        "out_uploaded = {name: len(data) for name, data in uploaded.items()}",
        "import model\nout_params = sum(p.numel() for p in model.Net().parameters())",
    ]))
    assert out["errors"] == [None, None]
    assert out["ns"] == {"out_uploaded": {"model.py": len(MODEL), "utils.py": len(UTILS)}, "out_params": 170}
    assert out["used"] == ["colab: files.upload"]


def test_imports_through_a_drive_path_find_the_handins_modules(tmp_path):
    root = _handin(tmp_path)
    out = _kernel(root, repr([
        "from drive.MyDrive.ColabNotebooks.model import Network\nout_network = Network.__name__",
        "import drive.MyDrive.ERA.S5.utils\nout_double = drive.MyDrive.ERA.S5.utils.double(21)",
        "from drive.MyDrive.ColabNotebooks import utils\nout_same = utils.double(2)",
        "from drive.MyDrive.Course.lib.helpers import ANSWER as out_answer",
        "import sys\nsys.path.append('/content/drive/MyDrive/Course/lib')\n"
        "import helpers\nout_helpers = helpers.__file__",
        "from drive.MyDrive.ColabNotebooks.nothere import Net",  # a module the hand-in lacks
    ]))
    assert out["errors"][:5] == [None] * 5
    assert out["ns"] == {"out_network": "Net", "out_double": 42, "out_same": 4, "out_answer": 42,
                         "out_helpers": str(root / "lib" / "helpers.py")}
    # what is missing, where, and what to do
    assert out["errors"][5] == (
        "ModuleNotFoundError: No module named 'drive.MyDrive.ColabNotebooks.nothere': the hand-in has no "
        "ColabNotebooks/nothere.py and no nothere.py (the colab compat profile reads drive.MyDrive as the hand-in's "
        "folder): hand in that file with the notebook")
    assert out["used"] == ["colab: import drive.MyDrive...", "colab: sys.path /content/..."]


def test_the_other_colab_helpers_do_nothing_and_each_use_is_recorded(tmp_path):
    root = _handin(tmp_path)
    out = _kernel(root, repr([
        "from google.colab.patches import cv2_imshow\nout_shown = cv2_imshow(None)",
        "from google.colab import output, auth\noutput.clear()\nauth.authenticate_user()",
        "from google.colab import drive\ndrive.flush_and_unmount()",
        "import sys, google.colab\nout_in_colab = 'google.colab' in sys.modules",
    ]))
    assert out["errors"] == [None] * 4
    assert out["ns"] == {"out_shown": None, "out_in_colab": True}
    assert out["used"] == ["colab: patches.cv2_imshow", "colab: output.clear", "colab: auth.authenticate_user",
                           "colab: drive.flush_and_unmount"]


def test_a_real_google_colab_is_imported_instead_of_the_shim(tmp_path):
    root = _handin(tmp_path)
    real = tmp_path / "site" / "google" / "colab"
    real.mkdir(parents=True)
    (real / "__init__.py").write_text("REAL = True\n")
    out = _kernel(root, repr(["import google.colab\nout_real = google.colab.REAL"]), extra_path=str(tmp_path / "site"))
    assert out["errors"] == [None] and out["ns"] == {"out_real": True} and out["used"] == []


def test_under_a_rubric_without_the_profile_the_google_colab_hint_names_it_for_the_instructor():
    hint = hint_for("ModuleNotFoundError: No module named 'google.colab'")
    assert "guard it with `if 'google.colab' in sys.modules:`" in hint  # what the student does
    assert "`colab` compat profile, `environment: compat: [colab]` in the rubric" in hint  # what the instructor does


def _colab_notebook() -> nbformat.NotebookNode:
    return new_notebook(cells=[new_code_cell(source) for source in (
        "from google.colab import drive\ndrive.mount('/content/drive')",
        "%cd /content/drive/MyDrive/ERA/S5",
        "from model import Net\nmodel = Net()\nprint('params', sum(p.numel() for p in model.parameters()))",
        "from google.colab import files\nuploaded = files.upload()\nimport utils\nprint(sorted(uploaded))",
        "from drive.MyDrive.ColabNotebooks.model import Network\nprint(type(model).__name__, Network.__name__)",
        "import torch\noptimizer = torch.optim.SGD(model.parameters(), lr=0.01)",
        # MNIST is staged where the notebook reads it, below Drive: that folder is left as it is, and /content (which
        # the sandbox made as its parent) is still the notebook's folder
        "import os\nos.chdir('/content/drive/MyDrive/mnist')\nprint('data', os.listdir('.'))\n"
        "os.chdir('/content')\nprint('beside the notebook', sorted(n for n in os.listdir('.') if n.endswith('.py')))",
    )])


@pytest.mark.usefixtures("bwrap")
def test_a_colab_notebook_runs_in_the_sandboxed_kernel_beside_its_modules(tmp_path, real_mnist_dir):
    rubric = load_rubric("mnist-s3")  # the shipped rubric loads colab
    options = options_for(rubric, data=str(real_mnist_dir), dry_run=True)
    assert "colab" in options.compat
    work = tmp_path / "job" / "work"  # the runner's working directory: the modules are staged beside the notebook
    work.mkdir(parents=True)
    notebook_dir = _handin(tmp_path) / "S5"
    for name in ("model.py", "utils.py"):
        (work / name).write_text((notebook_dir / name).read_text())
    run = Options(variable="model", variable_named=True, limits=RunLimits(wall_seconds=300, memory_bytes=3 << 30),
                  dry_run=True, environment=options.environment, compat=options.compat)
    execution = execute_notebook(_colab_notebook(), run, jobdir=tmp_path / "job",
                                 staged=prepare_test_data(str(real_mnist_dir)).staged,
                                 mnist_roots=("/content/drive/MyDrive/mnist",))
    assert [c.status for c in execution.run.cells] == ["ok"] * 7, execution.run.cells
    assert execution.observed.compat_shims == ["colab: drive.mount", "colab: %cd /content/...",
                                               "colab: files.upload", "colab: import drive.MyDrive..."]
    executed = nbformat.read(str(execution.out_dir / "executed.ipynb"), as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert "params 170" in printed and "['model.py', 'utils.py']" in printed and "Net Net" in printed
    assert "'MNIST'" in next(line for line in printed.splitlines() if line.startswith("data "))
    assert "beside the notebook ['model.py', 'utils.py']" in printed


@pytest.mark.usefixtures("bwrap")
def test_a_colab_notebook_handed_in_as_a_folder_is_graded_with_its_modules(tmp_path, real_mnist_dir):
    """The hand-in staged: the notebook's folder and the repo's files in the sandbox, Drive mapped onto its root."""
    root = _handin(tmp_path)
    nbformat.write(_colab_notebook(), str(root / "S5" / "S5.ipynb"))
    rubric = load_rubric("mnist-s3")
    facts = grade_submission(root / "S5" / "S5.ipynb", rubric,
                             options_for(rubric, data=str(real_mnist_dir), dry_run=True), root=root).facts
    assert facts.verdict.kind == "ok", facts.verdict.message
    assert facts.model.params.trainable == 170
    assert facts.train.compat_shims == ["colab: drive.mount", "colab: %cd /content/...", "colab: files.upload",
                                        "colab: import drive.MyDrive..."]
