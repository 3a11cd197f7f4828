"""Kernel side: which module the notebook really trained, for torch optimizers and Keras `fit` alike.

Notebooks build several models (`model1` ... `model6`, or `model` reassigned seven
times); the one graded is the one the last optimizer step (or the last `fit`) updated,
unless the rubric names a variable. The optimizer step hook and the `fit` wrapper call
`stepped`; `trained_in` maps what was stepped back to the notebook's variables.

Standard library only at module level; never raises into the student's code.
"""

from __future__ import annotations

import weakref
from typing import Any

# one entry per optimizer (torch) or model (Keras fit): the ids of the parameters it updates, taken at its
# first update, so that a model trained by an optimizer the notebook has since dropped is still known
_updates: list[dict[str, Any]] = []
_by_owner: dict[int, dict[str, Any]] = {}
_clock = [0]


def stepped(owner: Any, kind: str) -> None:
    """Record an update: `owner` is a torch optimizer (kind "optimizer step") or a Keras model ("fit")."""
    _clock[0] += 1
    entry = _by_owner.get(id(owner))
    if entry is None or entry["ref"]() is not owner:  # new, or an old owner's id reused after it was freed
        try:
            ref = weakref.ref(owner)
        except TypeError:
            ref = lambda owner=owner: owner  # noqa: E731 - a strong reference where no weak one is possible
        entry = {"ref": ref, "kind": kind, "count": 0, "params": _param_ids(owner, kind)}
        _by_owner[id(owner)] = entry
        _updates.append(entry)
    entry["count"] += 1
    entry["last"] = _clock[0]


def _param_ids(owner: Any, kind: str) -> frozenset[int]:
    if kind == "fit":
        return frozenset(id(p) for p in _module_params(owner))
    return frozenset(id(p) for group in getattr(owner, "param_groups", []) for p in group.get("params", []))


def _module_params(module: Any) -> list:
    try:
        return list(module.parameters())
    except Exception:
        return []


def trained_in(namespace: dict[str, Any], prefer: str = "model") -> list[dict[str, Any]]:
    """Every notebook variable whose module an optimizer step or a fit updated, the most recent first:
    [{"variable", "module", "kind", "updates", "share"}], `share` being the part of the module's parameters updated.
    A module under several names is given by `prefer` when that is one of them, else by its first name."""
    import torch

    modules: dict[int, tuple[str, Any]] = {}
    for name, value in namespace.items():
        if isinstance(value, torch.nn.Module) and not name.startswith("_"):
            if id(value) not in modules or name == prefer:
                modules[id(value)] = (name, value)
    found, seen = [], set()
    for entry in sorted(_updates, key=lambda e: -e["last"]):
        updated = entry["params"]
        best = None
        for name, module in modules.values():
            params = _module_params(module)
            overlap = sum(id(p) in updated for p in params)
            if overlap and (best is None or (overlap, -len(params)) > (best[0], -best[1])):
                best = (overlap, len(params), name, module)
        if best is None or id(best[3]) in seen:
            continue
        seen.add(id(best[3]))
        found.append({"variable": best[2], "module": best[3], "kind": entry["kind"], "updates": entry["count"],
                      "share": round(best[0] / best[1], 3) if best[1] else 0.0})
    return found
