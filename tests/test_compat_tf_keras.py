"""The tf-keras compat profile (issue 21): Keras notebooks of later course years reach Keras through TensorFlow
(`from tensorflow.keras.layers import Conv2D`, `tf.keras.Sequential`). Where tensorflow is missing, those names are
Keras 3 itself (torch backend), any other `tf.*` says what to write instead, and Keras's own TensorFlow checks go on
seeing no TensorFlow. The kernel side runs in the Keras grading environment's interpreter; one notebook is graded
end to end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

import grader
from grader.api import grade_submission, load_rubric, options_for
from grader.env.build import locate
from grader.execute.job import imports_keras

CHECKOUT = str(Path(grader.__file__).resolve().parents[1])
KERAS_RUBRIC = Path(__file__).parent / "fixtures" / "handed_in" / "keras-eip.yaml"
USED = "tf-keras: tensorflow.keras"


def _run(code: str, python: str) -> dict:
    env = {**os.environ, "PYTHONPATH": CHECKOUT, "KERAS_BACKEND": "torch"}
    done = subprocess.run([python, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300,
                          env=env, cwd=CHECKOUT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def keras_python(grading_environments) -> str:
    """The interpreter of a grading environment with keras (and without tensorflow)."""
    return str(locate(load_rubric(KERAS_RUBRIC).environment, KERAS_RUBRIC.parent).python)


def test_keras_through_tensorflow_is_keras_3_itself_and_recorded(keras_python):
    out = _run("""
        import json, sys
        from grader.execute import compat
        compat.load(["tf-keras"])
        at_load = compat.used()
        import keras
        import tensorflow as tf
        model = tf.keras.Sequential([tf.keras.Input((28, 28, 1)), tf.keras.layers.Conv2D(4, 3),
                                     tf.keras.layers.Flatten(), tf.keras.layers.Dense(10)])
        from tensorflow.keras.layers import Conv2D
        from tensorflow import keras as from_tf
        import tensorflow.keras.layers
        from tensorflow.keras.utils import to_categorical
        print(json.dumps({
            "at_load": at_load, "params": model.count_params(), "class": type(model).__module__,
            "same": [Conv2D is keras.layers.Conv2D, from_tf is keras, tensorflow.keras.layers is keras.layers,
                     to_categorical is keras.utils.to_categorical],
            "one_copy": keras.layers.__name__ == "keras.layers" and keras.layers.__spec__.name == "keras.layers",
            "used": compat.used(), "skipped": compat.skipped()}))
    """, keras_python)
    assert out["at_load"] == []  # loading a profile is not using it
    assert out["params"] == 4 * 10 + 26 * 26 * 4 * 10 + 10  # Conv2D 3x3x1x4 + 4, Dense 2704x10 + 10
    assert out["class"].startswith("keras.") and out["same"] == [True] * 4 and out["one_copy"]
    assert out["used"] == [USED] and out["skipped"] == []


def test_other_tensorflow_names_say_tensorflow_is_missing_and_what_to_write(keras_python):
    out = _run("""
        import json
        from grader.execute import compat
        compat.load(["tf-keras"])
        import tensorflow as tf
        errors = {}
        for name, code in [("seed", "tf.random.set_seed(1)"), ("one_hot", "tf.one_hot([1], 10)"),
                           ("version", "print(tf.__version__)"), ("compat", "import tensorflow.compat.v1"),
                           ("absent", "from tensorflow.keras.nothing import x")]:
            try:
                exec(code)
            except Exception as exc:
                errors[name] = f"{type(exc).__name__}: {exc}"
        print(json.dumps({"errors": errors, "used": compat.used()}))
    """, keras_python)
    missing = "TensorFlow itself is not in this grading environment, only its Keras: tf.keras is Keras 3 here"
    assert out["errors"] == {
        "seed": f"AttributeError: tf.random: {missing}; write keras.utils.set_random_seed(seed) for "
                "tf.random.set_seed, keras.random for random numbers instead",
        "one_hot": f"AttributeError: tf.one_hot: {missing}; write keras.ops.one_hot instead",
        "version": f"AttributeError: tf.__version__: {missing}; write keras.__version__ instead",
        "compat": f"ModuleNotFoundError: No module named 'tensorflow.compat': {missing}; write keras (keras.ops, "
                  "keras.random, keras.utils) or NumPy instead",
        "absent": "ModuleNotFoundError: No module named 'tensorflow.keras.nothing': tensorflow.keras is Keras 3 "
                  "here (the tf-keras compat profile), which has no keras.nothing",
    }
    assert out["used"] == [USED]  # `tensorflow.keras` itself was imported (before keras.nothing was not found)


def test_keras_own_tensorflow_checks_still_see_no_tensorflow_once_a_notebook_imported_it(keras_python, tmp_path):
    # Keras saves, seeds and runs preprocessing layers with `if tf.available` / `"tensorflow" in sys.modules`
    out = _run(f"""
        import json
        import numpy as np
        from grader.execute import compat
        compat.load(["tf-keras"])
        import tensorflow as tf
        keras = tf.keras
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.RandomFlip(), keras.layers.Flatten(),
                                  keras.layers.Dense(2)])
        model.compile("adam", "mse")
        model.fit(np.zeros((4, 4, 4, 1)), np.zeros((4, 2)), verbose=0)
        model.save({str(tmp_path / "m.keras")!r})
        print(json.dumps({{"loaded": keras.models.load_model({str(tmp_path / "m.keras")!r}).count_params()}}))
    """, keras_python)
    assert out["loaded"] == 16 * 2 + 2


def test_where_tensorflow_is_installed_the_profile_leaves_it_alone(keras_python, tmp_path):
    real = tmp_path / "site" / "tensorflow"
    real.mkdir(parents=True)
    (real / "__init__.py").write_text("REAL = True\n")
    out = _run(f"""
        import json, sys
        sys.path.insert(0, {str(tmp_path / "site")!r})
        from grader.execute import compat
        compat.load(["tf-keras"])
        import tensorflow
        print(json.dumps({{"real": tensorflow.REAL, "used": compat.used(), "skipped": compat.skipped()}}))
    """, keras_python)
    assert out == {"real": True, "used": [], "skipped": []}


def test_without_keras_the_profile_is_skipped_and_says_why():
    out = _run("""
        import json, sys
        sys.modules["keras"] = None  # an environment without keras, whatever this machine has
        from grader.execute import compat
        compat.load(["tf-keras"])
        print(json.dumps({"skipped": compat.skipped()}))
    """, sys.executable)
    assert len(out["skipped"]) == 1 and out["skipped"][0].startswith("tf-keras: tensorflow.keras: ")
    assert "keras" in out["skipped"][0][len("tf-keras: tensorflow.keras: "):]


@pytest.mark.parametrize("source, expected", [
    ("import keras", True),
    ("from keras.layers import Dense", True),
    ("from tensorflow import keras", True),
    ("from tensorflow import random, keras  # both", True),
    ("import tensorflow.keras as K", True),
    ("from tensorflow.keras.layers import Conv2D", True),
    ("import tensorflow as tf\nmodel = tf.keras.Sequential()", True),
    ("import tensorflow as tf\nprint(tf.__version__)", False),
    ("import torch  # keras is not used here", False),
])
def test_a_notebook_that_reaches_keras_through_tensorflow_is_a_keras_notebook(source, expected):
    assert imports_keras(new_notebook(cells=[new_code_cell(source)])) is expected


@pytest.mark.usefixtures("bwrap")
def test_a_model_py_that_imports_keras_makes_a_keras_notebook(tmp_path):
    (tmp_path / "model.py").write_text("from tensorflow.keras import layers\n")
    (tmp_path / "utils.py").write_text("import numpy as np\n")
    notebook = new_notebook(cells=[new_code_cell("from model import build\nmodel = build()")])
    assert imports_keras(notebook) is False
    assert imports_keras(notebook, (tmp_path / "utils.py",)) is False
    assert imports_keras(notebook, (tmp_path / "utils.py", tmp_path / "model.py")) is True


def test_a_tf_keras_notebook_is_graded_as_a_keras_one(tmp_path, real_mnist_dir):
    rubric_file = tmp_path / "tf-keras.yaml"  # the Keras test rubric's environment, with tf-keras
    rubric_file.write_text(re.sub(r"compat: \[.*\]", "compat: [tf-keras]", KERAS_RUBRIC.read_text()))
    notebook = tmp_path / "tf_keras.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell(source) for source in (
        "import tensorflow as tf\nfrom tensorflow.keras.layers import Conv2D, GlobalAveragePooling2D, Activation",
        "(x_train, y_train), (x_test, y_test) = tf.keras.datasets.mnist.load_data()\n"
        "x_train, x_test = x_train[..., None] / 255.0, x_test[..., None] / 255.0",
        "model = tf.keras.Sequential([tf.keras.Input((28, 28, 1)), Conv2D(8, 3, activation='relu'),\n"
        "                             Conv2D(10, 1), GlobalAveragePooling2D(), Activation('softmax')])\n"
        "model.summary()",
        "model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'])\n"
        "model.fit(x_train[:256], y_train[:256], epochs=1, batch_size=64)",
    )]), str(notebook))
    rubric = load_rubric(rubric_file)
    facts = grade_submission(notebook, rubric, options_for(rubric, data=str(real_mnist_dir), dry_run=True)).facts
    assert facts.verdict.kind == "ok" and facts.verdict.failed_cells == [], facts.verdict.message
    assert facts.train.compat_shims == [USED]
    assert facts.model.params.trainable == 80 + 90  # Conv2D 3x3x1x8 + 8, Conv2D 1x1x8x10 + 10
    assert facts.model.gap is True and facts.model.layers.linear == 0
