"""Kernel side: which module the notebook really trained, for torch optimizers and Keras `fit` alike.

Notebooks build several models (`model1` ... `model6`, `model` reassigned seven times, BN / GN / LN variants
trained in turn by a loop, a model built and trained inside `def train_model(): ...`); the one graded is the one
the last optimizer step (or the last `fit`) updated, unless the rubric names a variable. Optimizers are
followed, not variable names:

- `watch` registers torch's global parameter and child registration hooks, which run while modules are built,
  never while they train: they keep a weak set of the modules that own parameters or children, from which the
  tree holding an optimizer's parameters is found (`_root`) whether or not a notebook variable holds it;
- it wraps `torch.optim.Optimizer.__init__`, to know where each optimizer was built (the helper function) and,
  where nothing stepped (the training cells failed), which module the last optimizer built would have trained;
- the optimizer step hook and the `fit` wrapper call `stepped`;
- the root modules of the most recent optimizers are held (`_KEPT` of them), so a model that a helper built,
  trained and dropped is still there at the end.

`trained_in` and `last_built` name what was found after the notebook ran: by the notebook variable (or list or
dict item) that holds it, else by where it was trained ("the Net trained inside `train_model()`"; such labels
hold a space, variable names never do).

Standard library only at module level; never raises into the student's code.
"""

from __future__ import annotations

import functools
import sys
import weakref
from collections.abc import Callable
from typing import Any

_KEPT = 4  # root modules held strongly: the most recently built or stepped optimizers'
_CONTAINER_ITEMS = 64  # a notebook list or dict larger than this is not searched for models
_HISTORY = ("In", "Out")  # IPython's cell history: a cell's last value is no name the student gave it

# one entry per optimizer (torch) or model (Keras fit): the ids of the parameters it updates, taken when it was
# built or first updated, so that a model trained by an optimizer the notebook has since dropped is still known
_updates: list[dict[str, Any]] = []  # those that updated, in order of their first update
_by_owner: dict[int, dict[str, Any]] = {}
_last_built: list[dict[str, Any]] = []  # the last torch optimizer built (at most one entry)
_kept: list[Any] = []  # strong references, the most recent last
_owners: weakref.WeakSet[Any] = weakref.WeakSet()  # modules that registered a parameter or a child module
_last_root: list[Any] = []  # (parameter ids, weak root): optimizers rebuilt on the same parameters cost nothing
_clock = [0]


def watch() -> None:
    """Called once by the harness set-up, before the student's cells."""
    import torch
    from torch.nn.modules.module import (
        register_module_module_registration_hook,
        register_module_parameter_registration_hook,
    )

    register_module_parameter_registration_hook(_registered)
    register_module_module_registration_hook(_registered)
    init = torch.optim.Optimizer.__init__

    @functools.wraps(init)
    def built(self, *args, **kwargs):
        init(self, *args, **kwargs)
        try:
            _built(self, sys._getframe(1))
        except Exception:  # following optimizers must never break the student's code
            pass

    optimizer_class: Any = torch.optim.Optimizer  # its method replaced at run time: more than its type can say
    optimizer_class.__init__ = built


def _registered(module, name, value) -> None:
    """Both registration hooks: returns None, so the parameter or child is registered as given."""
    try:
        _owners.add(module)
    except TypeError:  # a module class that made itself unhashable: its parameters are found through globals
        pass


def _built(optimizer, frame) -> None:
    entry = _entry(optimizer, "optimizer step")
    entry["where"] = _where(optimizer, frame)
    _last_built[:] = [entry]
    _keep(entry["root"]())


def stepped(owner: Any, kind: str) -> None:
    """Record an update: `owner` is a torch optimizer (kind "optimizer step") or a Keras model ("fit")."""
    _clock[0] += 1
    entry = _by_owner.get(id(owner))
    if entry is None or entry["ref"]() is not owner:  # built before watch(), or an old owner's id reused
        entry = _entry(owner, kind)
    if not entry["count"]:
        _updates.append(entry)
    entry["count"] += 1
    entry["last"] = _clock[0]
    root = entry["root"]()
    if not _kept or _kept[-1] is not root:
        _keep(root)


def _entry(owner: Any, kind: str) -> dict[str, Any]:
    ref: Callable[[], Any]
    try:
        ref = weakref.ref(owner)
    except TypeError:
        ref = lambda: owner  # noqa: E731 - a strong reference where no weak one is possible
    params = _param_ids(owner, kind)
    root = owner if kind == "fit" else _root(params)
    entry = {"ref": ref, "kind": kind, "count": 0, "last": 0, "params": params, "root": _weak(root), "where": None}
    _by_owner[id(owner)] = entry
    return entry


def _weak(module: Any):
    try:
        return weakref.ref(module)
    except TypeError:
        return lambda module=module: module


def _keep(module: Any) -> None:
    if module is None:
        return
    _kept[:] = [m for m in _kept if m is not module][-(_KEPT - 1):] + [module]


def _param_ids(owner: Any, kind: str) -> frozenset[int]:
    if kind == "fit":
        return frozenset(id(p) for p in _module_params(owner))
    return frozenset(id(p) for group in getattr(owner, "param_groups", []) for p in group.get("params", []))


def _module_params(module: Any) -> list:
    try:
        return list(module.parameters())
    except Exception:
        return []


def _root(params: frozenset[int]) -> Any:
    """The top of the module tree that holds most of `params` (the smallest such tree when several do), from the
    modules the registration hooks saw; None when no module registered them."""
    if not params:
        return None
    if _last_root and _last_root[0] == params and _last_root[1]() is not None:
        return _last_root[1]()
    parents: dict[int, list[Any]] = {}
    holders = []
    for module in list(_owners):
        for child in list(getattr(module, "_modules", {}).values()):
            if child is not None:
                parents.setdefault(id(child), []).append(module)
        if any(p is not None and id(p) in params for p in list(getattr(module, "_parameters", {}).values())):
            holders.append(module)
    tops: dict[int, Any] = {}
    seen: set[int] = set()
    stack = holders
    while stack:
        module = stack.pop()
        if id(module) in seen:
            continue
        seen.add(id(module))
        above = parents.get(id(module))
        if above:
            stack.extend(above)
        else:
            tops[id(module)] = module
    best = _best(params, list(tops.values()))
    root = best[1] if best else None
    if root is not None:
        _last_root[:] = [params, _weak(root)]
    return root


def _best(params: frozenset[int], modules: list[Any]) -> tuple[int, Any, int] | None:
    """(overlap, module, parameter count) of the module holding most of `params`, the smallest on a tie, the
    first of equals."""
    best = None
    for module in modules:
        own = _module_params(module)
        overlap = sum(id(p) in params for p in own)
        if overlap and (best is None or (overlap, -len(own)) > (best[0], -best[2])):
            best = (overlap, module, len(own))
    return best


def _where(optimizer, frame) -> str | None:
    """The function the optimizer was built in, as `train_model()` or `utils.fit(norm='ln')` (its simple
    arguments shown); None at the top level of a cell."""
    while frame is not None and (frame.f_globals.get("__name__", "").startswith("torch.")
                                 or frame.f_locals.get("self") is optimizer):  # torch's, and subclasses' __init__
        frame = frame.f_back
    if frame is None or frame.f_code.co_name == "<module>":
        return None
    code = frame.f_code
    module = frame.f_globals.get("__name__", "")
    name = getattr(code, "co_qualname", code.co_name)
    shown = []
    for arg in code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]:
        value = frame.f_locals.get(arg)
        if isinstance(value, (str, int, float, bool)) and len(repr(value)) <= 24:
            shown.append(f"{arg}={value!r}")
    return f"{'' if module == '__main__' else module + '.'}{name}({', '.join(shown)})"


def _names(namespace: dict[str, Any], prefer: str) -> dict[int, tuple[str, Any]]:
    """id -> (name, module) of the modules notebook variables hold, else items of its lists and dicts hold
    (`models[2]`, `results['ln']`). A module under several names is given by `prefer` when that is one of them,
    else by its first name."""
    import torch

    names: dict[int, tuple[str, Any]] = {}
    for name, value in list(namespace.items()):
        if isinstance(value, torch.nn.Module) and not name.startswith("_"):
            if id(value) not in names or name == prefer:
                names[id(value)] = (name, value)
    for name, value in list(namespace.items()):
        if name.startswith("_") or name in _HISTORY:
            continue
        try:
            if isinstance(value, (list, tuple)) and len(value) <= _CONTAINER_ITEMS:
                items: list[tuple[str | int, Any]] = list(enumerate(value))
            elif isinstance(value, dict) and len(value) <= _CONTAINER_ITEMS:
                items = [(k, v) for k, v in list(value.items()) if isinstance(k, (str, int))]
            else:
                continue
        except Exception:  # a student's container class that fails to list itself
            continue
        for key, item in items:
            label = f"{name}[{key!r}]"
            if isinstance(item, torch.nn.Module) and id(item) not in names and not any(c.isspace() for c in label):
                names[id(item)] = (label, item)
    return names


def _graded(entry: dict[str, Any], names: dict[int, tuple[str, Any]]) -> dict[str, Any] | None:
    """The module `entry`'s updates went to, among the notebook's named modules and the root the hooks found."""
    modules = [module for _, module in names.values()]
    root = entry["root"]()
    if root is not None and id(root) not in names:
        modules.append(root)
    best = _best(entry["params"], modules)
    if best is None:
        return None
    overlap, module, size = best
    if id(module) in names:
        variable = names[id(module)][0]
    elif entry["where"]:
        variable = f"the {type(module).__name__} trained inside `{entry['where']}`"
    else:
        variable = f"a {type(module).__name__} that no notebook variable holds"
    return {"variable": variable, "module": module, "kind": entry["kind"], "updates": entry["count"],
            "share": round(overlap / size, 3) if size else 0.0}


def shown(variable: str) -> str:
    """How a report names a graded module: a variable in backticks, a label (which holds a space) as it is."""
    return variable if any(c.isspace() for c in variable) else f"`{variable}`"


def trained_in(namespace: dict[str, Any], prefer: str = "model") -> list[dict[str, Any]]:
    """Every module an optimizer step or a fit updated, the most recent first:
    [{"variable", "module", "kind", "updates", "share"}], `share` being the part of the module's parameters updated,
    `variable` the notebook variable holding it or, for none, a label saying where it was trained."""
    names = _names(namespace, prefer)
    found, seen = [], set()
    for entry in sorted(_updates, key=lambda e: -e["last"]):
        graded = _graded(entry, names)
        if graded is None or id(graded["module"]) in seen:
            continue
        seen.add(id(graded["module"]))
        found.append(graded)
    return found


def last_built(namespace: dict[str, Any], prefer: str = "model") -> dict[str, Any] | None:
    """The module the last torch optimizer built holds (what a run whose training failed before a step would have
    trained),
    as `trained_in` gives one; None: no optimizer was built."""
    return _graded(_last_built[0], _names(namespace, prefer)) if _last_built else None
