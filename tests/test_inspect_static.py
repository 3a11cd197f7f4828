"""The whole static inspection on the fixture notebooks: the facts a rubric will read."""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest

from grader.errors import GraderError
from grader.facts import Facts
from grader.inspect import StaticReport, inspect_submission

NOTEBOOKS = Path(__file__).parent / "fixtures" / "notebooks"


def test_realstyle_pytorch_notebook():
    report = inspect_submission(NOTEBOOKS / "realstyle_s3_torchsummary.ipynb")
    facts = report.notebook_facts
    assert (facts.code_cells, facts.markdown_cells) == (11, 4)
    # Uncommented: the !pip / !nvidia-smi cell, the %matplotlib cell, the summary() cell, and the
    # training loop whose only "#" is inside a string. The commented-out Net2 and the docstring-only
    # Net1 count as commented; the empty last code cell needs no comment.
    assert facts.uncommented_cells == [1, 2, 8, 10]  # code cells counted from 1, as a student counts them
    assert facts.comment_coverage == pytest.approx(6 / 10)
    assert facts.shell_lines == ["!pip install torchsummary", "!nvidia-smi"]
    assert facts.magic_lines == ["%matplotlib inline"]
    assert facts.colab_calls == []
    assert facts.imports == ["__future__", "matplotlib", "torch", "torchsummary", "torchvision", "tqdm"]
    assert report.mnist_roots == ("../data",)
    # Test accuracy from the "Accuracy: 9946/10000 (99%)" lines, not the train bars (up to 99.62).
    assert report.claims.model_dump() == {
        "params": 10402,
        "params_kind": "trainable",  # torchsummary's `Trainable params: 10,402`
        "accuracy": 99.46,
        "last_accuracy": 99.41,
        "epochs": 15,  # EPOCH: 0 ... EPOCH: 14
        "accuracy_gap": None,
        "run_accuracy": None,  # what a graded run prints: no run here
        "run_accuracy_gap": None,
        "params_gap": None,  # against a measured model: none here
    }


def test_v3_keras_notebook():
    report = inspect_submission(NOTEBOOKS / "v3_notebook.ipynb")
    assert report.notebook.nbformat == 4
    assert report.notebook_facts.imports == ["keras", "numpy"]
    assert report.notebook_facts.uncommented_cells == [2, 5]
    # Trainable (13,808) over total (13,936); best val_acc 0.9945; last the evaluate() score.
    assert (report.claims.params, report.claims.accuracy, report.claims.last_accuracy, report.claims.epochs) == (
        13808, 99.45, 99.42, 12
    )


def test_colab_notebook_with_badges():
    report = inspect_submission(NOTEBOOKS / "colab_badges.ipynb")
    facts = report.notebook_facts
    assert (facts.code_cells, facts.markdown_cells) == (7, 1)
    assert facts.uncommented_cells == [1, 6]
    assert facts.colab_calls == ["from google.colab import drive", "drive.mount('/content/drive')"]
    assert facts.shell_lines == ["!pip install torchinfo"]
    assert "google" in facts.imports and "torchinfo" in facts.imports
    assert report.mnist_roots == ("/content/drive/MyDrive/mnist",)
    assert (report.claims.params, report.claims.accuracy, report.claims.last_accuracy, report.claims.epochs) == (
        7416, 99.44, 99.43, 15
    )


def test_fake_comments_and_markdown_claims_earn_nothing():
    report = inspect_submission(NOTEBOOKS / "fake_comments_and_claims.ipynb")
    assert report.notebook_facts.uncommented_cells == [1, 2, 3, 4]
    assert report.notebook_facts.comment_coverage == pytest.approx(0.2)
    # 99.61% is only in markdown, 99.71 only in a train bar, 59830/60000 only on the train set.
    assert report.claims.model_dump(exclude_none=True) == {}


def test_py_script_submission():
    report = inspect_submission(NOTEBOOKS / "percent_cells_script.py")
    assert report.format == "py"
    assert (report.notebook_facts.code_cells, report.notebook_facts.markdown_cells) == (3, 1)
    assert report.notebook_facts.uncommented_cells == [2]
    assert report.mnist_roots == ("data",)
    assert report.claims.params is None


def test_errors_pass_through_with_the_file_name():
    with pytest.raises(GraderError, match="not_a_notebook.json: JSON, but not a Jupyter notebook"):
        inspect_submission(NOTEBOOKS / "not_a_notebook.json")
    with pytest.raises(GraderError, match="over the 10 KB limit"):
        inspect_submission(NOTEBOOKS / "realstyle_s3_torchsummary.ipynb", max_bytes=10 * 1024)


def test_facts_fit_the_contract():
    report = inspect_submission(NOTEBOOKS / "realstyle_s3_torchsummary.ipynb")
    facts = Facts(notebook=report.notebook_facts, claims=report.claims)
    assert facts.get("notebook.comment_coverage") == pytest.approx(0.6)
    assert facts.to_json()["claims"]["accuracy"] == 99.46


def heavy_notebook(path: Path) -> Path:
    """A long notebook: 60 code cells and 20 epochs of tqdm redraws on every one of 469 batches."""
    bar = "\r".join(
        f"Loss=0.{b:04d} Batch_id={b} Accuracy=98.{b % 100:02d}: {b * 100 // 469}%|█████     | {b}/469 [00:12<00:08, "
        "23.05it/s]"
        for b in range(469)
    )
    outputs = []
    for epoch in range(20):
        outputs += [
            nbformat.v4.new_output("stream", name="stdout", text=f"EPOCH: {epoch}\n"),
            nbformat.v4.new_output("stream", name="stderr", text="\r" + bar + "\n"),
            nbformat.v4.new_output("stream", name="stdout",
                                   text=f"\nTest set: Average loss: 0.02, Accuracy: {9900 + epoch}/10000 (99%)\n"),
        ]
    cells = [nbformat.v4.new_code_cell(f"# cell {i}\nimport torch\nx = torch.zeros({i})\n!echo {i}") for i in range(59)]
    cells.append(nbformat.v4.new_code_cell("train()", outputs=outputs))
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


def test_a_long_notebook_is_inspected_well_under_a_second(tmp_path):
    path = heavy_notebook(tmp_path / "long.ipynb")
    assert path.stat().st_size > 1_000_000
    inspect_submission(path)  # the first read of a nbformat version compiles its schema
    started = time.perf_counter()
    report: StaticReport = inspect_submission(path)
    elapsed = time.perf_counter() - started
    assert report.claims.epochs == 20 and report.claims.accuracy == 99.19
    assert elapsed < 0.5, f"static inspection took {elapsed:.2f}s"


def test_code_in_the_notebook_never_runs(tmp_path):
    """Tries to run code at inspection time: a shell call, an import with side effects, an exit."""
    marker = tmp_path / "ran"
    source = (
        f"import os\nos.system('touch {marker}')\n"
        f"!touch {marker}\n"
        "import module_that_does_not_exist\n"
        "raise SystemExit(1)"
    )
    path = tmp_path / "hostile.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)]), path)
    report = inspect_submission(path)
    assert not marker.exists()
    assert report.notebook_facts.imports == ["module_that_does_not_exist", "os"]
    assert report.notebook_facts.shell_lines == [f"!touch {marker}"]
