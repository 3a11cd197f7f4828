"""Every number an exported model stores, by kind: what it learned, and what it merely carries.

Pure: reads an `ExportedProgram`'s signature, state and graph (or a TorchScript module's parameters, buffers,
tensor constants and graph). Batch-norm running statistics are
told apart by how the graph uses them (the running mean / variance arguments of a batch-norm op),
not by their names, which the student chose.

Kinds: trainable parameters; frozen parameters (requires_grad=False); buffers; batch-norm running
statistics (with their `num_batches_tracked` counters); constants lifted into the program (tensors
that `forward` captured from outside the module). "Learned numbers", what a budget counts, are all
of them but the batch-norm statistics. Frozen parameters, buffers and constants together beyond
`ALLOWANCE` numbers are listed tensor by tensor for the instructor: a CNN keeps nothing there.
"""

from __future__ import annotations

from typing import Any

from grader.arch.graph_ops import op_name
from grader.facts import StoredFacts

ALLOWANCE = 1_000  # numbers outside trainable parameters and BN statistics that a course model may carry
_BATCH_NORM = {"batch_norm", "native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training",
               "_batch_norm_with_update", "_batch_norm_no_update", "cudnn_batch_norm", "miopen_batch_norm",
               "instance_norm"}  # running_mean, running_var are arguments 3 and 4 of each


def _bn_statistics(program: Any) -> set[str]:
    """State names the graph feeds to a batch-norm op as running mean / variance."""
    to_buffer = program.graph_signature.inputs_to_buffers
    stats = set()
    for node in program.graph.nodes:
        if node.op == "call_function" and op_name(node) in _BATCH_NORM:
            stats |= {to_buffer[a.name] for a in node.args[3:5] if getattr(a, "name", None) in to_buffer}
    return stats


def stored_state(program: Any) -> StoredFacts:
    """The `model.stored.*` facts of an exported program."""
    sig = program.graph_signature
    state, constants = program.state_dict, program.constants
    buffers = [(n, state.get(n, constants.get(n))) for n in sig.buffers]
    return count(params=[(n, state[n]) for n in sig.parameters], buffers=[(n, t) for n, t in buffers if t is not None],
                 constants=[(n, constants[n]) for n in sig.lifted_tensor_constants if hasattr(constants.get(n), "numel")],
                 bn=_bn_statistics(program))


def stored_state_torchscript(module: Any) -> StoredFacts:
    """The same for a TorchScript module: tensors baked into its graph count as constants."""
    graph = module.inlined_graph
    paths = {next(iter(graph.inputs())).debugName(): ""}
    bn, constants = set(), []
    for node in graph.nodes():
        kind, ins = node.kind(), list(node.inputs())
        if kind == "prim::GetAttr" and ins[0].debugName() in paths:
            paths[node.output().debugName()] = f"{paths[ins[0].debugName()]}.{node.s('name')}".lstrip(".")
        elif kind == "prim::Constant" and node.output().type().kind() == "TensorType":
            constants.append((f"%{node.output().debugName()}", node.output().toIValue()))
        elif kind.startswith("aten::") and kind[6:] in _BATCH_NORM:
            bn |= {paths[v.debugName()] for v in ins[3:5] if v.debugName() in paths}
    return count(params=list(module.named_parameters()), buffers=list(module.named_buffers()), constants=constants,
                 bn=bn)


def count(*, params: list[tuple[str, Any]], buffers: list[tuple[str, Any]], constants: list[tuple[str, Any]],
          bn: set[str]) -> StoredFacts:
    """Sizes by kind; `bn`: the buffers used as batch-norm running statistics (their counters are added here)."""
    bn = bn | {f"{name.rsplit('.', 1)[0]}.num_batches_tracked" for name in bn if "." in name}
    sizes = {"trainable": 0, "frozen": 0, "buffers": 0, "bn_stats": 0, "constants": 0}
    carried = []  # (kind, name, tensor) outside trainable parameters and BN statistics
    for name, tensor in params:
        kind = "trainable" if tensor.requires_grad else "frozen"
        sizes[kind] += tensor.numel()
        if kind == "frozen":
            carried.append(("frozen parameter", name, tensor))
    for name, tensor in buffers:
        if name in bn and (not name.endswith("num_batches_tracked") or tensor.numel() == 1):
            sizes["bn_stats"] += tensor.numel()
        else:
            sizes["buffers"] += tensor.numel()
            carried.append(("buffer", name, tensor))
    for name, tensor in constants:
        sizes["constants"] += tensor.numel()
        carried.append(("constant", name, tensor))
    extra = sizes["frozen"] + sizes["buffers"] + sizes["constants"]
    flagged = []
    if extra > ALLOWANCE:
        carried.sort(key=lambda c: -c[2].numel())
        flagged = [f"{kind} `{name}` {'x'.join(map(str, tensor.shape)) or 'scalar'} ({tensor.numel():,} "
                   f"{'number' if tensor.numel() == 1 else 'numbers'})" for kind, name, tensor in carried]
    counters = [int(t.reshape(-1)[0]) for n, t in buffers if n in bn and n.endswith("num_batches_tracked")
                and t.numel() == 1]
    return StoredFacts(**sizes, learned=sizes["trainable"] + extra, carried=extra, flagged=flagged,
                       bn_batches=max(counters, default=None))
