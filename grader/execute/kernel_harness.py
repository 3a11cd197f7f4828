"""Harness code that runs inside the student's kernel, before and after the student's cells.

Before: counters the student does not write (optimizer steps; samples and batches that data loaders
hand out while gradients are on, per dataset; batches handed out with gradients off; the optimizers that
stepped, whose own step counts are read at the end), in dry-run mode data loaders that yield a few fixed
batches once (`_dry_pass`), and the run's CPU budget (grader.execute.cpu_budget: torch's pools, DataLoader workers).
The counters live in closures made by `install`, not in a module global a cell could set
(`kernel_harness._state["samples_seen"] = ...`). That keeps them out of easy reach, not out of reach:
this is the student's process, so the host labels them as such and checks the epoch count against
figures kept elsewhere (grader.epochs_check).
After: find the model, check it maps 1x1x28x28 to 10 scores, export it (torch.export with a dynamic batch,
else pinned to 1000 images; never predictions made here), and record the test-time preprocessing. Everything it
learns goes to a JSON file in the output folder; the host treats that file as untrusted and measures accuracy itself.

It runs in the student's process, so it must stay small and never raise into the student's code. Besides the
standard library, torch (numpy, PIL and IPython where it reads an image or the shell), it imports six grader
modules, each written for the kernel: cpu_budget, keras_harness and trained when it is imported; compat (with the
profiles a rubric asks for) and kernel_pip in `install`; grader.data.transforms, which needs pydantic, when it
reads the notebook's test transform. None of them imports the rest of the grader.
"""

from __future__ import annotations

import json
import os
import time
import traceback
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from grader.execute import cpu_budget, keras_harness, trained


def _new_state(dry_run: bool = False) -> dict[str, Any]:
    return {"optimizer_steps": 0, "samples_seen": 0, "no_grad_batches": 0, "datasets": {}, "started": time.time(),
            "device": "cpu", "dry_run": dry_run, "counting": True, "fitted": weakref.WeakSet(),  # Keras models
            "dry_done": weakref.WeakSet(), "dry_passes_emptied": 0}  # a dry run: loaders past their one full pass


# Replaced by install(): closures over the run's counts, which no module-level name holds.
_read_counters: Callable[[], dict[str, Any]] = lambda: _counters(_new_state(), ())  # noqa: E731
_stop_counting: Callable[[], None] = lambda: None  # noqa: E731


def _batch_size(batch) -> int:
    """Images in a batch as a DataLoader yields it: (data, target), a dict, or a tensor."""
    first = batch
    while isinstance(first, (list, tuple)) and first:
        first = first[0]
    if isinstance(first, dict) and first:
        first = next(iter(first.values()))
    shape = getattr(first, "shape", None)
    return int(shape[0]) if shape else 0


class _CountingIterator:
    """A DataLoader iterator that hands each batch to `count` (a closure over the counts) before the loop gets it.

    Counting at the loader, not with global module hooks: hooks on every module call
    cost 10-20% of a small CPU training run (torchvision's Normalize is a module too).
    """

    def __init__(self, inner, count: Callable[[Any], None]):
        self._inner, self._count = inner, count

    def __iter__(self):
        return self

    def __next__(self):
        batch = next(self._inner)
        self._count(batch)
        return batch

    def __len__(self):
        return len(self._inner)

    def __getattr__(self, name):  # old code calls dataiter.next(): let it fail as it would without us
        return getattr(self._inner, name)


def _optimizer_stepped(state: dict[str, Any], optimizers: weakref.WeakSet[Any]):
    """The post-step hook: counts the step and keeps (weakly) the optimizer, whose own step count
    `_optimizer_state_steps` reads at the end."""

    def hook(optimizer, args, kwargs):
        state["optimizer_steps"] += 1
        trained.stepped(optimizer, "optimizer step")
        try:
            optimizers.add(optimizer)
        except TypeError:
            pass
        if state["optimizer_steps"] == 1:
            try:
                state["device"] = optimizer.param_groups[0]["params"][0].device.type
            except (IndexError, KeyError, AttributeError):
                pass

    return hook


def _optimizer_state_steps(optimizers, fitted) -> int | None:
    """The largest per-parameter `step` any torch optimizer keeps in its own state (Adam, AdamW, RMSprop,
    Adagrad...; one per optimizer step), or a fitted Keras model's optimizer its `iterations`. None: no optimizer
    keeps one (SGD), or none stepped."""
    steps = [keras_harness.iterations(model) for model in list(fitted)]
    for optimizer in list(optimizers):
        for param_state in list(getattr(optimizer, "state", {}).values()):
            step = param_state.get("step") if isinstance(param_state, dict) else None
            if step is None:
                continue
            try:
                steps.append(int(step.item() if hasattr(step, "item") else step))
            except (TypeError, ValueError, RuntimeError):
                continue
    return max(steps) if steps else None


# A dry run's loader hands out this many batches of fixed images, on one full pass (one epoch); later passes are
# empty. Enough for the training and test code to run once, on real digits, at a fraction of a second's cost.
DRY_RUN_BATCHES = 2


def _spread(size: int, count: int) -> list[int]:
    """`count` indices spread evenly over a dataset of `size` items: the same subset on every run."""
    count = min(size, count)
    return [i * size // count for i in range(count)]


def _dry_pass(loader, original_iter) -> tuple[Any, int]:
    """(a DataLoader iterator, how many batches to take from it) for one pass of a dry run's loader: DRY_RUN_BATCHES
    batches of fixed images of its dataset, batched and collated as the loader would (its batch size, its
    collate_fn), in order, with no workers. A loader the grader cannot re-sample (an iterable dataset, a batch
    sampler of its own) gives its own first DRY_RUN_BATCHES batches."""
    from torch.utils.data import BatchSampler, DataLoader, IterableDataset

    dataset = loader.dataset
    if loader.batch_sampler is not None:  # batch_size=N: lists of indices, collated
        per_batch = getattr(loader.batch_sampler, "batch_size", None)
    elif isinstance(loader.sampler, BatchSampler):  # batch_size=None over a sampler of whole batches (s3's reference)
        per_batch = loader.sampler.batch_size
    else:  # batch_size=None: one index per item the loop gets
        per_batch = 1
    try:
        size = len(dataset)
    except TypeError:
        size = None
    if isinstance(dataset, IterableDataset) or size is None or not isinstance(per_batch, int) or per_batch < 1:
        try:
            length = min(DRY_RUN_BATCHES, len(loader))
        except TypeError:
            length = DRY_RUN_BATCHES
        return original_iter(loader), length
    chosen = _spread(size, DRY_RUN_BATCHES * per_batch)
    if loader.batch_sampler is None and per_batch == 1:  # batch_size=None: each index is one item the loop gets
        fixed = DataLoader(dataset, batch_size=None, sampler=chosen, collate_fn=loader.collate_fn)
    else:
        batches = [chosen[i:i + per_batch] for i in range(0, len(chosen), per_batch)]
        fixed = (DataLoader(dataset, batch_sampler=batches, collate_fn=loader.collate_fn)
                 if loader.batch_sampler is not None else  # a BatchSampler given as the sampler, batch_size=None
                 DataLoader(dataset, batch_size=None, sampler=batches, collate_fn=loader.collate_fn))
    return original_iter(fixed), len(fixed)


class _OnePass:
    """One pass of a dry run's loader: the first `length` batches of `inner` (`_dry_pass`); `done` is called once
    they are all handed out (the loader's one full pass)."""

    def __init__(self, inner, length: int, done: Callable[[], None]):
        self._inner, self._left, self._done = inner, length, done

    def __iter__(self):
        return self

    def __next__(self):
        if self._left <= 0:
            self._done()
            raise StopIteration
        try:
            batch = next(self._inner)
        except StopIteration:
            self._done()
            raise
        self._left -= 1
        return batch

    def __len__(self):
        return self._left

    def __getattr__(self, name):  # dataiter.next(): as the loader's own iterator has it (compat torch-1.x) or not
        return getattr(self._inner, name)


def _dataset_train_flag(dataset) -> bool | None:
    flag = getattr(dataset, "train", None)
    if flag is None and hasattr(dataset, "dataset"):  # Subset, random_split
        return _dataset_train_flag(dataset.dataset)
    return flag if isinstance(flag, bool) else None


def install(dry_run: bool = False, compat: list[str] | tuple[str, ...] = (), keras: bool = False,
            root: str | None = None, notebook_dir: str | None = None) -> None:
    """Called by the first (hidden) cell. `compat`: the rubric's compat profiles (grader.execute.compat);
    `keras`: the notebook imports keras (grader.execute.keras_harness); `root`, `notebook_dir`: the hand-in's
    root folder and the notebook's folder inside the sandbox (both on sys.path; the kernel runs in the latter)."""
    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook
    from torch.utils.data import DataLoader

    from grader.execute import compat as compat_shims, kernel_pip

    global _read_counters, _stop_counting

    state = _new_state(dry_run)
    optimizers: weakref.WeakSet[Any] = weakref.WeakSet()
    budget = cpu_budget.cpus()
    if budget is not None:  # before the student's first cell: torch's pools can be sized only once they are idle
        try:
            cpu_budget.apply_torch(budget)
        except Exception as exc:  # the thread variables still hold; the run goes on without the rest
            cpu_budget.note(f"the CPU budget could not be applied to torch: {exc.__class__.__name__}: {exc}")
    if keras:
        try:
            keras_harness.install(state)
        except ImportError:  # the environment has no keras: the student's import says so
            pass
    compat_shims.load(list(compat), root=root, notebook_dir=notebook_dir)
    try:
        from IPython import get_ipython

        if get_ipython() is not None:
            kernel_pip.install(get_ipython())
    except ImportError:
        pass
    trained.watch()
    register_optimizer_step_post_hook(_optimizer_stepped(state, optimizers))
    original_iter = DataLoader.__iter__

    def counting_iter(loader):
        dataset = loader.dataset
        try:
            size = len(dataset)
        except TypeError:
            size = None
        entry = state["datasets"].setdefault(str(id(dataset)), {
            "type": type(dataset).__name__, "size": size, "train": _dataset_train_flag(dataset), "passes": 0,
            "samples": 0, "batches": 0, "batches_per_pass": None})
        entry["passes"] += 1
        try:  # the loader's own length, not samples / batches: those are what a cross-check must not derive from
            entry["batches_per_pass"] = len(loader)
        except Exception:  # an iterable dataset, a sampler without a length: never raised into the student's loop
            pass
        if state["dry_run"] and state["counting"]:  # Keras's own loaders (fit on one batch, predict) stay full
            if loader in state["dry_done"]:  # one epoch: the loop still runs, on no batches
                state["dry_passes_emptied"] += 1
                return iter(())
            source: Iterator[Any] = _OnePass(*_dry_pass(loader, original_iter), lambda: state["dry_done"].add(loader))
        else:
            source = original_iter(loader)

        def count(batch) -> None:
            """Samples and batches handed to a training loop (grad enabled); batches handed out with gradients off
            (an evaluation loop: in training mode, it too moves the batch-norm counters)."""
            if not state["counting"]:
                return
            if torch.is_grad_enabled():
                size = _batch_size(batch)
                state["samples_seen"] += size
                entry["samples"] += size
                entry["batches"] += 1
            else:
                state["no_grad_batches"] += 1

        return _CountingIterator(source, count)

    loader_class: Any = DataLoader  # its method replaced at run time: more than its declared type can say
    loader_class.__iter__ = counting_iter
    _read_counters = lambda: _counters(state, optimizers)  # noqa: E731
    _stop_counting = lambda: state.update(counting=False)  # noqa: E731


def _train_set(state: dict[str, Any]) -> dict[str, Any] | None:
    """The dataset training batches came from (the largest, if several)."""
    sets = [d for d in state["datasets"].values() if d["samples"] and d["size"] and d["train"] is not False]
    return max(sets, key=lambda d: d["size"]) if sets else None


def _counters(state: dict[str, Any], optimizers) -> dict[str, Any]:
    train_set = _train_set(state)
    size = train_set["size"] if train_set else None
    return {
        "optimizer_steps": state["optimizer_steps"],
        "samples_seen": state["samples_seen"],
        "epochs": round(state["samples_seen"] / size, 3) if size else None,
        "train_size": size,
        "batches_per_epoch": train_set.get("batches_per_pass") if train_set else None,
        "no_grad_batches": state["no_grad_batches"],
        "optimizer_state_steps": _optimizer_state_steps(optimizers, state["fitted"]),
        "seconds": round(time.time() - state["started"], 3),
        "device": state["device"],
        "datasets": list(state["datasets"].values()),
        "dry_passes_emptied": state["dry_passes_emptied"],
    }


def counters() -> dict[str, Any]:
    """The run's counts so far (what install()'s closures hold)."""
    return _read_counters()


def _modules_in(namespace: dict[str, Any]):
    import torch

    return [(name, value) for name, value in namespace.items()
            if isinstance(value, torch.nn.Module) and not name.startswith("_")]


def _maps_to_ten(module) -> bool:
    import torch

    try:
        device = next(module.parameters()).device
    except StopIteration:
        return False
    was_training = module.training
    try:
        module.eval()
        with torch.no_grad():
            out = module(torch.zeros(1, 1, 28, 28, device=device))
        return isinstance(out, torch.Tensor) and tuple(out.shape) == (1, 10)
    except Exception:
        return False
    finally:
        module.train(was_training)


def find_model(namespace: dict[str, Any], variable: str, named: bool = True,
               dry_run: bool = False) -> tuple[str | None, Any, str]:
    """(name, module, how) of the model to grade: the variable the rubric names (`named`), else the module the
    last optimizer step or fit updated (grader.execute.trained), else, nothing having stepped (training failed), the one
    the last optimizer built holds, else `variable`, else the one module mapping to 10 scores. In a dry run the
    last torch optimizer built comes first: loaders yield batches on their first pass only, so a model trained
    after another on the same loader never steps there. `name` is the notebook variable holding the module or,
    for none, a label saying where it was trained."""
    import torch

    value = namespace.get(variable)
    if named and isinstance(value, torch.nn.Module):
        return variable, value, f"`{variable}` is named as the model to grade (the rubric's model: or --variable)"
    updated = trained.trained_in(namespace, prefer=variable)
    built = trained.last_built(namespace, prefer=variable)
    if dry_run and built:
        updated = []
    last = updated[0] if updated else built
    if last:
        held = trained.shown(last["variable"])
        if updated:
            how, other = f"the last {last['kind']} updated the parameters of {held}", "which that step did not update"
        else:
            why = ("in a dry run, which trains once on two batches per loader" if dry_run else
                   "nothing was trained (no optimizer step: the training cells failed or never stepped)")
            how = f"{why}; the last optimizer built holds the parameters of {held}"
            other = "which that optimizer does not hold"
        if isinstance(value, torch.nn.Module) and value is not last["module"]:
            how += f" (`{variable}` holds another module, {other})"
        return last["variable"], last["module"], how
    if isinstance(value, torch.nn.Module):
        return variable, value, f"the variable `{variable}`"
    candidates = [(n, m) for n, m in _modules_in(namespace) if _maps_to_ten(m)]
    distinct = {id(m): (n, m) for n, m in candidates}
    if len(distinct) == 1:
        name, module = next(iter(distinct.values()))
        return name, module, f"`{variable}` is not a model; `{name}` is the only module mapping 1x1x28x28 to 10 scores"
    if not distinct:
        return None, None, (f"no variable `{variable}` holding a torch.nn.Module, and no module in the notebook "
                            "maps a 1x1x28x28 input to 10 scores")
    names = ", ".join(sorted(n for n, _ in distinct.values()))
    return None, None, f"no variable `{variable}`, and several modules could be the model ({names})"


def _probe_images(namespace: dict[str, Any]):
    """The student's test dataset (train=False), else the training one, as seen through its transform."""
    from torch.utils.data import DataLoader, Dataset

    datasets = []
    for value in namespace.values():
        if isinstance(value, DataLoader):
            value = value.dataset
        if isinstance(value, Dataset) and hasattr(value, "data") and hasattr(value, "transform"):
            datasets.append(value)
    datasets.sort(key=lambda d: getattr(d, "train", True))  # test sets (train=False) first
    return datasets


def probe_preprocessing(namespace: dict[str, Any], raw_images) -> dict[str, Any]:
    """Is the test transform a per-pixel affine map x -> scale * x/255 + shift? Probe it on real digits. If not,
    read it as torchvision transforms the grader knows (plain data, replayed in the clean process), else say why not."""
    import numpy as np
    import torch
    from PIL import Image

    from grader.data.transforms import read_transform

    for dataset in _probe_images(namespace):
        transform = dataset.transform
        origin = "test dataset" if getattr(dataset, "train", None) is False else "training dataset"
        if transform is None:
            return {"kind": "affine", "scale": 1 / 255, "shift": 0.0, "source": f"{origin} (no transform, raw pixels)"}
        try:
            outs, ins = [], []
            for image in raw_images[:16]:
                out = transform(Image.fromarray(image, mode="L"))
                if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, 28, 28):
                    why = (f"one that gives {type(out).__name__} of shape "
                           f"{tuple(getattr(out, 'shape', ()))}, not a 1x28x28 tensor")
                    break
                outs.append(out.detach().cpu().double().numpy().ravel())
                ins.append(image.astype(np.float64).ravel() / 255.0)
            else:
                x, y = np.concatenate(ins), np.concatenate(outs)
                scale, shift = np.polyfit(x, y, 1)
                residual = float(np.max(np.abs(scale * x + shift - y)))
                if residual < 1e-3:
                    return {"kind": "affine", "scale": float(scale), "shift": float(shift), "source": origin,
                            "residual": residual}
                why = f"not a per-pixel affine map (largest deviation {residual:.3g})"
        except Exception as exc:
            return {"kind": "other", "source": origin, "reason": f"the transform failed on a test image: {exc!r}"}
        steps, unknown = read_transform(transform)
        if steps is not None:  # the object stays here: only its class names and arguments leave the sandbox
            return {"kind": "transforms", "steps": steps, "source": origin, "transform": dataset}
        return {"kind": "other", "source": origin, "transform": dataset, "reason": f"{why}, and {unknown}"}
    return {"kind": "affine", "scale": 1 / 0.3081, "shift": -0.1307 / 0.3081,
            "source": "assumed: no MNIST dataset found in the notebook, the course's Normalize((0.1307,), (0.3081,))"}


def _export(module, out_dir: str) -> dict[str, Any]:
    """torch.export, the only capture the grader measures: its graph is read whole by grader.arch (a TorchScript
    fallback hid loops, branches and non-tensor attributes from it, so there is none)."""
    import torch

    example = torch.zeros(1000, 1, 28, 28)
    reasons = []
    try:
        batch = torch.export.Dim("batch", min=2, max=100000)  # min=1 would let export specialise the batch
        # a small example: the program file keeps it, and 1000 images would be 3 MB of zeros
        program = torch.export.export(module, (example[:2],), dynamic_shapes=({0: batch},), strict=False)
        torch.export.save(program, os.path.join(out_dir, "model.pt2"))
        return {"path": "export", "file": "model.pt2", "batch": None}
    except Exception as exc:
        reasons.append(f"torch.export with a dynamic batch: {exc.__class__.__name__}: {str(exc)[:300]}")
    try:
        program = torch.export.export(module, (example,), strict=False)
        torch.export.save(program, os.path.join(out_dir, "model.pt2"))
        return {"path": "export", "file": "model.pt2", "batch": 1000, "reasons": reasons}
    except Exception as exc:
        reasons.append(f"torch.export: {exc.__class__.__name__}: {str(exc)[:300]}")
    # nothing captured the model: no predictions are made here, where student code runs (the verdict says why)
    return {"path": "none", "file": None, "reasons": reasons}


def finalize(namespace: dict[str, Any], variable: str, out_dir: str, images_file: str | None,
             named: bool = True, dry_run: bool = False) -> None:
    """Called by the last (hidden) cell. Never raises: what goes wrong is written down."""
    from grader.execute import compat, kernel_pip

    result: dict[str, Any] = {"counters": counters(), "compat_used": compat.used(), "compat_skipped": compat.skipped(),
                              "pip_asked": kernel_pip.asked(), "cpu_budget": cpu_budget.record()}
    _stop_counting()  # the harness's own forward passes are not training, and must not pin shapes in export
    try:
        result["trained_models"] = [{k: v for k, v in t.items() if k != "module"}
                                    for t in trained.trained_in(namespace, prefer=variable)]
        result.update(_finalize(namespace, variable, out_dir, images_file, named, dry_run))
    except Exception as exc:
        result["model_error"] = f"{exc.__class__.__name__}: {exc}"
        result["model_traceback"] = traceback.format_exc()[-3000:]
    with open(os.path.join(out_dir, "harness.json"), "w") as fh:
        json.dump(result, fh, default=str)


def _finalize(namespace: dict[str, Any], variable: str, out_dir: str, images_file: str | None,
              named: bool = True, dry_run: bool = False) -> dict[str, Any]:
    import numpy as np
    import torch

    name, module, how = find_model(namespace, variable, named, dry_run)
    found: dict[str, Any] = {"model_found": how, "model_variable": name}
    if module is None:
        return found
    if keras_harness.is_keras_model(module):
        raw = np.load(images_file) if images_file else np.zeros((16, 28, 28), np.uint8)
        return {**found, **keras_harness.finalize(namespace, module, out_dir, raw)}
    module = module.cpu().eval()
    found["params"] = {
        "trainable": sum(p.numel() for p in module.parameters() if p.requires_grad),
        "total": sum(p.numel() for p in module.parameters()),
    }
    raw = np.load(images_file) if images_file else np.zeros((16, 28, 28), np.uint8)
    prep = probe_preprocessing(namespace, raw)
    transform_ds = prep.pop("transform", None)
    found["preprocess"] = prep
    if prep["kind"] == "affine":
        probe = torch.from_numpy(raw[:8].astype(np.float32) / 255.0).unsqueeze(1) * prep["scale"] + prep["shift"]
    else:
        from PIL import Image

        # only to check the model's shape: the grader never measures on inputs that student code produced
        probe = torch.stack([transform_ds.transform(Image.fromarray(im, mode="L")) for im in raw[:8]])
    try:
        with torch.no_grad():
            out = module(probe[:8].float())
    except Exception as exc:
        found["bad_model"] = f"the model's forward pass fails on 8 test images: {exc.__class__.__name__}: {exc}"
        return found
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[1] != 10:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        found["bad_model"] = f"the model maps 8 test images to {shape}; it must give 10 scores per image (8, 10)"
        return found
    if not torch.isfinite(out).all():
        found["bad_model"] = "the model outputs NaN or infinite scores on test images"
        return found
    found["export"] = _export(module, out_dir)
    return found
