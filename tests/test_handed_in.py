"""The notebooks students really hand in (issue 14), each style a fixture in tests/fixtures/handed_in/ run in the
sandbox under a shipped rubric and its grading environment: the verdict, the parameter count (equal to what
torchsummary printed in the same run), the structure facts, and which model was graded and why."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from grader.api import grade_submission, load_rubric, options_for
from grader.cli.main import main

HERE = Path(__file__).parent / "fixtures" / "handed_in"


def _grade(name: str, tmp_path: Path, data: Path, rubric: str = "mnist-s3"):
    rubric_ = load_rubric(rubric)
    options = options_for(rubric_, data=str(data), keep=tmp_path / "kept")
    result = grade_submission(HERE / f"{name}.ipynb", rubric_, options)
    executed = nbformat.read(str(tmp_path / "kept" / "executed.ipynb"), as_version=4)
    return result.facts, executed


def _printed(nb, code_cell: int) -> str:
    cell = [c for c in nb.cells if c.cell_type == "code"][code_cell - 1]
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def _torchsummary_count(text: str) -> int:
    return int(re.search(r"Trainable params: ([\d,]+)", text)[1].replace(",", ""))


@pytest.mark.usefixtures("bwrap")
def test_old_torch_apis_pandas_sklearn_and_pip_install_run_in_the_grading_environment(tmp_path, real_mnist_dir):
    facts, nb = _grade("torch_old_apis", tmp_path, real_mnist_dir)
    assert facts.verdict.kind == "ok" and facts.verdict.failed_cells == []
    # dataiter.next() and tqdm_notebook ran through mnist-s3's torch-1.x profile, and the facts say so
    assert facts.train.compat_shims == ["torch-1.x: DataLoader iterator .next()", "torch-1.x: tqdm_notebook"]
    assert "torch.Size([64, 1, 28, 28])" in _printed(nb, 7)
    # `!pip install torch torchvision`: both are in the environment, so nothing ran and the cell said so
    pip = _printed(nb, 1)
    assert "torch is already in this assignment's grading environment" in pip
    assert "torchvision is already in" in pip and facts.train.pip_missing == []
    # pandas and scikit-learn / scikit-image / seaborn imported (the default environment has them)
    assert "digit  correct" in _printed(nb, 10)
    assert facts.model.params.trainable == _torchsummary_count(_printed(nb, 5)) == 12_698
    assert facts.model.layers.linear == 0 and facts.model.gap is True
    # max-pool, 1x1 32 -> 32, 1x1 32 -> 16: one transition, at the second 1x1
    assert facts.model.transitions == 1
    row = facts.model.table[facts.model.transition_layers[0] - 1]
    assert row["kind"] == "conv" and row["in"].endswith("x32") and row["out"].endswith("x16")
    assert facts.train.model_variable == "model" and facts.train.trained_models == ["model"]


@pytest.mark.usefixtures("bwrap")
def test_the_model_that_was_really_trained_is_graded_when_model_is_reassigned(tmp_path, real_mnist_dir):
    facts, nb = _grade("several_trained_models", tmp_path, real_mnist_dir)
    # `model` ends as an untrained 1.2M-parameter BigNet; the last optimizer step updated the Net now in `net`
    assert facts.verdict.kind == "ok"
    assert facts.train.model_variable == "net"
    assert "the last optimizer step updated the parameters of `net`" in facts.train.model_reason
    assert "`model` holds another module" in facts.train.model_reason
    assert facts.train.trained_models == ["net", "model2"]
    assert "trained several models (`net`, `model2`): graded `net`" in facts.verdict.message
    assert facts.model.params.trainable == _torchsummary_count(_printed(nb, 7)) == 12_698
    assert _torchsummary_count(_printed(nb, 8)) > 1_000_000  # the reassigned, untrained `model`
    assert facts.model.transitions == 1 and facts.model.layers.linear == 0


@pytest.mark.usefixtures("bwrap")
def test_a_rubric_that_names_the_variable_grades_that_variable(tmp_path, real_mnist_dir):
    rubric = load_rubric("mnist-s3").model_copy(update={"model": "model2"})
    rubric.model_fields_set.add("model")
    options = options_for(rubric, data=str(real_mnist_dir), dry_run=True)
    facts = grade_submission(HERE / "several_trained_models.ipynb", rubric, options).facts
    assert (facts.train.model_variable == "model2"
            and "`model2` is named as the model to grade" in facts.train.model_reason)


@pytest.mark.usefixtures("bwrap")
def test_grade_run_variable_names_the_model_to_grade(tmp_path, real_mnist_dir, capsys):
    code = main(["run", str(HERE / "several_trained_models.ipynb"), "--variable", "model2", "--dry-run", "--json",
                 "--data", str(real_mnist_dir)])
    train = json.loads(capsys.readouterr().out)["train"]
    assert code == 0 and train["model_variable"] == "model2"
    assert "(the rubric's model: or --variable)" in train["model_reason"]


@pytest.mark.usefixtures("bwrap")
def test_pip_install_of_a_package_the_environment_lacks_names_it_and_the_rubric_key(tmp_path, real_mnist_dir):
    facts, nb = _grade("pip_missing_package", tmp_path, real_mnist_dir)
    said = _printed(nb, 1)
    assert "torchviz is not in this assignment's grading environment" in said and "environment: packages:" in said
    assert facts.train.pip_missing == ["torchviz"]
    assert facts.verdict.kind == "missing_module" and facts.verdict.cell == 2
    assert "`torchviz`" in facts.verdict.message and "environment: packages:" in facts.verdict.message
