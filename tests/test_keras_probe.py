"""How a Keras notebook's test inputs are read (kernel side, numpy only): the array of the 10,000 test digits in the
model's layout, its scaling fitted on real pixels; a raw `x_test` kept beside it is not taken for the inputs."""

from __future__ import annotations

import numpy as np

from grader.execute.keras_harness import probe_inputs

RAW = np.random.default_rng(0).integers(0, 256, size=(10_000, 28, 28), dtype=np.uint8)


def test_the_array_in_the_models_layout_is_read_not_the_raw_one_beside_it():
    scaled = (RAW.reshape(-1, 28, 28, 1).astype("float32") / 255 - 0.1307) / 0.3081
    namespace = {"x_test": RAW, "X_test": scaled, "y_test": np.zeros(10_000)}
    found = probe_inputs(namespace, RAW, wanted="nhwc")
    assert found["layout"] == "nhwc" and "`X_test` (10000x28x28x1)" in found["source"]
    assert abs(found["scale"] - 1 / 0.3081) < 1e-4 and abs(found["shift"] + 0.1307 / 0.3081) < 1e-4


def test_flat_inputs_for_a_dense_first_model():
    namespace = {"x_test": RAW, "X_test": RAW.reshape(10_000, 784).astype("float32") / 255}
    found = probe_inputs(namespace, RAW, wanted="flat")
    assert found["layout"] == "flat" and abs(found["scale"] - 1) < 1e-6 and abs(found["shift"]) < 1e-6


def test_without_a_test_array_the_scaling_is_an_assumption_and_says_so():
    found = probe_inputs({"X_train": RAW[:100]}, RAW, wanted="nhwc")
    assert found["layout"] is None and found["source"].startswith("assumed")


def test_an_array_that_is_not_an_affine_map_of_the_pixels_is_not_taken():
    shuffled = RAW[::-1].reshape(-1, 28, 28, 1).astype("float32") / 255  # another order: not these digits
    found = probe_inputs({"X_test": shuffled}, RAW, wanted="nhwc")
    assert found["source"].startswith("assumed")
