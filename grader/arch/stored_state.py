"""Every number an exported model stores, by kind: what it learned, and what it merely carries.

Pure: reads an `ExportedProgram`'s signature, state and graph (`count` also serves the Keras reader).
Batch-norm running statistics are told apart by how the graph uses them, not by
their names, which the student chose.

Kinds: trainable parameters; frozen parameters (requires_grad=False); buffers; batch-norm running
statistics (with their `num_batches_tracked` counters); constants: tensors that `forward` captured from
outside the module, lifted into the program, and the literal numbers written into the graph as data
(`graph_ops.literal_numbers`: `x * 0.123` holds one; a layer's kernel size or eps holds none). "Learned
numbers", what a budget counts, are all of them but the batch-norm statistics. Frozen parameters, buffers
and constants together beyond `ALLOWANCE` numbers are listed tensor by tensor for the instructor: a CNN
keeps nothing there.

A buffer is a batch-norm statistic, and not counted, only when every use of it in the graph is as the
running mean or variance of a batch-norm op whose input comes from the image, it is one number per channel
of that input, and that layer has its own weight of the same size among the parameters (counted, read by no
other op): hidden statistics then never outnumber counted weights, and a buffer that `forward` also reads as
weights counts.

Counted numbers are float32-equivalents: a stored number counts max(1, its bytes / 4), so a float64 or
int64 counts 2 and a wide dtype holds no more than it is counted for; integer and boolean tensors count
the same way and the list names their dtype. Batch-norm statistics, not counted, are plain numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from grader.arch.graph_ops import BATCH_NORM as _BATCH_NORM, BN_STATS, Literal, dataflow, literal_numbers, op_name
from grader.facts import StoredFacts

ALLOWANCE = 1_000  # numbers outside trainable parameters and BN statistics that a course model may carry


def _bn_statistics(program: Any) -> set[str]:
    """State names of the buffers the graph uses as batch-norm running statistics only (see the docstring)."""
    sig = program.graph_signature
    image = dataflow(program).image
    stats = set()
    for node in program.graph.nodes:
        target = sig.inputs_to_buffers.get(node.name) if node.op == "placeholder" else None
        if target and node.users and all(_statistic_of(node, user, sig, image) for user in node.users):
            stats.add(target)
    return stats


def _statistic_of(buffer: Any, user: Any, sig: Any, image: frozenset[str]) -> bool:
    """Whether `user` reads `buffer` as the running statistics of a batch norm on the image, sized to its channels."""
    if user.op != "call_function" or op_name(user) not in _BATCH_NORM or buffer in user.kwargs.values():
        return False
    if any(arg is buffer for i, arg in enumerate(user.args) if i not in BN_STATS):
        return False
    source, weight = user.args[0], user.args[1] if len(user.args) > 1 else None
    if (weight is None or getattr(source, "name", None) not in image
            or getattr(weight, "name", None) not in sig.inputs_to_parameters):
        return False
    if len(weight.users) != 1:  # the layer's own weight: one shared by many would vouch for each one's statistics
        return False
    shape = list(getattr(buffer.meta.get("val"), "shape", ()))
    source_shape: Any = getattr(source.meta.get("val"), "shape", ())
    channels = source_shape[1] if len(source_shape) > 1 else None
    return (isinstance(channels, int) and shape == [channels]
            and list(getattr(weight.meta.get("val"), "shape", ())) == shape)


def stored_state(program: Any) -> StoredFacts:
    """The `model.stored.*` facts of an exported program."""
    sig = program.graph_signature
    state, constants = program.state_dict, program.constants
    buffers = [(n, state.get(n, constants.get(n))) for n in sig.buffers]
    return count(params=[(n, state[n]) for n in sig.parameters], buffers=[(n, t) for n, t in buffers if t is not None],
                 constants=[(n, constants[n]) for n in sig.lifted_tensor_constants
                            if hasattr(constants.get(n), "numel")],
                 bn=_bn_statistics(program), literals=literal_numbers(program))


def count(*, params: list[tuple[str, Any]], buffers: list[tuple[str, Any]], constants: list[tuple[str, Any]],
          bn: set[str], literals: Sequence[Literal] = ()) -> StoredFacts:
    """Sizes by kind; `bn`: the buffers used as batch-norm running statistics (their counters are added here);
    `literals`: the numbers written into the graph as data."""
    bn = bn | {f"{name.rsplit('.', 1)[0]}.num_batches_tracked" for name in bn if "." in name}
    sizes = {"trainable": 0, "frozen": 0, "buffers": 0, "bn_stats": 0, "constants": len(literals)}
    carried = []  # (counted numbers, line) outside trainable parameters and BN statistics
    for name, tensor in params:
        kind = "trainable" if tensor.requires_grad else "frozen"
        sizes[kind] += _counted(tensor)
        if kind == "frozen":
            carried.append((_counted(tensor), _line("frozen parameter", name, tensor)))
    for name, tensor in buffers:
        if name in bn and (not name.endswith("num_batches_tracked") or tensor.numel() == 1):
            sizes["bn_stats"] += tensor.numel()
        else:
            sizes["buffers"] += _counted(tensor)
            carried.append((_counted(tensor), _line("buffer", name, tensor)))
    for name, tensor in constants:
        sizes["constants"] += _counted(tensor)
        carried.append((_counted(tensor), _line("constant", name, tensor)))
    if literals:
        shown = ", ".join(f"{lit.value!r} at `{lit.node}`" for lit in literals[:3])
        carried.append((len(literals), f"literal numbers written into the graph ({len(literals):,}: {shown}"
                                       f"{', ...' if len(literals) > 3 else ''})"))
    extra = sizes["frozen"] + sizes["buffers"] + sizes["constants"]
    flagged = [line for _, line in sorted(carried, key=lambda c: -c[0])] if extra > ALLOWANCE else []
    counters = [int(t.reshape(-1)[0]) for n, t in buffers if n in bn and n.endswith("num_batches_tracked")
                and t.numel() == 1]
    return StoredFacts(**sizes, literals=len(literals), learned=sizes["trainable"] + extra, carried=extra,
                       flagged=flagged, bn_batches=max(counters, default=None))


def _counted(tensor: Any) -> int:
    """Float32-equivalent numbers: max(1, bytes / 4) each (a Keras weight, which has no dtype here, counts 1)."""
    size = getattr(tensor, "element_size", None)
    return tensor.numel() * max(1, (size() if size else 4) // 4)


def _line(kind: str, name: str, tensor: Any) -> str:
    """`buffer `keys` 10000x32 (320,000 numbers)`; a dtype other than float32 is named, with what it counts as."""
    shape = "x".join(map(str, tensor.shape)) or "scalar"
    numel, counted = tensor.numel(), _counted(tensor)
    dtype = str(getattr(tensor, "dtype", "float32")).replace("torch.", "")
    size = f"{numel:,} {'number' if numel == 1 else 'numbers'}"
    if dtype != "float32":
        size = f"{size} of {dtype}" + (f", counted as {counted:,}" if counted != numel else "")
    return f"{kind} `{name}` {shape} ({size})"
