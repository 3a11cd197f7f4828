"""Operators in an exported graph that a CNN does not need: the shapes a lookup of stored answers takes.

Pure: reads a graph and the shapes of its stored tensors, runs nothing: an `ExportedProgram` (torch.export)
or a TorchScript module, each turned into the same plain records first. The clean evaluation calls it on the
model it is about to measure, so what it reads is what gets scored.

A convolutional classifier maps pixels to ten scores with convolutions, pooling, normalisation,
activations and linear layers; the grader takes the argmax itself. What a memorised test set needs
instead, and what is flagged here:

- a distance to a stored table: `cdist` (or its pieces);
- an argmin / argmax inside the network (after a matmul against a large stored tensor, that is a
  nearest-neighbour search), or the indices of a max / min;
- data-dependent indexing or gathering: indices computed from the input pick rows of a tensor;
- equality tests (`eq`, `ne`, `isin`): an image compared with a stored one;
- sorting and top-k (`sort`, `argsort`, `topk`, `kthvalue`, `searchsorted`, `unique`);
- a soft lookup: a softmax over `SOFT_WIDTH` or more entries computed by a matmul against a large stored
  tensor (similarities to every row of a stored table, which then weigh stored answers). A classifier's
  softmax spans its ten classes; an attention map over an MNIST image spans at most 784 positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional

_ALWAYS = {
    "cdist": "a distance to a stored table (cdist)",
    "_cdist_forward": "a distance to a stored table (cdist)",
    "_euclidean_dist": "a distance to a stored table (euclidean distance)",
    "sort": "sorting (sort)", "argsort": "sorting (argsort)", "msort": "sorting (msort)",
    "topk": "top-k selection (topk)", "kthvalue": "k-th value selection (kthvalue)",
    "searchsorted": "a search in a sorted table (searchsorted)", "bucketize": "a search in a sorted table (bucketize)",
    "unique": "unique values (unique)", "_unique2": "unique values (unique)", "unique_consecutive": "unique values",
    "eq": "an equality test (eq)", "ne": "an equality test (ne)", "isin": "a membership test (isin)",
}
_ARG = ("argmax", "argmin")
_INDEX = {"index": 1, "_unsafe_index": 1, "index_select": 2, "gather": 2, "take": 1, "take_along_dim": 1,
          "embedding": 1, "embedding_bag": 1, "_embedding_bag": 1}  # op -> position of its indices argument
_MATMUL = ("matmul", "mm", "bmm", "linear", "addmm", "einsum", "tensordot")
LARGE = 1_000  # numbers in a stored tensor that a matmul reads, above which a following argmax is a table search
SOFT_WIDTH = 1_000  # entries a softmax spans, from which (after a matmul against a large stored tensor) it is a lookup
_SOFTMAX = ("softmax", "_softmax", "log_softmax", "_log_softmax", "softmin")


@dataclass(frozen=True)
class Op:
    """One node of a graph, as the scan needs it: value names only."""

    name: str
    op: str  # `cdist`, `matmul`, ...; "" for what computes nothing (a list of indices, a tuple item)
    sources: tuple[str, ...]  # the values it reads
    index: tuple[str, ...] = ()  # for indexing ops: the values its indices come from
    indices_used: bool = False  # for max / min over a dim: whether anything reads the indices
    span: Optional[int] = None  # for a softmax: how many entries it normalises over (None: not known)


Stored = dict[str, tuple[str, list[int]]]  # value name -> (state name, shape) of parameters, buffers, constants


def op_name(node: Any) -> str:
    """`aten.cdist.default` -> `cdist`; a Python function (`operator.getitem`) -> its name."""
    target = node.target
    packet = getattr(target, "_overloadpacket", None)
    return getattr(packet, "__name__", None) or getattr(target, "__name__", str(target))


def unexpected_ops(program: Any) -> list[str]:
    """One line per lookup-shaped operator of an exported program: what it is, its node, the stored tensor it reads."""
    return scan(*_from_program(program))


def unexpected_ops_torchscript(module: Any) -> list[str]:
    """The same for a TorchScript module (a traced graph: stored tensors are attributes and tensor constants)."""
    return scan(*_from_torchscript(module))


def _from_program(program: Any) -> tuple[list[Op], Stored, set[str]]:
    sig = program.graph_signature
    names = {**sig.inputs_to_parameters, **sig.inputs_to_buffers, **sig.inputs_to_lifted_tensor_constants}
    stored = {}
    for placeholder, target in names.items():
        tensor = program.state_dict.get(target, program.constants.get(target))
        stored[placeholder] = (target, list(getattr(tensor, "shape", ())))
    ops = []
    for node in program.graph.nodes:
        if node.op == "placeholder":
            continue
        name = op_name(node) if node.op == "call_function" else ""
        position = _INDEX.get(name)
        index = node.args[position:position + 1] if position is not None and len(node.args) > position else ()
        used = name in ("max", "min") and any(
            op_name(u) == "getitem" and len(u.args) > 1 and u.args[1] == 1 and u.users for u in node.users)
        span = _span(getattr(node.args[0], "meta", {}).get("val"), node.args[1]) if name in _SOFTMAX else None
        ops.append(Op(node.name, "" if name == "getitem" else name, tuple(n.name for n in node.all_input_nodes),
                      tuple(n.name for n in _flat_nodes(index)), used, span))
    return ops, stored, set(sig.user_inputs)


def _from_torchscript(module: Any) -> tuple[list[Op], Stored, set[str]]:
    graph = module.inlined_graph
    inputs = list(graph.inputs())
    state = {**dict(module.named_parameters()), **dict(module.named_buffers())}
    paths = {inputs[0].debugName(): ""}  # value -> attribute path from the module (self)
    stored: Stored = {}
    ops = []
    for node in graph.nodes():
        kind, ins, outs = node.kind(), list(node.inputs()), list(node.outputs())
        if kind == "prim::GetAttr":
            path = paths.get(ins[0].debugName())
            if path is not None:
                path = f"{path}.{node.s('name')}".lstrip(".")
                paths[outs[0].debugName()] = path
                if path in state:
                    stored[outs[0].debugName()] = (path, list(state[path].shape))
            continue
        if kind == "prim::Constant":
            value = node.output().toIValue() if node.output().type().kind() == "TensorType" else None
            if value is not None:
                stored[outs[0].debugName()] = (f"%{outs[0].debugName()}", list(value.shape))
            continue
        name = kind.split("::", 1)[1] if kind.startswith("aten::") else ""
        position = _INDEX.get(name)
        index = (ins[position].debugName(),) if position is not None and len(ins) > position else ()
        used = name in ("max", "min") and len(outs) > 1 and bool(outs[1].uses())
        span = _span_torchscript(ins) if name in _SOFTMAX else None
        for out in outs:  # a node with several outputs: each is a value the others read
            ops.append(Op(out.debugName(), name if out is outs[0] else "", tuple(i.debugName() for i in ins),
                          index, used, span))
    return ops, stored, {i.debugName() for i in inputs[1:]}


def _span(value: Any, dim: Any) -> Optional[int]:
    """The size of `value` (a traced tensor's fake value) along `dim`, when it is a plain number."""
    try:
        return int(value.shape[int(dim)])
    except (AttributeError, IndexError, TypeError, ValueError, RuntimeError):
        return None  # a symbolic size (the batch), or no recorded shape


def _span_torchscript(ins: list[Any]) -> Optional[int]:
    """The same for `aten::softmax(self, dim, dtype)` in a traced graph, whose types carry the traced sizes."""
    try:
        sizes, dim = ins[0].type().sizes(), ins[1].toIValue()
        return int(sizes[int(dim)])
    except (AttributeError, IndexError, TypeError, ValueError, RuntimeError):
        return None


def _numel(shape: Iterable[int]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def scan(ops: list[Op], stored: Stored, user: set[str]) -> list[str]:
    """The lookup-shaped operators among `ops` (in graph order), given the stored tensors and the image inputs."""
    from_input = set(user)  # values that depend on the images
    tables: dict[str, set[str]] = {v: {t} for v, (t, _) in stored.items()}  # value -> stored tensors it is made of
    shapes = {t: shape for t, shape in stored.values()}
    reads: dict[str, set[str]] = {}  # value -> large stored tensors it (transitively) reads through matmul-like ops
    found: list[str] = []
    for op in ops:
        if any(s in from_input for s in op.sources):
            from_input.add(op.name)
        elif any(s in tables for s in op.sources):  # keys.T, keys ** 2, keys[:, :10]: still the stored table
            tables[op.name] = set().union(*(tables.get(s, set()) for s in op.sources))
        inherited = set().union(*(reads.get(s, set()) for s in op.sources)) if op.sources else set()
        if op.op in _MATMUL:
            inherited |= {t for s in op.sources if s not in from_input for t in tables.get(s, ())
                          if _numel(shapes.get(t, [])) >= LARGE}
        if inherited:
            reads[op.name] = inherited
        where = f"node `{op.name}`"
        reading = sorted(set().union(*(tables.get(s, set()) for s in op.sources if s not in from_input)))
        read = f", reading the stored {_shown(reading, shapes)}" if reading else ""
        if op.op in _ALWAYS:
            found.append(f"{_ALWAYS[op.op]} at {where}{read}")
        elif op.op in _ARG:
            after = f", after a matmul against the stored {_shown(sorted(inherited), shapes)}" if inherited else ""
            found.append(f"an {op.op} inside the network at {where}{after}")
        elif op.op in _SOFTMAX and inherited and (op.span or 0) >= SOFT_WIDTH:
            found.append(f"a soft lookup at {where}: a {op.op} over {op.span:,} similarities to the stored "
                         f"{_shown(sorted(inherited), shapes)}")
        elif op.op in ("max", "min") and op.indices_used:
            found.append(f"the indices of a {op.op} at {where}")
        elif op.op in _INDEX and any(i in from_input for i in op.index):
            found.append(f"data-dependent indexing ({op.op}) at {where}{read}")
    return found


def _flat_nodes(values: Any) -> list[Any]:
    """The graph nodes inside an argument (a node, or a list of them as `index` takes)."""
    out = []
    for value in values if isinstance(values, (list, tuple)) else [values]:
        if isinstance(value, (list, tuple)):
            out.extend(_flat_nodes(value))
        elif hasattr(value, "op") and hasattr(value, "name"):
            out.append(value)
    return out


def _shown(names: list[str], shapes: dict[str, list[int]]) -> str:
    return ", ".join(f"`{n}` {'x'.join(map(str, shapes.get(n, []))) or 'scalar'}" for n in names)
