"""`missing_module` tells the student's own module from a package, and names every import that failed: a Colab
import that fails first no longer hides the missing `model`."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from grader.execute.job import Execution
from grader.execute.records import HarnessRecord, RunRecord
from grader.handin import importable
from grader.pipeline import grade_facts
from grader.sandbox import SandboxResult
from grader.settings import Options, RunLimits
from grader.verdict import Outcome, decide

NOT_FOUND = "ModuleNotFoundError: No module named '{}'"


def _execution(*errors: str | None, pip_asked: tuple[str, ...] = (), model: str | None = None) -> Execution:
    """A run whose code cells ended with `errors` (None: the cell ran), with no model unless `model` names one: the
    records as the sandbox's runner and harness write them, read the way the host reads them."""
    cells = [{"index": n, "number": n, "status": "error" if e else "ok", "error": e}
             for n, e in enumerate(errors, 1)]
    run = RunRecord.model_validate_json(json.dumps({"cells": cells, "seconds": 3.0}))
    harness = HarnessRecord.model_validate_json(json.dumps({
        "model_found": "the last one stepped" if model else "no variable holds a torch.nn.Module",
        "model_variable": model,
        "pip_asked": [{"package": p, "version": None} for p in pip_asked]}))
    result = SandboxResult(returncode=0, timed_out=False, memory_exceeded=False, disk_exceeded=False,
                           output_truncated=False, stdout="", stderr="", seconds=3.0, limits_used="rlimit")
    return Execution(result, run, harness, None, "", Path("/nonexistent"))


def _verdict(*errors: str | None, handed_in: tuple[str, ...] = (), notebook_dir: str = "", **kw):
    return decide(Outcome(execution=_execution(*errors, **kw), handed_in=handed_in, notebook_dir=notebook_dir))


def test_a_local_module_that_was_not_handed_in_is_not_sent_to_the_package_list():
    verdict = _verdict(None, None, NOT_FOUND.format("model"), "NameError: name 'Net' is not defined")
    assert verdict.kind == "missing_module" and verdict.cell == 3 and verdict.failed_cells == [3, 4]
    assert verdict.message.startswith(
        "code cell 3 imports `model`, which is neither in the grading environment nor a file handed in with the "
        "notebook: hand in the repo link, or the folder with model.py")
    assert verdict.message.endswith("; no model could be captured")


def test_a_package_keeps_the_environment_advice():
    verdict = _verdict(NOT_FOUND.format("torchsummary"), "NameError: name 'summary' is not defined")
    assert verdict.message == (
        "code cell 1 imports `torchsummary`, which the grading environment does not have (if the assignment needs "
        "it, the instructor adds the package under `environment: packages:` in the rubric and runs `grade env build "
        "RUBRIC`); no model could be captured")
    assert "handed in" not in verdict.message


def test_a_package_the_notebook_pip_installs_is_a_package_even_when_unknown():
    verdict = _verdict(NOT_FOUND.format("fancy_layers"), pip_asked=("fancy-layers",))
    assert "`fancy_layers`, which the grading environment does not have" in verdict.message


def test_colab_code_first_does_not_hide_the_local_modules_after_it():
    verdict = _verdict(NOT_FOUND.format("google.colab"), "NameError: name 'drive' is not defined",
                       NOT_FOUND.format("model"), NOT_FOUND.format("utils"), NOT_FOUND.format("model"))
    assert verdict.kind == "missing_module" and verdict.cell == 1
    message = verdict.message
    assert message.startswith(
        "code cell 3 imports `model` and code cell 4 imports `utils`, which are neither in the grading environment "
        "nor files handed in with the notebook: hand in the repo link, or the folder with model.py and utils.py")
    assert "code cell 1 imports `google.colab`; `google.colab` exists only on Colab: guard it with" in message
    assert message.count("`model`") == 1  # the first cell that tried, once


def test_a_module_that_is_handed_in_and_still_fails_says_so():
    verdict = _verdict(NOT_FOUND.format("model.blocks"), handed_in=("nb/course.ipynb", "nb/model.py"),
                       notebook_dir="nb")
    assert verdict.message.startswith(
        "code cell 1 imports `model.blocks`; `nb/model.py` is handed in with the notebook, yet the import failed: "
        "check that `model.blocks` names a file or folder that is there")
    assert "environment: packages:" not in verdict.message


def test_a_module_handed_in_off_the_path_is_told_where_it_lies():
    verdict = _verdict(NOT_FOUND.format("model"), handed_in=("notebooks/s5.ipynb", "src/model.py"),
                       notebook_dir="notebooks")
    assert verdict.message.startswith(
        "code cell 1 imports `model`; `src/model.py` is handed in, but only the notebook's folder (`notebooks`) and "
        "the hand-in's root are on sys.path: move model.py beside the notebook, or import it through its folder")


def test_an_import_through_a_drive_path_is_colab():
    verdict = _verdict(NOT_FOUND.format("drive.MyDrive.ColabNotebooks.model"))
    assert verdict.message.startswith(
        "code cell 1 imports `drive.MyDrive.ColabNotebooks.model`, a path in Google Drive, which exists only on "
        "Colab: import `model` by its own name and hand in model.py with the notebook")
    handed = _verdict(NOT_FOUND.format("drive.MyDrive.ColabNotebooks.model"), handed_in=("s5.ipynb", "model.py"))
    assert "import `model` by its own name (`model.py` is handed in)" in handed.message


def test_a_model_captured_despite_a_failed_import_is_not_missing_module():
    verdict = decide(Outcome(execution=_execution(NOT_FOUND.format("google.colab"), None, model="model")))
    assert verdict.kind == "ok" and verdict.failed_cells == [1]
    assert "`google.colab` exists only on Colab" in verdict.message


def test_importable_names_are_the_modules_beside_the_notebook_and_at_the_root():
    files = ("nb/s5.ipynb", "nb/model.py", "utils.py", "pkg/__init__.py", "src/deep/net.py", "nb/helpers/a.py")
    assert importable(files, "nb") == ("helpers", "model", "nb", "pkg", "src", "utils")


# --- one real sandboxed run -----------------------------------------------------------------------------------

@pytest.mark.usefixtures("bwrap")
def test_a_notebook_that_imports_its_own_module_alone_is_told_to_hand_in_the_folder(tmp_path, real_mnist_dir):
    nb = new_notebook(cells=[new_code_cell(c) for c in (
        "# Colab first\nfrom google.colab import drive\ndrive.mount('/content/drive')",
        "# the model lives in the repo\nfrom model import Net",
        "# build it\nmodel = Net()")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "s5.ipynb"
    nbformat.write(nb, str(path))
    options = Options(data=str(real_mnist_dir), limits=RunLimits(wall_seconds=120, cell_seconds=30,
                                                                  memory_bytes=2 << 30, output_bytes=2 << 20))
    verdict = grade_facts(path, options).verdict
    assert verdict.kind == "missing_module" and verdict.cell == 1 and verdict.failed_cells == [1, 2, 3]
    assert verdict.message.startswith(
        "code cell 2 imports `model`, which is neither in the grading environment nor a file handed in with the "
        "notebook: hand in the repo link, or the folder with model.py"), verdict.message
    assert "code cell 1 imports `google.colab`; `google.colab` exists only on Colab" in verdict.message
