"""Keras notebooks graded like torch ones (issue 14): Keras 3 on the torch backend in a grading environment with
keras, the course's Keras-1/2 idioms read by the keras-1 / keras-2 compat profiles, the model measured in a clean
process that loads the `.keras` file with safe_mode=True, and structure facts from the layer list."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from grader.api import grade_submission, load_rubric, options_for

HERE = Path(__file__).parent / "fixtures" / "handed_in"
RUBRIC = HERE / "keras-eip.yaml"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _grade(path: Path, tmp_path: Path, data: Path):
    rubric = load_rubric(RUBRIC)
    options = options_for(rubric, data=str(data), keep=tmp_path / "kept")
    facts = grade_submission(path, rubric, options).facts
    return facts, nbformat.read(str(tmp_path / "kept" / "executed.ipynb"), as_version=4)


def _outputs(nb, code_cell: int) -> str:
    cell = [c for c in nb.cells if c.cell_type == "code"][code_cell - 1]
    parts = [o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in cell.outputs]
    return _ANSI.sub("", "".join(parts))


def _summary(text: str, which: str) -> int:
    """A count as model.summary() printed it in the same run ("Trainable params: 11,322 (44.23 KB)")."""
    return int(re.search(rf"{which} params: ([\d,]+)", text)[1].replace(",", ""))


@pytest.mark.usefixtures("bwrap")
def test_an_eip_keras_notebook_is_graded_end_to_end_like_a_torch_one(tmp_path, real_mnist_dir):
    facts, nb = _grade(HERE / "keras_eip.ipynb", tmp_path, real_mnist_dir)
    # the K.gradients cell (TF1 graph mode) fails alone, says why, and the grade goes on
    assert facts.verdict.kind == "ok" and facts.verdict.failed_cells == [7]
    assert "TensorFlow 1 graph mode" in facts.verdict.message
    # every Keras-1/2 idiom ran through its shim, and the facts name each
    assert set(facts.train.compat_shims) == {"keras-1: Convolution2D(n, kh, kw)", "keras-1: fit(nb_epoch=)",
                                             "keras-2: keras.utils.np_utils", "keras-2: optimizer lr=",
                                             "keras-2: history['acc']"}
    assert "keras is already in this assignment's grading environment" in _outputs(nb, 1)
    # counts as model.summary() printed them: BN moving statistics are the non-trainable ones
    summary = _outputs(nb, 4)
    assert facts.model.params.trainable == _summary(summary, "Trainable") == 11_322
    assert facts.model.params.total == _summary(summary, "Total") == 11_450
    # the stored-state budget reads Keras weights as torch tensors: moving mean / variance are BN statistics
    stored = facts.model.stored
    assert (stored.trainable, stored.bn_stats, stored.frozen, stored.learned, stored.carried, stored.flagged) == \
        (11_322, 128, 0, 11_322, 0, [])
    assert facts.model.ops.unexpected == []  # only layers the structure facts read: none looks anything up
    # Convolution2D(16, 3, 3) is a 3x3 kernel (not strides 3): 28 -> 26 -> 24 -> 12 -> ... -> 8, RF 14
    assert facts.model.rf.final == 14 and facts.model.gap is True and facts.model.layers.linear == 0
    assert facts.model.layers.conv == 7 and facts.model.layers.conv1x1 == 3 and facts.model.layers.maxpool == 1
    # max-pool, 1x1 keeping 32 channels, 1x1 cutting to 16: one transition, at the second 1x1
    assert facts.model.transitions == 1
    row = facts.model.table[facts.model.transition_layers[0] - 1]
    assert row["kind"] == "conv" and row["in"].endswith("x32") and row["out"].endswith("x16")
    # measured in the clean process from the .keras file, within 0.1 points of Keras's own evaluate in the run
    assert facts.eval.path == "keras"
    loss, accuracy = ast.literal_eval(_outputs(nb, 6).strip())
    assert abs(facts.eval.accuracy - accuracy * 100) <= 0.1
    assert facts.train.epochs == 1.0 and facts.train.samples_seen == 2000 and facts.train.optimizer_steps == 63
    # Keras's own optimizer step count (its `iterations`) bears the count out: 63 steps of 63 a pass
    assert facts.train.optimizer_state_steps == 63 and facts.train.batches_per_epoch == 63
    assert facts.train.counter_disagrees is False and facts.train.epochs_checked == 1.0
    assert facts.train.model_variable == "model" and "the last fit updated" in facts.train.model_reason


@pytest.mark.usefixtures("bwrap")
def test_the_last_fitted_keras_model_is_graded_and_the_others_are_noted(tmp_path, real_mnist_dir):
    facts, nb = _grade(HERE / "keras_several_fitted.ipynb", tmp_path, real_mnist_dir)
    assert facts.verdict.kind == "ok"
    assert facts.train.model_variable == "model2" and facts.train.trained_models == ["model2", "model1"]
    assert "trained several models (`model2`, `model1`): graded `model2`" in facts.verdict.message
    summary = _outputs(nb, 4)
    assert facts.model.params.trainable == _summary(summary, "Trainable") == 5_266
    # summarised after fit, Keras's "Total" adds the optimizer's slots: the model's own is trainable + non-trainable
    assert facts.model.params.total == _summary(summary, "Trainable") + _summary(summary, "Non-trainable") == 5_298
    assert facts.model.gap is True and facts.model.layers.linear == 0 and facts.model.transitions == 1


@pytest.mark.usefixtures("bwrap")
def test_a_keras_model_with_student_code_inside_is_not_loaded_by_the_clean_evaluation(tmp_path, real_mnist_dir):
    """A Lambda layer carries the student's Python: its config is refused before Keras reads it, so nothing is
    measured, and the verdict says which layer and what to do."""
    nb = new_notebook(cells=[new_code_cell(
        "# a model with a Lambda layer\nimport keras, numpy as np\n"
        "model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Lambda(lambda x: x * 2.0), "
        "keras.layers.Conv2D(10, (28, 28)), keras.layers.Flatten(), keras.layers.Activation('softmax')])\n"
        "model.compile(loss='categorical_crossentropy', optimizer='adam')\n"
        "model.fit(np.zeros((32, 28, 28, 1), 'float32'), np.eye(10)[np.zeros(32, int)], epochs=1, verbose=0)")])
    path = tmp_path / "lambda_layer.ipynb"
    nbformat.write(nb, str(path))
    facts, _ = _grade(path, tmp_path, real_mnist_dir)
    assert facts.eval.accuracy is None
    assert facts.verdict.kind == "bad_model" and "model.keras was not loaded" in facts.verdict.message
    assert "config.json.config.layers[1] (`lambda`): a Lambda layer, which carries Python code" in facts.verdict.message
    assert "no Lambda layer, no layer or function of your own" in facts.verdict.message


@pytest.mark.usefixtures("bwrap")
def test_a_keras_model_with_a_custom_layer_class_is_not_loaded_by_the_clean_evaluation(tmp_path, real_mnist_dir):
    """A layer class the notebook wrote (registered, so Keras could save it) is refused by its config."""
    nb = new_notebook(cells=[new_code_cell(
        "# a model with a layer class of its own\nimport keras, numpy as np\n"
        "@keras.saving.register_keras_serializable(package='student')\n"
        "class Twice(keras.layers.Layer):\n    def call(self, x):\n        return x * 2.0\n"
        "model = keras.Sequential([keras.Input((28, 28, 1)), Twice(), "
        "keras.layers.Conv2D(10, (28, 28)), keras.layers.Flatten(), keras.layers.Activation('softmax')])\n"
        "model.compile(loss='categorical_crossentropy', optimizer='adam')\n"
        "model.fit(np.zeros((32, 28, 28, 1), 'float32'), np.eye(10)[np.zeros(32, int)], epochs=1, verbose=0)")])
    path = tmp_path / "custom_layer.ipynb"
    nbformat.write(nb, str(path))
    facts, _ = _grade(path, tmp_path, real_mnist_dir)
    assert facts.eval.accuracy is None and facts.verdict.kind == "bad_model", facts.verdict.message
    assert "config.json.config.layers[1] (`twice`): `Twice` has no Keras module" in facts.verdict.message


@pytest.mark.usefixtures("bwrap")
def test_a_dry_run_of_a_keras_notebook_builds_the_model_on_one_batch_and_reads_its_structure(tmp_path, real_mnist_dir):
    rubric = load_rubric(RUBRIC)
    options = options_for(rubric, data=str(real_mnist_dir), dry_run=True)
    facts = grade_submission(HERE / "keras_eip.ipynb", rubric, options).facts
    assert facts.verdict.kind == "ok" and facts.verdict.failed_cells == [7]  # only the TF1 cell
    assert facts.train.model_variable == "model" and facts.train.epochs is None  # nothing was trained
    assert facts.model.params.trainable == 11_322 and facts.model.transitions == 1
    assert facts.eval.accuracy is None


@pytest.mark.usefixtures("bwrap")
def test_a_keras_model_that_does_not_take_mnist_digits_says_which_input_shapes_it_could(tmp_path, real_mnist_dir):
    nb = new_notebook(cells=[new_code_cell(
        "# a CIFAR-shaped model handed in for the MNIST assignment\nimport keras, numpy as np\n"
        "model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(10, (32, 32)), "
        "keras.layers.Flatten(), keras.layers.Activation('softmax')])\n"
        "model.compile(loss='categorical_crossentropy', optimizer='adam')\n"
        "model.fit(np.zeros((32, 32, 32, 3), 'float32'), np.eye(10)[np.zeros(32, int)], epochs=1, verbose=0)")])
    path = tmp_path / "cifar_shaped.ipynb"
    nbformat.write(nb, str(path))
    facts, _ = _grade(path, tmp_path, real_mnist_dir)
    assert facts.verdict.kind == "bad_model"
    assert "(None, 32, 32, 3)" in facts.verdict.message and "28x28x1, 1x28x28, 28x28 or 784" in facts.verdict.message
