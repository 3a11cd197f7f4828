"""Loading submissions: notebook versions, .py scripts, and the errors a user can cause."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from grader.errors import GraderError
from grader.inspect.notebook import DEFAULT_MAX_BYTES, load_submission

NOTEBOOKS = Path(__file__).parent / "fixtures" / "notebooks"


def error_of(path: Path, **options) -> str:
    with pytest.raises(GraderError) as caught:
        load_submission(path, **options)
    return str(caught.value)


class TestErrors:
    def test_invalid_json_names_the_file_and_the_place(self):
        text = error_of(NOTEBOOKS / "invalid_json.ipynb")
        assert text.startswith(f"{NOTEBOOKS / 'invalid_json.ipynb'}: not valid JSON (line 31, column 7: ")
        assert "so not a notebook" in text
        assert "-> the file may be truncated" in text and "Download .ipynb" in text

    def test_json_that_is_not_a_notebook(self):
        text = error_of(NOTEBOOKS / "not_a_notebook.json")
        assert text.startswith(f"{NOTEBOOKS / 'not_a_notebook.json'}: JSON, but not a Jupyter notebook: ")
        assert "there is no 'nbformat' field (top-level keys: name, scripts, version)" in text
        assert "-> hand in the .ipynb file that Jupyter or Colab saves" in text

    def test_json_list_is_not_a_notebook(self, tmp_path):
        path = tmp_path / "cells.ipynb"
        path.write_text("[1, 2, 3]")
        assert "the top level is a JSON list, not an object with 'cells'" in error_of(path)

    @pytest.mark.parametrize("data, problem", [
        ({"nbformat": 1}, "it says nbformat 1 but has no 'cells' list (top-level keys: nbformat)"),
        ({"nbformat": 3, "nbformat_minor": 0}, "it says nbformat 3 but has no 'worksheets' list"),
        ({"nbformat": 4, "nbformat_minor": 5, "metadata": {}}, "it says nbformat 4 but has no 'cells' list"),
    ])
    def test_json_with_an_nbformat_field_but_no_cells_is_not_a_notebook(self, tmp_path, data, problem):
        """Not nbformat's "could not be converted from version 1 to version 2": the file is no notebook."""
        path = tmp_path / "settings.json"
        path.write_text(json.dumps(data) + "\n")
        text = error_of(path)
        assert text.startswith(f"{path}: JSON, but not a Jupyter notebook: {problem}")
        assert "-> hand in the .ipynb file that Jupyter or Colab saves" in text
        assert "converted" not in text and "version 2" not in text

    def test_unknown_nbformat_version(self, tmp_path):
        path = tmp_path / "future.ipynb"
        path.write_text(json.dumps({"nbformat": 9, "nbformat_minor": 0, "cells": [], "metadata": {}}))
        assert "nbformat version 9 is not one nbformat knows (1, 2, 3, 4)" in error_of(path)

    def test_cells_without_a_cell_type(self, tmp_path):
        path = tmp_path / "broken.ipynb"
        path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 2, "metadata": {}, "cells": [{"source": "x"}]}))
        assert "JSON, but not a Jupyter notebook: " in error_of(path)

    def test_oversize_is_refused_with_both_sizes(self):
        text = error_of(NOTEBOOKS / "realstyle_s3_torchsummary.ipynb", max_bytes=1024)
        assert "realstyle_s3_torchsummary.ipynb: the file is 29.3 KB, over the 1 KB limit for a submission" in text
        assert "-> clear large outputs (images, per-batch training logs) and save again" in text

    def test_default_limit_is_20_mb_and_checked_before_reading(self, tmp_path):
        path = tmp_path / "huge.ipynb"
        with path.open("wb") as sparse:
            sparse.truncate(DEFAULT_MAX_BYTES + 1)  # a sparse file: nothing is read or written
        assert DEFAULT_MAX_BYTES == 20 * 1024 * 1024
        assert "the file is 20,971,521 bytes, over the 20 MB limit" in error_of(path)

    def test_missing_file(self, tmp_path):
        assert error_of(tmp_path / "nope.ipynb") == (f"{tmp_path / 'nope.ipynb'}: no such file\n"
                                                     "  -> check the path and the file name")

    def test_folder(self, tmp_path):
        assert "is a folder, not a submission" in error_of(tmp_path)

    def test_not_utf8(self, tmp_path):
        path = tmp_path / "latin1.ipynb"
        path.write_bytes('{"nbformat": 4, "x": "é"}'.encode("latin-1"))
        assert "not UTF-8 text (byte 22 cannot be decoded), so not a notebook" in error_of(path)


def test_v3_notebook_is_upgraded_to_v4():
    submission = load_submission(NOTEBOOKS / "v3_notebook.ipynb")
    assert submission.notebook.nbformat == 4
    assert [cell.kind for cell in submission.cells] == ["markdown", "code", "code", "code", "code", "code", "markdown"]
    assert submission.cells[0].source == "# MNIST with Keras"  # a v3 heading cell
    assert submission.cells[1].source.startswith("# Keras with the TensorFlow backend\nfrom keras.models import "
                                                 "Sequential")
    assert submission.cells[5].outputs == ("[0.021234087606751175, 0.9942]",)  # v3 pyout -> execute_result


def test_colab_notebook_with_badge_and_metadata():
    submission = load_submission(NOTEBOOKS / "colab_badges.ipynb")
    assert submission.format == "ipynb"
    assert submission.notebook.metadata.colab.include_colab_link is True
    assert "colab-badge.svg" in submission.cells[0].source
    assert submission.cells[1].outputs == ("Mounted at /content/drive\n",)
    # A tqdm.notebook widget keeps only its text/plain stand-in.
    assert "HBox(children=(FloatProgress(value=0.0, max=469.0), HTML(value='')))" in submission.cells[7].outputs


def test_outputs_keep_streams_results_and_display_text_but_not_errors(tmp_path):
    cell = nbformat.v4.new_code_cell(
        "x",
        outputs=[
            nbformat.v4.new_output("stream", name="stderr", text="warn\n"),
            nbformat.v4.new_output("execute_result", data={"text/plain": "[0.03, 0.99]", "image/png": "AAAA"},
                                   execution_count=1),
            nbformat.v4.new_output("display_data", data={"image/png": "AAAA"}),
            nbformat.v4.new_output("error", ename="ValueError", evalue="bad", traceback=["Test accuracy: 99.9"]),
        ],
    )
    path = tmp_path / "outputs.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
    assert load_submission(path).cells[0].outputs == ("warn\n", "[0.03, 0.99]")


class TestScripts:
    def test_plain_script_is_one_code_cell(self, tmp_path):
        path = tmp_path / "train.py"
        path.write_text("import torch\n\nmodel = torch.nn.Linear(2, 2)\n")
        submission = load_submission(path)
        assert submission.format == "py"
        assert [(c.kind, c.source) for c in submission.cells] == [
            ("code", "import torch\n\nmodel = torch.nn.Linear(2, 2)")]
        assert submission.notebook.nbformat == 4

    def test_percent_markers_split_cells(self):
        cells = load_submission(NOTEBOOKS / "percent_cells_script.py").cells
        assert [c.kind for c in cells] == ["markdown", "code", "code", "code"]
        assert cells[0].source == "# MNIST as a script\nCells marked the VS Code / Jupytext way."
        assert cells[1].source.startswith("# Imports\nimport torch")  # the marker's title becomes the cell's comment
        assert cells[2].source.startswith("train = datasets.MNIST(")

    def test_code_before_the_first_marker_is_a_cell(self, tmp_path):
        path = tmp_path / "s.py"
        path.write_text("import torch\n#%%\nx = 1\n# %%\n")
        assert [c.source for c in load_submission(path).cells] == ["import torch", "x = 1", ""]
