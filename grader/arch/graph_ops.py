"""The operators of an exported graph, read against the ones a course CNN is made of.

Pure: reads a graph, the shapes and dtypes its tracer recorded (`node.meta["val"]`), and the shapes of its
stored tensors; runs nothing. The clean evaluation calls it on the model it is about to measure, so what it
reads is what gets scored; a line in `unexpected_ops` means that model's accuracy is not credited.

An allowlist, not a list of known tricks: a convolutional classifier maps pixels to ten scores with
convolutions and linear layers (their weights stored, never computed from the image), pooling, batch /
group / layer norm, activations, dropout, reshapes and static slices, add / sub / mul / div / cat for
residual blocks, a mean, and a (log-)softmax over its ten classes (`ALLOWED`: the names `torch.export`
writes, and core ATen's for the same layers; an in-place `relu_` reads as `relu`). Everything else is
reported, one line each with what it is, its node and operator, and what it reads (the image, stored
tensors): comparisons building a one-hot, `where`, clamps, scatters, `grid_sample`, `amax`, a hand-written
softmax (`exp`, `sum`), a softmax over anything but ten entries, integer arithmetic. So is any integer or
boolean value computed from the image, whatever operator made it (`x.long()`, the indices of a max-pool
that something reads): a CNN's data stays in floating point from the pixels to the scores.

A CNN scores each image apart and keeps nothing from one call to the next: a value computed from the images
whose first size is not the batch (`x.mean(0)`, `x.view(1, -1)`: the images of a batch read together, which
tells a batch of the test set from another) is reported, and so is a change to stored state (an in-place
write to a buffer or a view of it, a buffer the program writes back), which the next batch would read. A
batch norm's own statistics and a counter that nothing reads are exempt: a train-mode export updates them.
Shape arithmetic on the batch size (`x.view(x.size(0), -1)`) is allowed: it reads sizes, not pixels.

`literal_numbers` lists the numbers written into the graph as data rather than as a layer's shape
(stored_state.py counts them as learned numbers): the scalar operands of arithmetic (`x * 0.123`), select's
index and slice's bounds, and the settings that scale or shift values when the student chose them (a
leaky ReLU's slope other than 0.01, an eps other than 1e-5, hardtanh's bounds, avg_pool's divisor, addmm's
alpha / beta), and every number an operator outside the allowlist is given; never 0, 1, -1 or slice's open
end. Kernel sizes, strides, padding, dims, shapes, momentum and dropout rates are the architecture, not data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Optional, Union


def op_name(node: Any) -> str:
    """`aten.cdist.default` -> `cdist`; a Python function (`operator.getitem`) -> its name."""
    target = node.target
    packet = getattr(target, "_overloadpacket", None)
    name = getattr(packet, "__name__", None) or getattr(target, "__name__", str(target))
    return str(name)


CLASSES = 10  # the scores a classifier's final (log-)softmax spans
BATCH_NORM = {"batch_norm", "native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training",
              "_native_batch_norm_legit_functional", "_batch_norm_with_update", "_batch_norm_with_update_functional",
              "_batch_norm_no_update", "cudnn_batch_norm", "miopen_batch_norm", "instance_norm"}
BN_STATS = (3, 4)  # the positions of running_mean, running_var in each of them
_WEIGHTED = {"conv1d": 1, "conv2d": 1, "convolution": 1, "_convolution": 1, "linear": 1}  # -> its weight's position
_PRODUCTS = {"mm": (0, 1), "matmul": (0, 1), "addmm": (1, 2)}  # -> its factors: one may come from the image
_SOFTMAXES = {"softmax", "_softmax", "log_softmax", "_log_softmax"}
_SHAPE_OF = {"sym_size", "sym_numel", "sym_stride", "sym_storage_offset"}  # read a tensor's sizes, not its values
_ARITHMETIC = {"add", "sub", "mul", "div", "rsub", "neg"}
_VIEWS = {"view", "_unsafe_view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze", "permute", "transpose",
          "t", "numpy_T", "expand", "alias", "detach", "slice", "select"}  # reshapes: they may share their storage
ALLOWED = frozenset(BATCH_NORM | set(_WEIGHTED) | set(_PRODUCTS) | _SOFTMAXES | _SHAPE_OF | _ARITHMETIC | _VIEWS | {
    "group_norm", "native_group_norm", "layer_norm", "native_layer_norm",
    "max_pool1d", "max_pool2d", "max_pool2d_with_indices", "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d",
    "adaptive_avg_pool2d", "_adaptive_avg_pool2d", "adaptive_max_pool1d", "adaptive_max_pool2d",
    "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "mish", "sigmoid", "tanh", "hardtanh",
    "hardswish", "hardsigmoid", "softplus", "prelu", "_prelu_kernel",
    "dropout", "feature_dropout", "alpha_dropout", "feature_alpha_dropout", "native_dropout",
    "contiguous", "clone", "lift_fresh_copy", "_to_copy", "to", "cat", "mean", "getitem", "_assert_tensor_metadata"})
_KNOWN = {  # what an operator outside the allowlist is, for the line that reports it
    **dict.fromkeys(("eq", "ne", "ge", "gt", "le", "lt", "isclose", "isin", "equal", "logical_and", "logical_or",
                     "logical_not", "logical_xor"), "a comparison"),
    **dict.fromkeys(("where", "masked_fill", "masked_select", "masked_scatter"), "a choice by a condition"),
    **dict.fromkeys(("clamp", "clamp_min", "clamp_max", "clip", "maximum", "minimum", "fmax", "fmin"), "a clamp"),
    **dict.fromkeys(("scatter", "scatter_add", "scatter_reduce", "index_put", "index_add", "index_copy",
                     "index_fill"), "a write at computed positions"),
    **dict.fromkeys(("index", "_unsafe_index", "index_select", "gather", "take", "take_along_dim", "embedding",
                     "embedding_bag", "_embedding_bag", "one_hot"), "indexing by computed positions"),
    **dict.fromkeys(("grid_sampler", "grid_sampler_2d", "grid_sampler_3d", "_grid_sampler_2d_cpu_fallback",
                     "affine_grid_generator"), "sampling at computed positions (grid_sample)"),
    **dict.fromkeys(("amax", "amin", "max", "min", "aminmax", "argmax", "argmin", "topk", "sort", "argsort", "msort",
                     "kthvalue", "median", "mode", "searchsorted", "bucketize", "unique", "_unique2",
                     "unique_consecutive"), "a search among values (the largest, the smallest, an order)"),
    **dict.fromkeys(("cdist", "_cdist_forward", "_euclidean_dist"), "a distance to stored values"),
    **dict.fromkeys(("exp", "log", "sum", "pow", "sqrt", "rsqrt", "reciprocal", "logsumexp", "softmin"),
                    "arithmetic a CNN does not need (a hand-written softmax or distance)"),
    **dict.fromkeys(("remainder", "fmod", "floor_divide", "floor", "ceil", "round", "trunc", "frac", "sign",
                     "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not", "bitwise_left_shift",
                     "bitwise_right_shift", "__and__", "__or__", "__xor__", "__lshift__", "__rshift__"),
                    "rounding, bitwise or integer arithmetic (a hash of the pixels)"),
    **dict.fromkeys(("zeros", "ones", "full", "empty", "arange", "linspace", "scalar_tensor", "zeros_like", "ones_like",
                     "full_like", "empty_like", "new_zeros", "new_ones", "new_full", "new_empty", "rand", "randn",
                     "randint", "eye"), "a tensor made inside the graph"),
    **dict.fromkeys(("cond", "while_loop", "map_impl", "scan"), "control flow on computed values"),
    **dict.fromkeys(("_local_scalar_dense", "item"), "a tensor read back as a Python number"),
}
_TRIVIAL = (0, 1, -1)  # literal numbers that carry no value of their own: x * 1, x + 0, x[:, 1:-1]
# Arguments of allowed operators (by their schema's names) that act on values as data, each with the values that
# carry nothing of the student's: PyTorch's defaults. Any other argument of an allowed operator is a setting.
_DATA = {"other": (), "alpha": (), "beta": (), "scale": (), "input_scale": (), "min_val": (), "max_val": (6,),
         "negative_slope": (0.01,), "threshold": (20,), "eps": (1e-5,), "divisor_override": (), "index": (),
         "start": (), "end": ()}
_OPEN_END = 2 ** 62  # slice's "to the end" (sys.maxsize), not a number the student wrote


@dataclass(frozen=True)
class Dataflow:
    """Which values of an exported graph come from the image, and what stored tensors the others are made of."""

    image: frozenset[str]  # value names computed from the image (sizes read with sym_size excepted)
    batch: str  # the images' first size, as export recorded it: `s77` (a dynamic batch) or `1000`
    made_of: dict[str, frozenset[str]]  # a value computed without the image -> the state names it reads
    shapes: dict[str, list[int]]  # state name -> shape


@dataclass(frozen=True)
class Literal:
    """A number written into the graph as data: its node and value."""

    node: str
    value: Union[int, float]


def dataflow(program: Any) -> Dataflow:
    """Follow the image and the stored tensors through an exported program's graph."""
    sig = program.graph_signature
    names = {**sig.inputs_to_parameters, **sig.inputs_to_buffers, **sig.inputs_to_lifted_tensor_constants}
    image = set(sig.user_inputs)
    made_of = {placeholder: frozenset({target}) for placeholder, target in names.items()}
    for node in program.graph.nodes:
        if node.op != "call_function":
            continue
        sources = [s.name for s in node.all_input_nodes]
        if op_name(node) not in _SHAPE_OF and any(s in image for s in sources):
            image.add(node.name)
        elif stored := frozenset().union(*(made_of.get(s, frozenset()) for s in sources)):
            made_of[node.name] = stored
    state = {**program.constants, **program.state_dict}
    shapes = {t: list(getattr(state.get(t), "shape", ())) for t in names.values()}
    inputs = [n for n in program.graph.nodes if n.op == "placeholder" and n.name in sig.user_inputs]
    batch = str(next(iter(getattr(inputs[0].meta.get("val"), "shape", ())), "")) if inputs else ""
    return Dataflow(frozenset(image), batch, made_of, shapes)


def plain_name(node: Any) -> str:
    """`aten.relu_.default` -> `relu`: an in-place operator reads as its plain form."""
    name = op_name(node)
    return name[:-1] if name.endswith("_") and not name.endswith("__") else name


def unexpected_ops(program: Any) -> list[str]:
    """One line per operator of an exported program outside `ALLOWED` or outside its conditions, per integer or
    boolean value computed from the image, per value that mixes the images of a batch, and per change to stored
    state: what it is, its node and operator, and what it reads."""
    flow = dataflow(program)
    found = []
    for node in program.graph.nodes:
        if node.op != "call_function":
            continue
        value, read = node.meta.get("val"), node.name in flow.image and bool(node.users)  # unread: no dataflow
        dtype = str(value.dtype).replace("torch.", "") if read and _integral(value) else None
        used = node.name in flow.image and any(user.op != "output" for user in node.users)  # not only written back
        what = _why(node, flow) or (f"{dtype} values computed from the image" if dtype else None) or (
            f"values that mix the images of a batch (shape {_shape(value)}; each image's are "
            f"[{flow.batch}, ...])" if used and not _per_image(value, flow.batch) else None)
        if what:
            found.append(f"{what} at node `{node.name}` (`{_target(node)}`), reading {_reads(node, flow)}"
                         + (f", giving {dtype} values" if dtype and not what.startswith(dtype) else ""))
    return found + _state_changes(program, flow)


def _per_image(value: Any, batch: str) -> bool:
    """A value computed for each image apart: the batch first, every other size fixed (not a tensor: not judged)."""
    if not _is_tensor(value):
        return True
    shape = list(value.shape)
    return bool(shape) and str(shape[0]) == batch and all(isinstance(size, int) for size in shape[1:])


def _shape(value: Any) -> str:
    return "[" + ", ".join(str(size) for size in value.shape) + "]"


def _state_changes(program: Any, flow: Dataflow) -> list[str]:
    """Stored state the graph changes, which the next batch would read: an in-place operator on a stored value, or
    a buffer the program writes back. A batch norm's own statistics and a counter that nothing reads (its
    `num_batches_tracked`, in a train-mode export) are no channel between batches."""
    found = []
    for node in program.graph.nodes:
        name = op_name(node)
        if (node.op == "call_function" and name.endswith("_") and not name.endswith("__") and name != "detach_"
                and plain_name(node) in ALLOWED and node.args and (root := _stored_root(node.args[0], flow))
                and not _counter(root)):
            found.append(f"a change to stored state, which the next batch would read, at node `{node.name}` "
                         f"(`{_target(node)}`), reading {_reads(node, flow)}")
    written = {spec.arg.name: spec.target for spec in program.graph_signature.output_specs
               if spec.kind.name in ("BUFFER_MUTATION", "PARAMETER_MUTATION")}
    for node in program.graph.nodes:
        if node.name in written and not (_counter(node.args[0]) if plain_name(node) == "add" else (
                op_name(node) == "getitem" and op_name(node.args[0]) in BATCH_NORM)):
            found.append(f"a change to the stored `{written[node.name]}`, which the next batch would read, at node "
                         f"`{node.name}` (`{_target(node)}`), reading {_reads(node, flow)}")
    return found


def _stored_root(value: Any, flow: Dataflow) -> Any:
    """The stored placeholder a value is a view of (None: a value of its own, which an in-place write leaves
    behind when the call ends, such as a copy that `torch.tensor(...)` makes)."""
    while getattr(value, "op", None) == "call_function" and plain_name(value) in _VIEWS and value.args:
        value = value.args[0]
    return value if getattr(value, "op", None) == "placeholder" and value.name not in flow.image else None


def _counter(value: Any) -> bool:
    """A stored value that only additions read, whose sums nothing but the written-back state reads (a batch norm's
    counter): what it holds reaches no output."""
    return getattr(value, "op", None) == "placeholder" and all(
        plain_name(user) == "add" and all(sum_.op == "output" for sum_ in user.users) for user in value.users)


def _why(node: Any, flow: Dataflow) -> Optional[str]:
    """What a CNN would not do at one node (None: nothing), its values' dtype aside."""
    name = plain_name(node)
    if name not in ALLOWED and not _shape_arithmetic(node):
        return _KNOWN.get(name, "an operator outside those a CNN is made of")
    if name in _WEIGHTED and _arg(node, _WEIGHTED[name]) in flow.image:
        return "a layer whose weights are computed from the image"
    if name in _PRODUCTS and all(_arg(node, i) in flow.image for i in _PRODUCTS[name]):
        return "a product of two values computed from the image"
    if name in _SOFTMAXES and (span := _softmax_span(node)) != CLASSES:
        entries = f"{span:,}" if span is not None else "an unknown number of"
        return f"a {name.lstrip('_')} over {entries} entries (a classifier's spans its {CLASSES} classes)"
    return None


def _target(node: Any) -> str:
    """`aten.ge.Scalar`; a Python function as `operator.getitem`."""
    target = node.target
    if hasattr(target, "_overloadpacket"):
        return str(target)
    return f"{(getattr(target, '__module__', None) or 'builtins').lstrip('_')}.{op_name(node)}"


def _softmax_span(node: Any) -> Optional[int]:
    """How many entries a softmax normalises over (None: not a plain number, such as the batch)."""
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    return _span(getattr(node.args[0], "meta", {}).get("val"), dim)


def _reads(node: Any, flow: Dataflow) -> str:
    sources = [s.name for s in node.all_input_nodes]
    parts = ["the image"] if any(s in flow.image for s in sources) else []
    stored = sorted(set().union(*(flow.made_of.get(s, frozenset()) for s in sources if s not in flow.image)))
    if stored:
        parts.append(f"the stored {_shown(stored, flow.shapes)}")
    return " and ".join(parts) or "only numbers written into the graph"


def literal_numbers(program: Any) -> list[Literal]:
    """The numbers written into an exported program's graph as data (see the module's docstring), in graph order."""
    found = []
    for node in program.graph.nodes:
        if node.op != "call_function" or _shape_arithmetic(node):
            continue
        allowed = plain_name(node) in ALLOWED
        for argument, value in _arguments(node):
            free = _DATA.get(argument) if allowed else ()
            if free is not None:
                found += [Literal(node.name, v) for v in _numbers([value])
                          if v not in _TRIVIAL + free and abs(v) < _OPEN_END]
    return found


def _arguments(node: Any) -> list[tuple[str, Any]]:
    """A node's arguments with their names in the operator's schema ("" for a Python function's)."""
    schema = getattr(node.target, "_schema", None)
    names = [a.name for a in schema.arguments] if schema is not None else []
    return [(names[i] if i < len(names) else "", value) for i, value in enumerate(node.args)] + list(
        node.kwargs.items())


def _numbers(values: Iterable[Any]) -> list[Union[int, float]]:
    """The plain numbers among node arguments (lists opened; booleans, graph values, dtypes and strings left out)."""
    out = []
    for value in values:
        if isinstance(value, (list, tuple)):
            out += _numbers(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append(value)
    return out


def _arg(node: Any, position: int) -> Optional[str]:
    value = node.args[position] if len(node.args) > position else None
    return getattr(value, "name", None)


def _is_tensor(value: Any) -> bool:
    return hasattr(value, "dtype") and hasattr(value, "shape")


def _integral(value: Any) -> bool:
    """An integer or boolean tensor (a traced value's fake tensor)."""
    return _is_tensor(value) and not (value.dtype.is_floating_point or value.dtype.is_complex)


def _shape_arithmetic(node: Any) -> bool:
    """A Python number computed from other numbers only (`x.size(0) * 16`): sizes, not pixels."""
    def scalar(value: Any) -> bool:
        return isinstance(value, (int, float)) or type(value).__name__ in ("SymInt", "SymFloat", "SymBool")

    return scalar(node.meta.get("val")) and all(scalar(s.meta.get("val")) for s in node.all_input_nodes)


def _span(value: Any, dim: Any) -> Optional[int]:
    """The size of `value` (a traced tensor's fake value) along `dim`, when it is a plain number."""
    try:
        size = value.shape[int(dim)]
    except (AttributeError, IndexError, TypeError, ValueError):
        return None  # no recorded shape
    return size if isinstance(size, int) else None  # a symbolic size (the batch) is no plain number


def _shown(names: list[str], shapes: dict[str, list[int]]) -> str:
    return ", ".join(f"`{n}` {'x'.join(map(str, shapes.get(n, []))) or 'scalar'}" for n in names)
