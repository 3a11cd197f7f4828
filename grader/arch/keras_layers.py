"""A Keras model's layer list (its `get_config()`) as the layer-stack engine's table.

Pure: the config is plain data, written by the clean evaluation from a `.keras` file it
loaded with `safe_mode=True`. RF, GAP, no-FC and 1x1 transitions then mean the same for
Keras and torch models (grader.arch.structure). Keras writes shapes channels last
(NHWC); the engine's Shape is H x W x C already.

Read: InputLayer, Conv2D (kernel, strides, padding valid/same, dilation, groups, bias,
its `activation=`), MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D,
BatchNormalization, Dropout / SpatialDropout2D, Activation / ReLU / Softmax, Flatten,
Dense (and its `activation=`), Reshape to a flat vector. Other layers are named in the error.
"""

from __future__ import annotations

from typing import Any

from grader.arch.engine import Shape, Table, analyze
from grader.arch.layers import ACTIVATIONS, Layer, normalize
from grader.errors import GraderError

_ACT_NAMES = {"relu": "relu", "softmax": "softmax", "log_softmax": "log_softmax", "sigmoid": "sigmoid",
              "tanh": "tanh", "elu": "elu", "gelu": "gelu", "silu": "silu", "swish": "silu", "relu6": "relu6",
              "leaky_relu": "leaky_relu", "hard_swish": "hardswish"}


def keras_table(config: dict[str, Any], input_shape: tuple[int, ...] | None = None) -> Table:
    """The table of a Sequential model's config, or of a functional model whose layers form one chain."""
    layers_config = config.get("layers") or []
    shape = _input_shape(config, layers_config, input_shape)
    if any(len(_inbound(layer)) > 1 for layer in layers_config):
        raise GraderError("the Keras model has a layer with several inputs (a branch or a merge); the structure "
                          "facts read one chain of layers", where=config.get("name", "model"),
                          fix="build the model as a Sequential stack, as the course does")
    layers: list[Layer] = []
    for i, entry in enumerate(layers_config):
        layers.extend(_layers(entry, f"layer {i} ({entry.get('config', {}).get('name', entry.get('class_name'))})"))
    return analyze(shape, layers)


def _inbound(layer: dict[str, Any]) -> list:
    nodes = layer.get("inbound_nodes") or []
    if not nodes:
        return []
    node = nodes[0]
    if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
        args = node.get("args") or []
        return [a for a in args if isinstance(a, dict)] if not (args and isinstance(args[0], list)) else args[0]
    return node if isinstance(node, list) else []


def _input_shape(config: dict, layers_config: list, given: tuple[int, ...] | None) -> Shape:
    shape = given
    if shape is None:
        for layer in layers_config:
            cfg = layer.get("config", {})
            shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
            if shape:
                shape = tuple(shape)[1:]
                break
        else:
            build = config.get("build_input_shape")
            shape = tuple(build)[1:] if build else None
    if shape is None:
        raise GraderError("the Keras model has no input shape", where=config.get("name", "model"),
                          fix="start the model with keras.Input((28, 28, 1)) or give the first layer input_shape=")
    dims = [int(d) for d in shape]
    if len(dims) == 3:
        return Shape(dims[0], dims[1], dims[2])
    if len(dims) == 2:
        return Shape(dims[0], dims[1], 1)
    if len(dims) == 1:
        return Shape(1, 1, dims[0], flat=True)
    raise GraderError(f"the Keras model's input shape {tuple(dims)} is not an image or a vector",
                      where=config.get("name", "model"), fix="give it an input of 28x28x1")


def _activation(name: Any, where: str) -> list[Layer]:
    if not isinstance(name, str) or name in ("linear", None):
        return []
    fn = _ACT_NAMES.get(name.lower())
    if fn is None or fn not in ACTIVATIONS:
        raise GraderError(f"activation {name!r} is not one the structure facts read", where=where,
                          fix="use " + ", ".join(sorted(_ACT_NAMES)))
    return [normalize(fn, {}, where)]


def _padding(padding: str, where: str) -> Any:
    return "same" if str(padding).lower() == "same" else 0


def _layers(entry: dict[str, Any], where: str) -> list[Layer]:
    kind, cfg = entry.get("class_name"), entry.get("config", {})
    if kind == "InputLayer":
        return []
    if kind in ("Conv2D", "Convolution2D"):
        conv = normalize("conv", {"k": list(cfg["kernel_size"]), "out": cfg["filters"], "s": list(cfg["strides"]),
                                  "p": _padding(cfg.get("padding", "valid"), where),
                                  "d": list(cfg.get("dilation_rate", (1, 1))), "groups": cfg.get("groups", 1),
                                  "bias": bool(cfg.get("use_bias", True))}, where)
        return [conv, *_activation(cfg.get("activation"), where)]
    if kind in ("MaxPooling2D", "AveragePooling2D"):
        strides = cfg.get("strides") or cfg["pool_size"]
        return [normalize("maxpool" if kind == "MaxPooling2D" else "avgpool",
                          {"k": list(cfg["pool_size"]), "s": list(strides),
                           "p": _padding(cfg.get("padding", "valid"), where)}, where)]
    if kind == "GlobalAveragePooling2D":  # gives a vector unless keepdims=True
        return [normalize("gap", {}, where)] + ([] if cfg.get("keepdims") else [normalize("flatten", {}, where)])
    if kind == "BatchNormalization":
        return [normalize("bn", {}, where)]
    if kind in ("Dropout", "SpatialDropout2D"):
        return [normalize("dropout", {"rate": cfg.get("rate", 0.5)}, where)]
    if kind == "Activation":
        return _activation(cfg.get("activation"), where)
    if kind == "ReLU":
        return [normalize("relu", {}, where)]
    if kind == "Softmax":
        return [normalize("softmax", {}, where)]
    if kind == "Flatten" or (kind == "Reshape" and len(cfg.get("target_shape", ())) == 1):
        return [normalize("flatten", {}, where)]
    if kind == "Dense":
        dense = normalize("linear", {"out": cfg["units"], "bias": bool(cfg.get("use_bias", True))}, where)
        return [dense, *_activation(cfg.get("activation"), where)]
    raise GraderError(f"the Keras layer {kind} is not one the structure facts read", where=where,
                      fix="the course's layers are Conv2D, MaxPooling2D, BatchNormalization, Dropout, Activation, "
                          "GlobalAveragePooling2D, Flatten and Dense")
