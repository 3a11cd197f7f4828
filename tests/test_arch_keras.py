"""A Keras layer list through the arch engine (pure: no keras needed): the same facts as the torch path."""

from __future__ import annotations

import pytest

from grader.arch.keras_layers import keras_table
from grader.arch.structure import structure_facts
from grader.errors import GraderError


def conv(filters, k, padding="valid", activation="relu", strides=(1, 1)):
    return {"class_name": "Conv2D", "config": {"name": f"c{filters}", "filters": filters, "kernel_size": [k, k],
                                               "strides": list(strides), "padding": padding, "dilation_rate": [1, 1],
                                               "groups": 1, "use_bias": True, "activation": activation}}


def layer(kind, **config):
    return {"class_name": kind, "config": config}


INPUT = layer("InputLayer", batch_shape=[None, 28, 28, 1])


def test_a_course_keras_stack_gives_the_course_facts():
    config = {"name": "sequential", "layers": [
        INPUT, conv(16, 3), layer("BatchNormalization"), conv(32, 3), layer("MaxPooling2D", pool_size=[2, 2],
                                                                             strides=[2, 2], padding="valid"),
        conv(32, 1), conv(16, 1), conv(16, 3, padding="same"), layer("Dropout", rate=0.1),
        conv(10, 1, activation="linear"),
        layer("GlobalAveragePooling2D"), layer("Activation", activation="softmax")]}
    f = structure_facts(keras_table(config))
    assert f.transitions == 1 and f.transition_layers == [9]  # the 1x1 32 -> 16 (row 9: each activation= is a row)
    assert f.gap is True and f.layers.linear == 0 and f.layers.conv == 6 and f.layers.conv1x1 == 3
    assert f.rf.final == 10 and f.input_shape == [1, 28, 28] and f.output_shape == [10]
    assert f.activations == ["relu", "softmax"]


def test_dense_layers_are_fully_connected_and_flatten_is_no_gap():
    config = {"layers": [INPUT, conv(8, 3), layer("Flatten"), layer("Dense", units=10, use_bias=True,
                                                                     activation="softmax")]}
    f = structure_facts(keras_table(config))
    assert f.layers.linear == 1 and f.gap is False and f.params.trainable == 80 + 26 * 26 * 8 * 10 + 10


def test_a_layer_the_facts_do_not_read_is_named_with_the_ones_they_do():
    with pytest.raises(GraderError) as err:
        keras_table({"layers": [INPUT, layer("LSTM", name="lstm", units=4)]})
    assert "LSTM" in err.value.render() and "layer 1 (lstm)" in err.value.render() and "Conv2D" in err.value.render()


def test_a_model_without_an_input_shape_says_how_to_give_one():
    with pytest.raises(GraderError) as err:
        keras_table({"name": "sequential", "layers": [conv(8, 3)]})
    assert "keras.Input((28, 28, 1))" in err.value.render()


def test_a_merge_is_refused_with_the_reason():
    merge = {"class_name": "Add", "config": {"name": "add"},
             "inbound_nodes": [{"args": [[{"class_name": "__keras_tensor__"}, {"class_name": "__keras_tensor__"}]]}]}
    with pytest.raises(GraderError) as err:
        keras_table({"name": "functional", "layers": [INPUT, merge]})
    assert "several inputs" in err.value.render() and "Sequential" in err.value.render()


def test_keras_weights_count_as_torch_tensors_do_for_the_stored_state_budget():
    from grader.evaluate.keras_job import stored_weights

    stored = stored_weights([
        {"name": "seq/conv2d/kernel", "shape": [3, 3, 1, 16], "trainable": True, "bn_stat": False},
        {"name": "seq/bn/moving_mean", "shape": [16], "trainable": False, "bn_stat": True},
        {"name": "seq/bn/moving_variance", "shape": [16], "trainable": False, "bn_stat": True},
        {"name": "seq/table/answers", "shape": [60000, 10], "trainable": False, "bn_stat": False}])
    assert (stored.trainable, stored.bn_stats, stored.frozen, stored.learned) == (144, 32, 600_000, 600_144)
    assert stored.flagged == ["frozen parameter `seq/table/answers` 60000x10 (600,000 numbers)"]
