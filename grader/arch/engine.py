"""The layer-stack engine: output size, receptive field, jump, start and parameters per layer.

Pure arithmetic over `Layer` records; shared by `grade arch`, model analysis and quizzes.

Per spatial axis, with effective kernel k' = d(k - 1) + 1:
    n_out = floor((n + 2p - k') / s) + 1          (ceil instead of floor with ceil_mode)
    r_out = r_in + (k' - 1) * j_in                (the standard recurrence, from r = 1, j = 1)
    j_out = j_in * s
    start_out = start_in + ((k' - 1) / 2 - p) * j_in   (centre of the first output's field, pixel 0 at 0.5)
A global average pool and a fully-connected layer see the whole map: they act as a
kernel the size of the map. Where paths merge (add, concatenate) the receptive field is
the largest of the inputs'.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from grader.arch.layers import Layer
from grader.errors import GraderError


@dataclass(frozen=True)
class Shape:
    """H x W x C as the course writes it; a flat vector has h = w = 1 and flat = True."""

    h: int
    w: int
    c: int
    flat: bool = False

    def __str__(self) -> str:
        return f"{self.c}" if self.flat else f"{self.h}x{self.w}x{self.c}"

    def as_list(self) -> list[int]:
        return [self.c] if self.flat else [self.h, self.w, self.c]


@dataclass(frozen=True)
class Axis:
    """One spatial axis as seen by a layer's outputs."""

    n: int  # size of the map along this axis
    rf: int
    jump: int
    start: float


@dataclass(frozen=True)
class Row:
    index: int  # 1-based position in the table
    label: str
    kind: str
    inputs: tuple[int, ...]  # row indices feeding this one, 0 = the stack's input
    in_shape: Shape
    out_shape: Shape
    params: int  # trainable parameters, bias and batch-norm affine included
    weights: int  # the same without bias and batch-norm
    buffers: int  # batch-norm running statistics
    rf: tuple[int, int]
    jump: tuple[int, int]
    start: tuple[float, float]
    name: str = ""  # the module's name when read from a torch model

    def as_dict(self) -> dict:
        return {
            "index": self.index, "label": self.label, "kind": self.kind, "name": self.name,
            "inputs": list(self.inputs), "in": str(self.in_shape), "out": str(self.out_shape),
            "out_shape": self.out_shape.as_list(), "params": self.params, "weights": self.weights,
            "buffers": self.buffers, "rf": _one(self.rf), "jump": _one(self.jump), "start": _one(self.start),
        }


@dataclass(frozen=True)
class Table:
    input: Shape
    rows: tuple[Row, ...]
    branches: bool

    @property
    def output(self) -> Shape:
        return self.rows[-1].out_shape if self.rows else self.input

    @property
    def params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def weights(self) -> int:
        return sum(r.weights for r in self.rows)

    @property
    def buffers(self) -> int:
        return sum(r.buffers for r in self.rows)

    def as_dict(self) -> dict:
        return {"input": self.input.as_list(), "output": self.output.as_list(), "params": self.params,
                "params_without_bias": self.weights, "buffers": self.buffers, "branches": self.branches,
                "layers": [r.as_dict() for r in self.rows]}


def _one(pair):
    """A square value as one number (RF 12), a non-square one as [h, w]."""
    return pair[0] if pair[0] == pair[1] else list(pair)


def _where(index: int, layer: Layer) -> str:
    return f"layer {index} ({layer.label})" + (f" at {layer.where}" if layer.where else "")


def _window(axis: Axis, k: int, s: int, p: int | Literal["same"], d: int, ceil: bool, what: str, where: str) -> Axis:
    keff = d * (k - 1) + 1
    if p == "same":
        left = (keff - 1) // 2
        return Axis(axis.n, axis.rf + (keff - 1) * axis.jump, axis.jump,
                    axis.start + ((keff - 1) / 2 - left) * axis.jump)
    padded = axis.n + 2 * p
    if keff > padded:
        pad = f" padded by {p} on each side" if p else ""
        raise GraderError(
            f"{what} {keff} is larger than the input size {axis.n}{pad}: the output would have size "
            f"{(padded - keff) // s + 1}", where=where,
            fix="add padding, use a smaller kernel, or remove a pooling layer before it")
    if ceil:
        n_out = math.ceil((padded - keff) / s) + 1
        if (n_out - 1) * s >= axis.n + p:  # torch: the last window must start inside the input or left padding
            n_out -= 1
    else:
        n_out = (padded - keff) // s + 1
    return Axis(n_out, axis.rf + (keff - 1) * axis.jump, axis.jump * s, axis.start + ((keff - 1) / 2 - p) * axis.jump)


def _whole_map(axis: Axis) -> Axis:
    return Axis(1, axis.rf + (axis.n - 1) * axis.jump, axis.jump * axis.n, axis.start + (axis.n - 1) / 2 * axis.jump)


def _step(layer: Layer, index: int, shape: Shape,
          axes: tuple[Axis, Axis]) -> tuple[Shape, tuple[Axis, Axis], int, int, int]:
    """(out shape, out axes, params, weights, buffers) for one single-input layer."""
    where = _where(index, layer)
    kind = layer.kind
    if kind in ("conv", "maxpool", "avgpool"):
        if shape.flat:
            raise GraderError(f"{kind} needs a feature map, but its input is a flat vector of {shape.c}",
                              where=where, fix="move it before flatten / linear")
        what = "kernel" if kind == "conv" else "pooling window"
        p_h: int | Literal["same"]
        p_w: int | Literal["same"]
        p_h, p_w = ("same", "same") if layer.p == "same" else layer.p
        new = (_window(axes[0], layer.k[0], layer.s[0], p_h, layer.d[0], layer.ceil, what, where),
               _window(axes[1], layer.k[1], layer.s[1], p_w, layer.d[1], layer.ceil, what, where))
        if kind != "conv":
            return Shape(new[0].n, new[1].n, shape.c), new, 0, 0, 0
        assert layer.out is not None, f"{where}: a conv layer without its output channels"
        if shape.c % layer.groups or layer.out % layer.groups:
            raise GraderError(f"groups={layer.groups} must divide both the input channels ({shape.c}) "
                              f"and the output channels ({layer.out})", where=where,
                              fix="choose channel counts that are multiples of groups")
        weights = layer.out * (shape.c // layer.groups) * layer.k[0] * layer.k[1]
        bias = layer.out if layer.bias else 0
        return Shape(new[0].n, new[1].n, layer.out), new, weights + bias, weights, 0
    if kind == "gap":
        if shape.flat:
            raise GraderError("global average pooling needs a feature map, but its input is flat",
                              where=where, fix="put gap before flatten")
        return Shape(1, 1, shape.c), (_whole_map(axes[0]), _whole_map(axes[1])), 0, 0, 0
    if kind == "flatten":
        return Shape(1, 1, shape.h * shape.w * shape.c, flat=True), axes, 0, 0, 0
    if kind == "linear":
        features = shape.c if shape.flat else shape.h * shape.w * shape.c  # a map is flattened first
        assert layer.out is not None, f"{where}: a linear layer without its output features"
        weights = features * layer.out
        return (Shape(1, 1, layer.out, flat=True), (_whole_map(axes[0]), _whole_map(axes[1])),
                weights + (layer.out if layer.bias else 0), weights, 0)
    if kind == "bn":
        return shape, axes, 2 * shape.c, 0, 2 * shape.c + 1
    if kind in ("act", "dropout", "identity"):
        return shape, axes, 0, 0, 0
    raise GraderError(f"the engine does not know layer kind {kind!r}", where=where,
                      fix="use a kind listed in `grade arch --help`")


def _merge(layer: Layer, index: int, shapes: list[Shape],
           axes: list[tuple[Axis, Axis]]) -> tuple[Shape, tuple[Axis, Axis]]:
    where = _where(index, layer)
    spatial = {(s.h, s.w, s.flat) for s in shapes}
    if len(spatial) != 1:
        raise GraderError(f"{layer.kind} joins inputs of different sizes: " + ", ".join(map(str, shapes)),
                          where=where, fix="make the paths end at the same height and width")
    if layer.kind == "cat":
        out = replace(shapes[0], c=sum(s.c for s in shapes))
    else:
        if len({s.c for s in shapes}) != 1:
            raise GraderError(f"{layer.kind} joins inputs with different channels: " + ", ".join(map(str, shapes)),
                              where=where, fix="add a 1x1 convolution so the channels match")
        out = shapes[0]
    widest = max(axes, key=lambda a: (a[0].rf, a[1].rf))
    first, second = (Axis(widest[i].n, max(a[i].rf for a in axes), max(a[i].jump for a in axes), widest[i].start)
                     for i in (0, 1))
    return out, (first, second)


def analyze(input_shape: Shape, layers: Sequence[Layer]) -> Table:
    """The table for a stack (each layer feeds the next) or a graph (layers name their inputs)."""
    if min(input_shape.h, input_shape.w, input_shape.c) < 1:
        raise GraderError(f"input size {input_shape} must be positive in every dimension",
                          where="input", fix="write the input as HxWxC, e.g. 28x28x1")
    start = Axis(input_shape.h, 1, 1, 0.5), Axis(input_shape.w, 1, 1, 0.5)
    shapes: dict[int, Shape] = {0: input_shape}
    axes: dict[int, tuple[Axis, Axis]] = {0: start}
    rows: list[Row] = []
    branches = False
    consumers: dict[int, int] = {}
    for index, layer in enumerate(layers, start=1):
        sources = (index - 1,) if layer.inputs is None else tuple(i + 1 for i in layer.inputs)
        for src in sources:
            if src not in shapes:
                raise GraderError(f"input {src - 1} is not an earlier layer", where=_where(index, layer),
                                  fix="a layer can only read the stack's input (-1) or layers before it")
            consumers[src] = consumers.get(src, 0) + 1
        if layer.kind in ("add", "cat"):
            branches = True
            shape, out_axes = _merge(layer, index, [shapes[i] for i in sources], [axes[i] for i in sources])
            params = weights = buffers = 0
        else:
            if len(sources) != 1:
                raise GraderError(f"{layer.kind} takes one input, got {len(sources)}", where=_where(index, layer),
                                  fix="join paths with add or cat first")
            shape, out_axes, params, weights, buffers = _step(layer, index, shapes[sources[0]], axes[sources[0]])
        shapes[index], axes[index] = shape, out_axes
        rows.append(Row(index, layer.label, layer.kind, sources, shapes[sources[0]], shape, params, weights, buffers,
                        (out_axes[0].rf, out_axes[1].rf), (out_axes[0].jump, out_axes[1].jump),
                        (out_axes[0].start, out_axes[1].start), str(layer.extra.get("name", ""))))
    branches = branches or any(n > 1 for n in consumers.values())
    return Table(input_shape, tuple(rows), branches)
