"""Every number an exported model stores, by kind: what it learned, and what it merely carries.

Pure: reads an `ExportedProgram`'s signature, state and graph. Batch-norm running statistics are
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
    """State names the graph feeds to a batch-norm op as running mean / variance, plus their counters."""
    to_buffer = program.graph_signature.inputs_to_buffers
    stats = set()
    for node in program.graph.nodes:
        if node.op == "call_function" and op_name(node) in _BATCH_NORM:
            for arg in node.args[3:5]:
                name = getattr(arg, "name", None)
                if name in to_buffer:
                    stats.add(to_buffer[name])
    prefixes = {s.rsplit(".", 1)[0] for s in stats if "." in s}
    counters = {f"{p}.num_batches_tracked" for p in prefixes}
    return stats | counters


def stored_state(program: Any) -> StoredFacts:
    """The `model.stored.*` facts of an exported program."""
    sig = program.graph_signature
    state, constants = program.state_dict, program.constants
    bn = _bn_statistics(program)
    sizes = {"trainable": 0, "frozen": 0, "buffers": 0, "bn_stats": 0, "constants": 0}
    carried = []  # (kind, name, shape, numel) outside trainable parameters and BN statistics
    for name in sig.parameters:
        tensor = state[name]
        kind = "trainable" if tensor.requires_grad else "frozen"
        sizes[kind] += tensor.numel()
        if kind == "frozen":
            carried.append(("frozen parameter", name, tensor))
    for name in sig.buffers:
        tensor = state.get(name, constants.get(name))
        if tensor is None:
            continue
        if name in bn and (not name.endswith("num_batches_tracked") or tensor.numel() == 1):
            sizes["bn_stats"] += tensor.numel()
            continue
        sizes["buffers"] += tensor.numel()
        carried.append(("buffer", name, tensor))
    for name in sig.lifted_tensor_constants:
        tensor = constants.get(name)
        if tensor is not None and hasattr(tensor, "numel"):
            sizes["constants"] += tensor.numel()
            carried.append(("lifted constant", name, tensor))
    extra = sizes["frozen"] + sizes["buffers"] + sizes["constants"]
    flagged = None
    if extra > ALLOWANCE:
        carried.sort(key=lambda c: -c[2].numel())
        flagged = [f"{kind} `{name}` {'x'.join(map(str, tensor.shape)) or 'scalar'} ({tensor.numel():,} numbers)"
                   for kind, name, tensor in carried]
    return StoredFacts(**sizes, learned=sizes["trainable"] + extra, carried=extra, flagged=flagged or [])
