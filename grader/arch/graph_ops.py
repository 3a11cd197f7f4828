"""Operators in an exported graph that a CNN does not need: the shapes a lookup of stored answers takes.

Pure: reads an `ExportedProgram`'s graph and state, runs nothing. The clean evaluation calls it on the
program it is about to measure, so what it reads is what gets scored.

A convolutional classifier maps pixels to ten scores with convolutions, pooling, normalisation,
activations and linear layers; the grader takes the argmax itself. What a memorised test set needs
instead, and what is flagged here:

- a distance to a stored table: `cdist` (or its pieces);
- an argmin / argmax inside the network (after a matmul against a large stored tensor, that is a
  nearest-neighbour search), or the indices of a max / min;
- data-dependent indexing or gathering: indices computed from the input pick rows of a tensor;
- equality tests (`eq`, `ne`, `isin`): an image compared with a stored one;
- sorting and top-k (`sort`, `argsort`, `topk`, `kthvalue`, `searchsorted`, `unique`).
"""

from __future__ import annotations

from typing import Any, Iterable

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


def op_name(node: Any) -> str:
    """`aten.cdist.default` -> `cdist`; a Python function (`operator.getitem`) -> its name."""
    target = node.target
    packet = getattr(target, "_overloadpacket", None)
    return getattr(packet, "__name__", None) or getattr(target, "__name__", str(target))


def _inputs(node: Any) -> list[Any]:
    return list(node.all_input_nodes)


def _stored(program: Any) -> dict[str, tuple[str, list[int]]]:
    """Placeholder name -> (state name, shape) for parameters, buffers and lifted constants."""
    sig = program.graph_signature
    names = {**sig.inputs_to_parameters, **sig.inputs_to_buffers, **sig.inputs_to_lifted_tensor_constants}
    out = {}
    for placeholder, target in names.items():
        tensor = program.state_dict.get(target, program.constants.get(target))
        out[placeholder] = (target, list(getattr(tensor, "shape", ())))
    return out


def _numel(shape: Iterable[int]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def unexpected_ops(program: Any) -> list[str]:
    """One line per lookup-shaped operator in the graph: what it is, its node, and the stored tensor it reads."""
    graph = program.graph
    stored = _stored(program)
    user = set(program.graph_signature.user_inputs)
    from_input: set[str] = set()  # nodes whose value depends on the images
    tables: dict[str, set[str]] = {p: {t} for p, (t, _) in stored.items()}  # node -> stored tensors it is made of
    reads: dict[str, set[str]] = {}  # node -> large stored tensors it (transitively) reads through matmul-like ops
    found: list[str] = []
    for node in graph.nodes:
        sources = _inputs(node)
        if node.op == "placeholder":
            if node.name in user:
                from_input.add(node.name)
            continue
        if any(s.name in from_input for s in sources):
            from_input.add(node.name)
        elif sources and all(s.name in tables for s in sources):  # keys.T, keys ** 2: still the stored table
            tables[node.name] = set().union(*(tables[s.name] for s in sources))
        name = op_name(node) if node.op == "call_function" else ""
        inherited = set().union(*(reads.get(s.name, set()) for s in sources)) if sources else set()
        if name in _MATMUL:
            inherited |= {t for s in sources if s.name not in from_input for t in tables.get(s.name, ())
                          if _numel(_shape_of(t, stored)) >= LARGE}
        if inherited:
            reads[node.name] = inherited
        if not name:
            continue
        where = f"node `{node.name}`"
        if name in _ALWAYS:
            found.append(f"{_ALWAYS[name]} at {where}{_reading(sources, stored)}")
        elif name in _ARG:
            after = f", after a matmul against the stored {_shown(sorted(inherited), stored)}" if inherited else ""
            found.append(f"an {name} inside the network at {where}{after}")
        elif name in ("max", "min") and _indices_used(node):
            found.append(f"the indices of a {name} at {where}")
        elif name in _INDEX:
            position = _INDEX[name]
            index_args = node.args[position:position + 1] if len(node.args) > position else ()
            if any(n.name in from_input for n in _flat_nodes(index_args)):
                found.append(f"data-dependent indexing ({name}) at {where}{_reading(sources, stored)}")
    return found


def _shape_of(target: str, stored: dict[str, tuple[str, list[int]]]) -> list[int]:
    return next((shape for name, shape in stored.values() if name == target), [])


def _flat_nodes(values: Any) -> list[Any]:
    """The graph nodes inside an argument (a node, or a list of them as `index` takes)."""
    out = []
    for value in values if isinstance(values, (list, tuple)) else [values]:
        if isinstance(value, (list, tuple)):
            out.extend(_flat_nodes(value))
        elif hasattr(value, "op") and hasattr(value, "name"):
            out.append(value)
    return out


def _indices_used(node: Any) -> bool:
    """`max(x, dim)` returns (values, indices): global max pooling reads only the values."""
    return any(op_name(user) == "getitem" and len(user.args) > 1 and user.args[1] == 1 and user.users
               for user in node.users)


def _reading(sources: list[Any], stored: dict[str, tuple[str, list[int]]]) -> str:
    names = sorted(stored[s.name][0] for s in sources if s.name in stored)
    return f", reading the stored {_shown(names, stored)}" if names else ""


def _shown(names: list[str], stored: dict[str, tuple[str, list[int]]]) -> str:
    shapes = {target: shape for target, shape in stored.values()}
    return ", ".join(f"`{n}` {'x'.join(map(str, shapes.get(n, []))) or 'scalar'}" for n in names)
