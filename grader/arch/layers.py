"""One layer of a stack, normalised from whatever way a person or a graph wrote it.

Specs (YAML and the one-line form) and torch graphs both end up as a list of
`Layer`; the engine only ever sees these. `normalize` is where every key, alias
and type of a written layer is checked, so errors name the layer and the
allowed values in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Union

from grader.errors import GraderError

Pair = tuple[int, int]
Padding = Union[Pair, Literal["same"]]  # (ph, pw) added on both sides, or "same"

ACTIVATIONS = ("relu", "relu6", "leaky_relu", "elu", "gelu", "silu", "sigmoid", "tanh",
               "softmax", "log_softmax", "hardswish", "prelu")


@dataclass(frozen=True)
class Layer:
    kind: str  # conv, maxpool, avgpool, gap, bn, dropout, act, flatten, linear, add, cat, identity
    k: Pair = (1, 1)
    s: Pair = (1, 1)
    p: Padding = (0, 0)
    d: Pair = (1, 1)
    out: int | None = None  # output channels (conv) or features (linear)
    groups: int = 1
    bias: bool = True
    ceil: bool = False
    rate: float | None = None  # dropout probability
    fn: str | None = None  # activation name
    label: str = ""
    # indices of earlier layers, -1 = the stack's input; None = the previous layer
    inputs: tuple[int, ...] | None = None
    where: str | None = None  # where it was written, for error messages
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # e.g. torch module name


# kind -> (canonical keys with defaults; REQUIRED marks a key without default)
REQUIRED = object()
_KEYS: dict[str, dict[str, Any]] = {
    "conv": {"k": REQUIRED, "out": REQUIRED, "s": 1, "p": 0, "d": 1, "groups": 1, "bias": True},
    "maxpool": {"k": REQUIRED, "s": None, "p": 0, "d": 1, "ceil": False},
    "avgpool": {"k": REQUIRED, "s": None, "p": 0, "ceil": False},
    "gap": {},
    "bn": {},
    "dropout": {"rate": 0.5},
    "act": {},
    "flatten": {},
    "linear": {"out": REQUIRED, "bias": True},
}

_KIND_ALIASES = {
    "conv": "conv", "conv2d": "conv", "c": "conv", "convolution": "conv",
    "maxpool": "maxpool", "max_pool": "maxpool", "maxpool2d": "maxpool", "mp": "maxpool", "pool": "maxpool",
    "avgpool": "avgpool", "avg_pool": "avgpool", "avgpool2d": "avgpool", "ap": "avgpool",
    "gap": "gap", "global_avg_pool": "gap", "globalavgpool": "gap", "adaptive_avg_pool": "gap",
    "bn": "bn", "batchnorm": "bn", "batch_norm": "bn", "batchnorm2d": "bn",
    "dropout": "dropout", "drop": "dropout", "do": "dropout", "dropout2d": "dropout",
    "flatten": "flatten", "flat": "flatten",
    "linear": "linear", "fc": "linear", "dense": "linear",
    **{a: "act" for a in ACTIVATIONS},
    "logsoftmax": "act",
}

_KEY_ALIASES = {
    "k": "k", "kernel": "k", "kernel_size": "k", "size": "k",
    "s": "s", "stride": "s",
    "p": "p", "pad": "p", "padding": "p",
    "d": "d", "dilation": "d",
    "out": "out", "out_channels": "out", "channels": "out", "filters": "out", "features": "out",
    "out_features": "out", "units": "out",
    "groups": "groups", "g": "groups",
    "bias": "bias",
    "ceil": "ceil", "ceil_mode": "ceil",
    "rate": "rate", "prob": "rate",
}


def kind_names() -> list[str]:
    return sorted(_KIND_ALIASES)


def kind_of(name: str) -> str | None:
    """The kind a written layer name stands for (conv, linear, act, ...), None when it names none."""
    return _KIND_ALIASES.get(name.strip().lower())


def canonical_kind(name: str, where: str) -> tuple[str, str | None]:
    """(kind, activation name) for a written layer name; raises with the allowed names."""
    key = name.strip().lower()
    if key not in _KIND_ALIASES:
        raise GraderError(
            f"unknown layer kind {name!r}", where=where,
            fix="use one of: conv, maxpool, avgpool, gap, bn, dropout, flatten, linear, "
            + ", ".join(ACTIVATIONS) + " (aliases: "
            + ", ".join(k for k in _KIND_ALIASES if _KIND_ALIASES[k] != k and k not in ACTIVATIONS) + ")",
        )
    kind = _KIND_ALIASES[key]
    fn = ("log_softmax" if key == "logsoftmax" else key) if kind == "act" else None
    return kind, fn


def _whole(value: Any, name: str, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise GraderError(f"{name} must be a whole number, got {value!r}", where=where,
                          fix=f"write {name} as an integer >= {minimum}")
    try:
        number = float(value)
    except ValueError:
        raise GraderError(f"{name} must be a whole number, got {value!r}", where=where,
                          fix=f"write {name} as an integer >= {minimum}") from None
    if number != int(number):
        raise GraderError(f"{name} must be a whole number, got {value!r}", where=where,
                          fix=f"{name} counts whole channels or pixels: use an integer >= {minimum}")
    if number < minimum:
        raise GraderError(f"{name} must be at least {minimum}, got {int(number)}", where=where,
                          fix=f"use an integer >= {minimum}")
    return int(number)


def _pair(value: Any, name: str, where: str, minimum: int) -> Pair:
    if isinstance(value, str) and "x" in value.lower():
        value = value.lower().split("x")
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise GraderError(f"{name} must be one number or two (height, width), got {value!r}", where=where,
                              fix=f"write {name}: 3 or {name}: [3, 3]")
        return (_whole(value[0], name, where, minimum), _whole(value[1], name, where, minimum))
    number = _whole(value, name, where, minimum)
    return (number, number)


def _bool(value: Any, name: str, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "false", "no"):
        return value.lower() in ("true", "yes")
    raise GraderError(f"{name} must be true or false, got {value!r}", where=where,
                      fix=f"write {name}: true or {name}: false")


def normalize(name: str, options: dict[str, Any] | None, where: str) -> Layer:
    """Turn a written layer (`conv`, {k: 3, out: 32}) into a checked `Layer`."""
    kind, fn = canonical_kind(name, where)
    allowed = _KEYS[kind]
    given: dict[str, Any] = {}
    for raw_key, value in (options or {}).items():
        key = _KEY_ALIASES.get(str(raw_key).lower())
        if kind == "dropout" and str(raw_key).lower() in ("p", "rate", "prob"):
            key = "rate"
        if key is None or key not in allowed:
            keys = ", ".join(allowed) or "none"
            raise GraderError(f"{name} does not take {raw_key!r}", where=where,
                              fix=f"keys for {kind}: {keys}")
        given[key] = value
    missing = [k for k, default in allowed.items() if default is REQUIRED and k not in given]
    if missing:
        raise GraderError(f"{name} needs {' and '.join(missing)}", where=where,
                          fix=f"for example: {kind}: {{k: 3, out: 16}}" if kind == "conv" else f"add {missing[0]}: ...")
    values = {k: given.get(k, default) for k, default in allowed.items()}
    fields: dict[str, Any] = {"kind": kind, "fn": fn, "where": where}
    if "k" in values:
        fields["k"] = _pair(values["k"], "kernel", where, 1)
        stride = values.get("s")
        fields["s"] = fields["k"] if stride is None else _pair(stride, "stride", where, 1)
        padding = values.get("p", 0)
        if isinstance(padding, str) and padding.lower() == "same":
            if fields["s"] != (1, 1):
                raise GraderError("padding 'same' needs stride 1", where=where,
                                  fix="give the padding as a number, or use stride 1")
            fields["p"] = "same"
        else:
            fields["p"] = _pair(padding, "padding", where, 0)
        fields["d"] = _pair(values.get("d", 1), "dilation", where, 1)
    if "out" in values:
        fields["out"] = _whole(values["out"], "channels" if kind == "conv" else "features", where, 1)
    if "groups" in values:
        fields["groups"] = _whole(values["groups"], "groups", where, 1)
    if "bias" in values:
        fields["bias"] = _bool(values["bias"], "bias", where)
    if "ceil" in values:
        fields["ceil"] = _bool(values["ceil"], "ceil", where)
    if kind == "dropout":
        rate = values["rate"]
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise GraderError(f"dropout rate must be a number in [0, 1), got {rate!r}", where=where,
                              fix="write dropout: {p: 0.1}")
        fields["rate"] = float(rate)
    layer = Layer(**fields)
    return Layer(**{**fields, "label": default_label(layer)})


def default_label(layer: Layer) -> str:
    """How a layer reads in a table: `conv3x3 32 s2`, `maxpool 2x2`, `dropout 0.1`."""
    extras = []
    if layer.kind == "conv" and layer.s != (1, 1) or layer.kind in ("maxpool", "avgpool") and layer.s != layer.k:
        extras.append(f"s{_num(layer.s)}")
    if layer.p == "same":
        extras.append("same")
    elif layer.p != (0, 0):
        extras.append(f"p{_num(layer.p)}")
    if layer.d != (1, 1):
        extras.append(f"d{_num(layer.d)}")
    if layer.groups != 1:
        extras.append(f"g{layer.groups}")
    tail = (" " + " ".join(extras)) if extras else ""
    if layer.kind == "conv":
        return f"conv{_kxk(layer.k)} {layer.out}{tail}"
    if layer.kind in ("maxpool", "avgpool"):
        return f"{layer.kind} {_kxk(layer.k)}{tail}"
    if layer.kind == "dropout":
        return f"dropout {layer.rate:g}"
    if layer.kind == "linear":
        return f"linear {layer.out}"
    if layer.kind == "act":
        return layer.fn or "act"
    return layer.kind


def _kxk(pair: Pair) -> str:
    return f"{pair[0]}x{pair[1]}"


def _num(pair: Pair) -> str:
    return str(pair[0]) if pair[0] == pair[1] else _kxk(pair)
