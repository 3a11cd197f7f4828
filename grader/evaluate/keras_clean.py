"""Runs in a fresh sandbox with the grading environment's Python: load a `.keras` file, predict the test images.

    python -m grader.evaluate.keras_clean JOB.json

The file's config is read first (grader.evaluate.archive.check_keras): a Lambda layer, an
object from a module outside Keras or a class the student registered is refused, saying
which, before Keras reads anything; then `keras.saving.load_model(..., safe_mode=True)`
rebuilds Keras's own layer classes, so no student code is imported or run. The test labels
are never here: this writes predictions, the host compares them with the labels. It
also writes the layer list and the counts `model.summary()` prints, from the loaded model.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from grader.evaluate.eval_jobs import KerasJob

_SHAPES = {"nhwc": (28, 28, 1), "nchw": (1, 28, 28), "nhw": (28, 28), "flat": (784,)}


def run(job: KerasJob) -> dict:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras
    import numpy as np

    from grader.evaluate.archive import KERAS_ADVICE, RefusedModel, check_keras

    started = time.time()
    checked = check_keras(Path(job.model_file).read_bytes())
    if not checked.ok:
        raise RefusedModel(Path(job.model_file).name, checked.refusals, KERAS_ADVICE)
    model = keras.saving.load_model(job.model_file, safe_mode=True, compile=False)
    trainable = int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))
    record = {"device": "cpu", "n": 0,
              "params": {"trainable": trainable, "total": int(model.count_params())},
              "config": json.loads(json.dumps(model.get_config(), default=_plain)),
              "weights": _weights(model),
              "class_name": type(model).__name__}
    if job.predict:
        images = np.load(job.images_file)
        inputs = (images.astype(np.float32) / 255.0) * job.scale + job.shift
        assert job.layout is not None, "the harness calls a Keras model whose input has no layout a bad model"
        inputs = inputs.reshape((len(inputs),) + _SHAPES[job.layout])
        scores = np.asarray(model.predict(inputs, batch_size=1000, verbose=0))
        np.save(Path(job.out_dir) / "predictions.npy", scores.argmax(axis=1).astype(np.int64))
        record["n"] = int(len(images))
    record["seconds"] = round(time.time() - started, 3)
    return record


def _weights(model) -> list[dict]:
    """Every stored weight: its path, shape, whether it trains, and whether it is a batch-norm moving statistic."""
    import keras

    out = []
    for layer in model.layers:
        stats = ({id(layer.moving_mean), id(layer.moving_variance)}
                 if isinstance(layer, keras.layers.BatchNormalization) else set())
        for weight in layer.trainable_weights + layer.non_trainable_weights:
            out.append({"name": getattr(weight, "path", weight.name), "shape": [int(d) for d in weight.shape],
                        "trainable": bool(weight.trainable), "bn_stat": id(weight) in stats})
    return out


def _plain(value):
    """Config values JSON does not know (tuples are lists already; dtypes, shapes) as text."""
    return str(value)


def main(argv: list[str]) -> int:
    job = KerasJob.model_validate_json(Path(argv[0]).read_text())
    try:
        record = run(job)
    except Exception as exc:
        record = {"error": f"{exc.__class__.__name__}: {str(exc)[:1500]}"}
    (Path(job.out_dir) / "eval.json").write_text(json.dumps(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
