"""Reading a torch model into engine layers, from the graph torch itself records.

The model is exported (`torch.export`, non-strict) on one zero image; every
call_function node of the ATen graph that touches the image's data becomes a
`Layer` (conv, pooling, batch norm, dropout, activation, flatten, linear, add /
cat), with `inputs` naming the layers that produced its operands, so residual
and concatenating graphs keep their shape. When export cannot trace a model we
fall back to `torch.fx.symbolic_trace` and say why.

Two checks keep the table honest: the engine's output shape of every layer must
equal the tensor shape torch recorded for that node (a disagreement is an error,
never a silently wrong table), and the engine's parameter count is reported next
to the module's own `sum(p.numel())` (they differ for unused or shared layers).
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import re
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, overload

import torch
from torch import fx, nn

from grader.arch.engine import Shape, Table, analyze
from grader.arch.graph_ops import op_name
from grader.arch.layers import Layer, default_label
from grader.errors import GraderError

CHW = tuple[int, int, int]


@dataclass(frozen=True)
class TorchTable(Table):
    """The layer table of a torch model, with the module's own counts beside the engine's."""

    trainable: int = 0  # sum(p.numel() for p in parameters() if p.requires_grad)
    total: int = 0  # every parameter, frozen ones included
    module_buffers: int = 0
    traced_with: str = "export"  # "export", or "fx" when export failed (notes say why)
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {**super().as_dict(), "module": {
            "trainable": self.trainable, "total": self.total, "buffers": self.module_buffers,
            "traced_with": self.traced_with, "notes": list(self.notes)}}


# ---------------------------------------------------------------- targets


def parse_input_chw(text: str) -> CHW:
    """`1x28x28` (channels first, as torch writes it) -> (1, 28, 28)."""
    parts = [p for p in re.split(r"\s*[x×,]\s*", text.strip().strip("()[]").lower()) if p]
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise GraderError(f"input size {text.strip()!r} is not CxHxW", where="--input",
                          fix="write channels x height x width, channels first as torch does: 1x28x28 (MNIST), "
                              "3x32x32 (CIFAR-10)")
    c, h, w = (int(p) for p in parts)
    if min(c, h, w) < 1:
        raise GraderError(f"input size {text.strip()} must be positive in every dimension", where="--input",
                          fix="write it like 1x28x28")
    return c, h, w


def table_from_target(spec: str, input_chw: str) -> TorchTable:
    """The table of `path/to/file.py:ClassName` (built with no arguments) or of an exported `model.pt2`.

    A .pt2 file carries its example input, so `input_chw` is ignored for it.
    """
    if spec.lower().endswith(".pt2"):
        return table_from_exported(spec)
    if spec.lower().endswith((".pt", ".pth")):
        raise GraderError(f"{spec} is a torch.save file: weights, or a pickled model that would run code when loaded",
                          where=spec, fix="give the class (model.py:Net) or an exported program: torch.export.save("
                          "torch.export.export(model.eval(), (torch.zeros(1, 1, 28, 28),)), 'model.pt2')")
    chw = parse_input_chw(input_chw)
    module = _instantiate(*_split_target(spec))
    return table_from_module(module, chw, where=spec)


def _split_target(spec: str) -> tuple[Path, str]:
    path_text, _, class_name = spec.rpartition(":")
    if not path_text or not class_name or not path_text.endswith(".py"):
        raise GraderError(f"{spec!r} is not path/to/file.py:ClassName", where=spec,
                          fix="name the file and the model class, e.g. grade arch model.py:Net")
    path = Path(path_text)
    if not path.is_file():
        raise GraderError(f"model file {path_text} does not exist", where=spec,
                          fix="check the path (it is relative to the current folder)")
    return path, class_name


def _import_file(path: Path) -> Any:
    resolved = path.resolve()
    stem = re.sub(r"\W", "_", path.stem)
    name = f"_grader_model_{stem}_{hashlib.sha1(str(resolved).encode()).hexdigest()[:8]}"
    module_spec = importlib.util.spec_from_file_location(name, resolved)
    assert module_spec is not None and module_spec.loader is not None, f"{resolved}: a .py file has a loader"
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # dataclasses and pickling look classes up here
    sys.path.insert(0, str(resolved.parent))  # so the file can import its neighbours
    try:
        module_spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[name]
        raise GraderError(f"importing {path} failed: {_describe(err, resolved)}", where=str(path),
                          fix=f"the file must import on its own: python {path}") from None
    finally:
        sys.path.remove(str(resolved.parent))
    return module


def _instantiate(path: Path, class_name: str) -> nn.Module:
    where = f"{path}:{class_name}"
    module = _import_file(path)
    found = sorted(n for n, obj in vars(module).items() if not n.startswith("_")
                   and inspect.isclass(obj) and issubclass(obj, nn.Module) and obj.__module__ == module.__name__)
    cls = getattr(module, class_name, None)
    if cls is None:
        raise GraderError(f"{path} has no class {class_name!r}", where=where,
                          fix=(f"nn.Module classes in {path.name}: {', '.join(found)}; use e.g. {path}:{found[0]}"
                               if found else
                               f"{path.name} defines no nn.Module class: add class {class_name}(nn.Module)"))
    if not (inspect.isclass(cls) and issubclass(cls, nn.Module)):
        raise GraderError(f"{class_name} is not an nn.Module class", where=where,
                          fix=f"nn.Module classes in {path.name}: {', '.join(found) or 'none'}")
    required = [p.name for p in inspect.signature(cls).parameters.values()
                if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if required:
        raise GraderError(f"{class_name}() needs arguments ({', '.join(required)}); the grader builds models with none",
                          where=where, fix=f"give {', '.join(required)} default values, or add a class that "
                          f"passes them: class Graded({class_name}): def __init__(self): super().__init__(...)")
    try:
        return cls()
    except Exception as err:
        raise GraderError(f"{class_name}() failed: {_describe(err, path.resolve())}", where=where,
                          fix="the model must build with no arguments and no files or network") from None


def _describe(err: BaseException, path: Path | None = None) -> str:
    """`ValueError: bad thing (at model.py:12)`: the deepest frame in the user's file, not in torch."""
    if isinstance(err, SyntaxError):
        return f"{type(err).__name__}: {err.msg} (line {err.lineno})"
    text = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}".rstrip(": ")
    frames = [f for f in traceback.extract_tb(err.__traceback__)
              if (path and Path(f.filename) == path)
              or (not path and "/torch/" not in f.filename and "/grader/" not in f.filename)]
    return f"{text} (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else text


def table_from_exported(path_text: str) -> TorchTable:
    """The table of a `torch.export.save` file."""
    path = Path(path_text)
    if not path.is_file():
        raise GraderError(f"exported program {path_text} does not exist", where=path_text,
                          fix="check the path, or export one with torch.export.save(...)")
    try:
        program = torch.export.load(path)
    except Exception as err:
        raise GraderError(f"cannot load {path_text}: {_describe(err)}", where=path_text,
                          fix="save it with torch.export.save(torch.export.export(model.eval(), "
                          "(torch.zeros(1, 1, 28, 28),)), 'model.pt2')") from None
    return table_from_program(program, where=path_text)


def table_from_program(program: torch.export.ExportedProgram, *, where: str = "exported program") -> TorchTable:
    """The table of an exported program; its example input (batch of any size, static or not) gives C, H, W."""
    sig = program.graph_signature
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    shapes = [tuple(placeholders[name].meta["val"].shape) for name in sig.user_inputs]
    if len(shapes) != 1 or len(shapes[0]) != 4:
        raise GraderError(f"the exported program takes inputs of shapes {shapes}; a layer table needs one image batch "
                          "(N, C, H, W)",
                          where=where, fix="export the model with one example input: (torch.zeros(1, 1, 28, 28),)")
    c, h, w = (int(d) for d in shapes[0][1:])  # never int() of the batch: that would fix a dynamic batch's size
    chw = (c, h, w)
    params = [program.state_dict[t] for t in sig.inputs_to_parameters.values()]
    buffers = [program.state_dict.get(t, program.constants.get(t)) for t in sig.inputs_to_buffers.values()]
    return _build(_aten_calls(program), chw, "export", (),
                  trainable=sum(p.numel() for p in params if p.requires_grad),
                  total=sum(p.numel() for p in params),
                  buffers=sum(b.numel() for b in buffers if b is not None))


def table_from_module(module: nn.Module, input_chw: CHW = (1, 28, 28), *, where: str | None = None) -> TorchTable:
    """The table of a live module on one zero image of `input_chw` (C, H, W)."""
    where = where or type(module).__name__
    c, h, w = input_chw
    example = torch.zeros(1, c, h, w, device=next(module.parameters(), torch.zeros(0)).device)
    modes = {m: m.training for m in module.modules()}  # restored as they were, a frozen submodule included
    module.eval()
    try:
        try:
            with torch.no_grad():
                module(example)
        except Exception as err:
            raise GraderError(f"forward crashed on a zero input of shape 1x{c}x{h}x{w}: {_describe(err)}", where=where,
                              fix="check --input (channels first: CxHxW, e.g. 1x28x28) and that forward runs "
                              "on a batch of one image") from None
        calls: Iterator[_Call] | list[_Call]
        notes: tuple[str, ...]
        try:
            program = torch.export.export(module, (example,), strict=False)
            calls, traced_with, notes = _aten_calls(program), "export", ()
        except Exception as err:  # data-dependent Python in forward, unsupported ops, ...
            calls, traced_with = _fx_calls(module, example, where, err), "fx"
            notes = (f"torch.export failed ({_describe(err)}); the graph was read with torch.fx.symbolic_trace",)
        params = list(module.parameters())
        return _build(calls, input_chw, traced_with, notes,
                      trainable=sum(p.numel() for p in params if p.requires_grad),
                      total=sum(p.numel() for p in params),
                      buffers=sum(b.numel() for b in module.buffers()))
    finally:
        for m, training in modes.items():
            m.training = training


# ---------------------------------------------------------------- graphs -> calls


@dataclass
class _Call:
    """One graph node in a form shared by the export and fx readers: an ATen-style op name and
    the node's arguments (fx calls of nn modules get the arguments of the op they lower to)."""

    node: fx.Node
    name: str  # conv2d, max_pool2d, relu, view, add, ...
    args: tuple
    kwargs: dict
    val: Any  # the tensor (or tuple) torch recorded for this node
    module: str  # the module path (conv1.0); "" for a functional call in the top forward
    group: str | None = None  # one call of an activation module: decomposed graphs split it into several nodes
    group_fn: str | None = None  # that module's activation name
    is_input: bool = False

    @property
    def where(self) -> str:
        return f"{self.module or 'forward'} (graph node {self.node.name})"


# nn activation modules -> activation name (decomposed graphs spread one call over several nodes)
_ACT_MODULES = {"ReLU": "relu", "ReLU6": "relu6", "LeakyReLU": "leaky_relu", "ELU": "elu", "GELU": "gelu",
                "SiLU": "silu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Softmax": "softmax", "LogSoftmax": "log_softmax",
                "Hardswish": "hardswish", "PReLU": "prelu", "Hardtanh": "hardtanh", "Mish": "mish", "SELU": "selu",
                "CELU": "celu", "Softplus": "softplus", "Hardsigmoid": "hardsigmoid"}


def _type_name(kind: Any) -> str:
    return kind if isinstance(kind, str) else f"{kind.__module__}.{kind.__qualname__}"


def _aten_calls(program: torch.export.ExportedProgram) -> Iterator[_Call]:
    images = set(program.graph_signature.user_inputs)  # the other placeholders are parameters and buffers
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in images:
            yield _Call(node, "input", (), {}, node.meta.get("val"), "", is_input=True)
        if node.op != "call_function":
            continue
        name = op_name(node)
        stack = list((node.meta.get("nn_module_stack") or {}).items())
        key, (path, kind) = stack[-1] if stack else ("", ("", ""))
        kind = _type_name(kind)
        fn = _ACT_MODULES.get(kind.rsplit(".", 1)[-1]) if kind.startswith("torch.nn.modules.activation.") else None
        yield _Call(node, name, node.args, dict(node.kwargs), node.meta.get("val"), path, key if fn else None, fn)


def _fx_calls(module: nn.Module, example: torch.Tensor, where: str, export_error: Exception) -> list[_Call]:
    try:
        traced = fx.symbolic_trace(module)
        interpreter = fx.Interpreter(traced, garbage_collect_values=False)
        with torch.no_grad():
            interpreter.run(example)
    except Exception as err:
        raise GraderError(f"cannot read the model's graph: torch.export failed ({_describe(export_error)}) "
                          f"and torch.fx failed ({_describe(err)})", where=where,
                          fix="keep Python control flow in forward independent of tensor values") from None
    calls = []
    for node in traced.graph.nodes:
        node.meta["val"] = interpreter.env.get(node)  # what export records; handlers read arguments through it
        if node.op == "placeholder":
            calls.append(_Call(node, "input", (), {}, node.meta["val"], "", is_input=True))
        elif node.op == "call_module":
            name, args = _module_call(traced.get_submodule(node.target), node.args[0] if node.args else None)
            calls.append(_Call(node, name, args, {}, node.meta["val"], node.target))
        elif node.op in ("call_function", "call_method"):
            name = node.target if node.op == "call_method" else getattr(node.target, "__name__", str(node.target))
            calls.append(_Call(node, name, node.args, dict(node.kwargs), node.meta["val"], ""))
    return calls


def _module_call(sub: nn.Module, x: Any) -> tuple[str, tuple]:
    """An nn module call as the ATen op it lowers to, with the arguments the handlers read."""
    if isinstance(sub, nn.Conv2d):
        return "conv2d", (x, sub.weight, sub.bias, sub.stride, sub.padding, sub.dilation, sub.groups)
    if isinstance(sub, nn.MaxPool2d):
        return "max_pool2d", (x, sub.kernel_size, sub.stride, sub.padding, sub.dilation, sub.ceil_mode)
    if isinstance(sub, nn.AvgPool2d):
        return "avg_pool2d", (x, sub.kernel_size, sub.stride, sub.padding, sub.ceil_mode)
    if isinstance(sub, nn.modules.batchnorm._BatchNorm):
        return "batch_norm", (x,)
    if isinstance(sub, nn.modules.dropout._DropoutNd):
        return "dropout", (x, sub.p)
    if isinstance(sub, nn.Linear):
        return "linear", (x, sub.weight, sub.bias)
    if isinstance(sub, nn.Hardtanh):
        return "hardtanh", (x, sub.min_val, sub.max_val)
    simple = {nn.AdaptiveAvgPool2d: "adaptive_avg_pool2d", nn.AdaptiveMaxPool2d: "adaptive_max_pool2d",
              nn.Flatten: "flatten", nn.Identity: "identity"}
    for cls, name in simple.items():
        if isinstance(sub, cls):
            return name, (x,)
    return _ACT_MODULES.get(type(sub).__name__, type(sub).__name__.lower()), (x,)


def _is_tensor(value: Any) -> bool:
    return isinstance(value, torch.Tensor) or (isinstance(value, (tuple, list)) and bool(value)
                                               and isinstance(value[0], torch.Tensor))


# ---------------------------------------------------------------- calls -> layers

# In-place variants (relu_) and private names (_softmax, _native_batch_norm_legit) lose their
# underscores before lookup.
_CONV = {"conv2d", "convolution", "_convolution"}
_BATCH_NORM = {"batch_norm", "native_batch_norm", "native_batch_norm_legit", "native_batch_norm_legit_no_training",
               "batch_norm_with_update", "batch_norm_no_update", "cudnn_batch_norm"}
_DROPOUT = {"dropout", "feature_dropout", "alpha_dropout", "feature_alpha_dropout", "native_dropout", "dropout2d"}
_ACTIVATIONS = set(_ACT_MODULES.values()) | {"log_softmax", "softmax"}
_RESHAPE = {"view", "reshape", "unsafe_view", "reshape_alias", "flatten", "squeeze", "unsqueeze"}
_ALIAS = {"detach", "contiguous", "clone", "to", "to_copy", "alias", "lift_fresh_copy", "type_as", "float",
          "identity"}
_MERGE = {"add": "add", "iadd": "add", "sub": "add", "isub": "add", "mul": "add", "imul": "add",
          "cat": "cat", "concat": "cat", "concatenate": "cat"}
_LINEAR = {"linear", "addmm", "mm", "matmul"}


class _Reader:
    """Walks calls in graph order; `produced` maps each node carrying image data to its layer (-1 = the input)."""

    def __init__(self, calls: Iterator[_Call] | list[_Call]):
        self.calls = calls
        self.layers: list[Layer] = []
        self.produced: dict[fx.Node, int] = {}
        self.real: dict[int, Any] = {}  # layer index -> the tensor torch recorded, for the cross-check
        self.tuples: set[fx.Node] = set()  # ops returning (output, indices / statistics)
        self.groups: dict[str, int] = {}

    def read(self) -> list[Layer]:
        for call in self.calls:
            if call.is_input:
                self.produced[call.node] = -1
                continue
            sources = self._sources(call)
            if not sources or not _is_tensor(call.val):
                continue  # parameters, shapes, constants: no image data flows through
            if call.group is None:
                self._dispatch(call, sources)
            elif call.group in self.groups:
                self._alias(call, self.groups[call.group])  # the rest of a decomposed activation module
            else:
                self._add(call, Layer("act", fn=_act_name(call, call.group_fn)), sources[:1])
                self.groups[call.group] = self.produced[call.node]
        return self.layers

    def _sources(self, call: _Call) -> list[fx.Node]:
        found: list[fx.Node] = []
        fx.node.map_arg((call.args, call.kwargs), lambda n: found.append(n) if n in self.produced else None)
        return found

    def _dispatch(self, call: _Call, sources: list[fx.Node]) -> None:
        name = call.name.strip("_")
        if name == "getitem":
            return self._getitem(call, sources[0])
        if isinstance(call.val, (tuple, list)) and name not in _BATCH_NORM | _DROPOUT and "pool" not in name:
            return self._unknown(call, sources)
        if name in _ALIAS:
            return self._alias(call, self.produced[sources[0]])
        if name in _CONV:
            return self._conv(call, sources[0])
        if name in ("max_pool2d", "max_pool2d_with_indices", "avg_pool2d"):
            return self._pool(call, sources[0])
        if name in ("adaptive_avg_pool2d", "adaptive_max_pool2d", "adaptive_max_pool2d_with_indices"):
            return self._adaptive(call, sources[0])
        if name == "mean":
            return self._mean(call, sources[0])
        if name in _BATCH_NORM:
            return self._add(call, Layer("bn"), sources[:1])
        if name in _DROPOUT:
            p = _arg(call, 1, "p", 0.5)
            return self._add(call, Layer("dropout", rate=float(p)), sources[:1])
        if name in _ACTIVATIONS or name == "hardtanh":
            return self._add(call, Layer("act", fn=_act_name(call, name)), sources[:1])
        if name in _RESHAPE:
            return self._reshape(call, sources[0])
        if name in _LINEAR and len(sources) == 1:
            return self._linear(call, name, sources[0])
        if name in _MERGE and len(sources) > 1:
            return self._merge(call, name, sources)
        return self._unknown(call, sources)

    # -- layer building

    def _add(self, call: _Call, layer: Layer, sources: list[fx.Node], check: bool = True) -> None:
        layer = replace(layer, inputs=tuple(self.produced[s] for s in sources), where=call.where,
                        extra={"name": call.module})
        if layer.kind == "identity":
            layer = replace(layer, label=f"identity ({call.name})")
        elif layer.kind == "add" and call.name.strip("_") not in ("add", "iadd"):
            layer = replace(layer, label=call.name.strip("_"))
        else:
            layer = replace(layer, label=default_label(layer))
        self.layers.append(layer)
        index = len(self.layers) - 1
        self.produced[call.node] = index
        if check:
            self.real[index] = _first(call.val)
        if isinstance(call.val, (tuple, list)):
            self.tuples.add(call.node)

    def _alias(self, call: _Call, index: int) -> None:
        self.produced[call.node] = index
        if index >= 0 and not isinstance(call.val, (tuple, list)):
            self.real[index] = call.val

    def _getitem(self, call: _Call, source: fx.Node) -> None:
        if source in self.tuples and call.args[1] == 0:
            self.produced[call.node] = self.produced[source]  # the output of (output, indices)
        elif source in self.tuples:
            return  # pooling indices, batch-norm statistics: no image data
        else:
            self._unknown(call, [source])  # slicing a tensor

    def _conv(self, call: _Call, source: fx.Node) -> None:
        weight = _arg(call, 1, "weight", None)
        w_shape = tuple(weight.shape)
        if len(w_shape) != 4:
            return self._unknown(call, [source])
        if call.name.strip("_") != "conv2d" and _arg(call, 6, "transposed", False):
            raise GraderError("transposed convolutions are not supported by the layer table",
                              where=call.where,
                              fix="grade arch reads Conv2d, pooling, BatchNorm2d, Dropout, activations, Flatten "
                                  "and Linear")
        groups = _arg(call, 8 if call.name.strip("_") != "conv2d" else 6, "groups", 1)
        padding = _arg(call, 4, "padding", 0)
        if isinstance(padding, str):
            padding = "same" if padding == "same" else (0, 0)
        else:
            padding = _pair(padding, 0)
        layer = Layer("conv", k=(w_shape[2], w_shape[3]), out=w_shape[0], s=_pair(_arg(call, 3, "stride", 1), 1),
                      p=padding, d=_pair(_arg(call, 5, "dilation", 1), 1), groups=int(groups),
                      bias=_arg(call, 2, "bias", None) is not None)
        self._add(call, layer, [source])

    def _pool(self, call: _Call, source: fx.Node) -> None:
        k = _pair(_arg(call, 1, "kernel_size", None), None)
        assert k is not None, f"{call.name} without its kernel_size"
        stride = _arg(call, 2, "stride", None)
        if call.name.strip("_") == "avg_pool2d":
            layer = Layer("avgpool", k=k, s=_pair(stride, None) or k, p=_pair(_arg(call, 3, "padding", 0), 0),
                          ceil=bool(_arg(call, 4, "ceil_mode", False)))
        else:
            layer = Layer("maxpool", k=k, s=_pair(stride, None) or k, p=_pair(_arg(call, 3, "padding", 0), 0),
                          d=_pair(_arg(call, 4, "dilation", 1), 1), ceil=bool(_arg(call, 5, "ceil_mode", False)))
        self._add(call, layer, [source])

    def _adaptive(self, call: _Call, source: fx.Node) -> None:
        """Adaptive pooling to 1x1 is global pooling; to a size that divides the map it is a plain pool.
        An average to 1x1 of a map that is 1x1 already stays in the table, as the student wrote it: the facts
        say it averages nothing (`model.avgpool_on_1x1`) and the feedback says where it belongs."""
        (h, w), out = _spatial(_val(source)), _first(call.val)
        oh, ow = _spatial(out)
        kind = "avgpool" if "avg" in call.name else "maxpool"
        if kind == "avgpool" and (oh, ow) == (1, 1):
            return self._add(call, Layer("gap"), [source])
        if (oh, ow) == (h, w):
            return self._alias(call, self.produced[source])
        if h % oh or w % ow:
            raise GraderError(f"adaptive pooling from {h}x{w} to {oh}x{ow} uses windows of different sizes, "
                              "which a layer table cannot describe", where=call.where,
                              fix=f"pool to a size that divides {h}x{w}, or to 1 (global pooling)")
        k = (h // oh, w // ow)
        self._add(call, Layer(kind, k=k, s=k), [source])

    def _mean(self, call: _Call, source: fx.Node) -> None:
        dims = _arg(call, 1, "dim", None)
        ndim = _val(source).dim()
        dims = {d % ndim for d in ([dims] if isinstance(dims, int) else dims or range(ndim))}
        if ndim != 4 or dims != {2, 3}:
            return self._unknown(call, [source])
        keepdim = bool(_arg(call, 2, "keepdim", False))
        self._add(call, Layer("gap"), [source], check=keepdim)
        if not keepdim:  # (N, C) instead of (N, C, 1, 1): a flatten too
            self._add(call, Layer("flatten"), [call.node])

    def _reshape(self, call: _Call, source: fx.Node) -> None:
        before, after = _val(source), call.val
        if before.dim() == 4 and after.dim() == 4 and tuple(before.shape[1:]) == tuple(after.shape[1:]):
            return self._alias(call, self.produced[source])
        if after.dim() <= 2 and before.dim() <= 2:
            return self._alias(call, self.produced[source])  # (N, F) -> (N, F), or a batch of one squeezed
        if after.dim() <= 2 and before.dim() == 4:
            return self._add(call, Layer("flatten"), [source])
        self._unknown(call, [source])

    def _linear(self, call: _Call, name: str, source: fx.Node) -> None:
        if name == "linear":
            weight, bias = _arg(call, 1, "weight", None), _arg(call, 2, "bias", None) is not None
            out = weight.shape[0]
        else:  # addmm(bias, x, w.t()), mm(x, w.t()), matmul(x, w.t()): a linear layer lowered
            out, bias = _first(call.val).shape[-1], name == "addmm"
        self._add(call, Layer("linear", out=int(out), bias=bias), [source])

    def _merge(self, call: _Call, name: str, sources: list[fx.Node]) -> None:
        kind = _MERGE[name]
        if kind == "cat":
            dim = _arg(call, 1, "dim", 0)
            ndim = _val(sources[0]).dim()
            if dim % ndim != 1:
                raise GraderError(f"concatenation along dimension {dim} (not channels) cannot be described by a "
                                  "layer table",
                                  where=call.where,
                                  fix="concatenate feature maps along channels: torch.cat([a, b], dim=1)")
        self._add(call, Layer(kind), sources)

    def _unknown(self, call: _Call, sources: list[fx.Node]) -> None:
        """An op the table has no kind for: fine if it keeps the shape, an error if it changes it."""
        out = call.val
        ins = [_val(s) for s in sources]
        if isinstance(out, torch.Tensor) and all(i.dim() == out.dim() and tuple(i.shape[1:]) == tuple(out.shape[1:])
                                                 for i in ins):  # the batch may be symbolic: leave it out
            if len(sources) == 1:
                return self._add(call, Layer("identity"), sources)
            return self._add(call, Layer("add"), sources)  # an elementwise join (mul, where, ...)
        shapes = ", ".join("x".join(map(str, i.shape)) for i in ins)
        result = "x".join(map(str, out.shape)) if isinstance(out, torch.Tensor) else f"{len(out)} tensors"
        raise GraderError(f"the op {call.name} turns {shapes} into {result}, which a layer table cannot follow",
                          where=call.where,
                          fix="grade arch reads conv, pooling, batch norm, dropout, activations, flatten / view, "
                          "linear, add and cat; slicing, padding and other reshaping ops are not supported")


def _val(node: fx.Node) -> torch.Tensor:
    """The tensor torch recorded for a node (the output, for an op returning several)."""
    return _first(node.meta["val"])


def _act_name(call: _Call, name: str | None) -> str | None:
    if name == "hardtanh":  # ReLU6 lowers to hardtanh(0, 6)
        return "relu6" if (_arg(call, 1, "min_val", -1.0), _arg(call, 2, "max_val", 1.0)) == (0.0, 6.0) else "hardtanh"
    return name


def _arg(call: _Call, position: int, name: str, default: Any) -> Any:
    """An argument by position or keyword; graph nodes in it (a weight, `x.size()[2:]`) as their values."""
    value = call.args[position] if len(call.args) > position else call.kwargs.get(name, default)
    return fx.node.map_arg(value, lambda n: n.meta["val"])


@overload
def _pair(value: Any, default: int) -> tuple[int, int]: ...
@overload
def _pair(value: Any, default: None) -> tuple[int, int] | None: ...
def _pair(value: Any, default: int | None) -> tuple[int, int] | None:
    """torch writes 2, [2] or [2, 2]; [] or None means the default (None: the caller decides)."""
    if value is None or (isinstance(value, (list, tuple)) and not value):
        return None if default is None else (default, default)
    if isinstance(value, (list, tuple)):
        return (int(value[0]), int(value[-1]))
    return (int(value), int(value))


def _first(value: Any) -> torch.Tensor:
    return value[0] if isinstance(value, (tuple, list)) else value


def _spatial(tensor: torch.Tensor) -> tuple[int, int]:
    return int(tensor.shape[-2]), int(tensor.shape[-1])


# ---------------------------------------------------------------- engine + cross-check


def _build(calls: Iterator[_Call] | list[_Call], chw: CHW, traced_with: str, notes: tuple[str, ...], *,
           trainable: int, total: int, buffers: int) -> TorchTable:
    reader = _Reader(calls)
    layers = reader.read()
    c, h, w = chw
    table = analyze(Shape(h, w, c), layers)
    for index, real in reader.real.items():
        _check_shape(table.rows[index], real, layers[index])
    if table.params != trainable:
        notes = notes + (f"the layers the graph uses hold {table.params:,} parameters, the module {trainable:,} "
                         "trainable: layers defined but never called, frozen parameters, a layer called twice, PReLU, "
                         "or batch norm without affine parameters",)
    return TorchTable(table.input, table.rows, table.branches, trainable=trainable, total=total,
                      module_buffers=buffers, traced_with=traced_with, notes=notes)


def _check_shape(row: Any, real: torch.Tensor, layer: Layer) -> None:
    """The engine's shape for a row must be the one torch computed: otherwise the table is wrong."""
    shape: Shape = row.out_shape
    dims = tuple(real.shape)
    if shape.flat:
        ok = len(dims) <= 2 and (dims[-1] if dims else 1) == shape.c
    else:
        ok = len(dims) == 4 and tuple(int(d) for d in dims[1:]) == (shape.c, shape.h, shape.w)
    if not ok:
        torch_says = f"{dims[2]}x{dims[3]}x{dims[1]}" if len(dims) == 4 else f"a tensor of shape {list(dims)}"
        raise GraderError(
            f"the layer table says {shape} after layer {row.index} ({row.label}), but torch computes {torch_says}",
            where=layer.where, fix="the table would be wrong for this model: please report it with the model file")
