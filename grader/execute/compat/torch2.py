"""torch-2.x: what course notebooks written on PyTorch 2.0-2.5 call that current PyTorch removed or changed.

Only what now raises is read; what merely warns (`torch.cuda.amp.GradScaler` / `autocast`, `nn.init.xavier_uniform`,
`MNIST.train_data` / `test_labels`, `scheduler.step(epoch)`) runs as it is. Each shim, from the release notes:

- `verbose=` to a learning-rate scheduler (`StepLR(..., verbose=True)`, `ReduceLROnPlateau(..., verbose=True)`,
  `OneCycleLR`, every class in `torch.optim.lr_scheduler`). PyTorch 2.2 deprecated it ("Deprecated verbose parameter
  in LR schedulers", pytorch#111302: "please use `get_last_lr()`"); PyTorch 2.7 removed it (pytorch#147301, BC-breaking
  note: "`LRScheduler.print_lr()` along with the `verbose` kwarg to the LRScheduler constructor has been deprecated
  since release 2.2"), so the constructor raises `TypeError: StepLR.__init__() got an unexpected keyword argument
  'verbose'`. The shim takes the keyword out, and with `verbose=True` prints what 2.0-2.6 printed: "Adjusting
  learning rate of group 0 to 1.0000e-02." at construction and at each step (with "Epoch 00003: adjusting ..." when
  `step(epoch)` is given one), and for ReduceLROnPlateau "Epoch 00005: reducing learning rate of group 0 to
  1.0000e-03." when it reduces. A positional `verbose` (the last argument of the old signatures) is not read.
- `torch.load(path)` of a whole pickled model or of a checkpoint with Python objects in it. PyTorch 2.6 flipped the
  default of `weights_only` to True ("BC-Breaking Change: torch.load is being flipped to use weights_only=True by
  default", pytorch#137602, warned of since 2.4; the 2.6 release notes: "we have changed the default value for
  weights_only parameter of torch.load. This is a backward compatibility-breaking change"): such a load raises
  `UnpicklingError: Weights only load failed`. Where the call does not name `weights_only` and the weights-only load
  fails, the shim loads it as 2.0-2.5 did, with `weights_only=False`. This runs only in the sandboxed kernel, on
  files the notebook wrote or was handed in with: the notebook's own code already runs there, so unpickling its
  files gives it nothing more.
"""

from __future__ import annotations

import functools
import pickle
from collections.abc import Callable
from typing import Any

from grader.execute.compat import mark

_VERBOSE = "_compat_verbose"  # set on a scheduler built with verbose=True: its steps print the rates
_IN_STEP = "_compat_in_step"  # a step that calls another class's step prints once


def scheduler_verbose() -> None:
    """`StepLR(optimizer, 1, verbose=True)` and every other scheduler's `verbose=` (removed in PyTorch 2.7)."""
    from torch.optim import lr_scheduler

    for cls in vars(lr_scheduler).values():
        if not (isinstance(cls, type) and issubclass(cls, lr_scheduler.LRScheduler)):
            continue
        patched: Any = cls  # its methods replaced at run time: more than its declared type can say
        if "__init__" in vars(cls):
            patched.__init__ = _without_verbose(cls.__init__, cls.__name__)
        if "step" in vars(cls):
            patched.step = _printing_step(cls.step, reductions_only=issubclass(cls, lr_scheduler.ReduceLROnPlateau))


def _without_verbose(init: Callable[..., None], name: str) -> Callable[..., None]:
    @functools.wraps(init)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if "verbose" in kwargs:
            mark(f"torch-2.x: {name}(verbose=)")
            if kwargs.pop("verbose"):
                setattr(self, _VERBOSE, True)  # before init: the constructor's first step printed in 2.0-2.6
        init(self, *args, **kwargs)

    return __init__


def _printing_step(step: Callable[..., Any], *, reductions_only: bool) -> Callable[..., Any]:
    @functools.wraps(step)
    def wrapper(self, *args: Any, **kwargs: Any) -> Any:
        if not getattr(self, _VERBOSE, False) or getattr(self, _IN_STEP, False):
            return step(self, *args, **kwargs)
        before = [float(group["lr"]) for group in self.optimizer.param_groups]
        setattr(self, _IN_STEP, True)
        try:
            result = step(self, *args, **kwargs)
        finally:
            setattr(self, _IN_STEP, False)
        after = [float(group["lr"]) for group in self.optimizer.param_groups]
        if reductions_only:  # ReduceLROnPlateau said only when it reduced, with the epoch it counts
            # strict=False: a group that the student's own step added has no rate before it, so it was not reduced;
            # this courtesy print must never fail the student's cell
            for i, (old, new) in enumerate(zip(before, after, strict=False)):
                if new < old:
                    print(f"Epoch {_epoch(self.last_epoch)}: reducing learning rate of group {i} to {new:.4e}.")
            return result
        epoch = args[0] if args else kwargs.get("epoch")
        for i, lr in enumerate(after):
            if epoch is None:
                print(f"Adjusting learning rate of group {i} to {lr:.4e}.")
            else:
                print(f"Epoch {_epoch(epoch)}: adjusting learning rate of group {i} to {lr:.4e}.")
        return result

    return wrapper


def _epoch(epoch: float) -> str:
    return ("%.2f" if isinstance(epoch, float) else "%.5d") % epoch


def load_whole_objects() -> None:
    """`torch.load(path)` of a pickled model or checkpoint, which loads weights only since PyTorch 2.6."""
    import torch
    import torch.serialization

    weights_only_load = torch.load

    @functools.wraps(weights_only_load)
    def load(f: Any, *args: Any, **kwargs: Any) -> Any:
        if "weights_only" in kwargs:  # the notebook chose: as it says
            return weights_only_load(f, *args, **kwargs)
        start = f.tell() if hasattr(f, "seek") else None  # torch.load's file objects can seek
        try:
            return weights_only_load(f, *args, **kwargs)
        except pickle.UnpicklingError:
            if start is not None:
                f.seek(start)
            mark("torch-2.x: torch.load(weights_only=False)")
            return weights_only_load(f, *args, weights_only=False, **kwargs)

    torch.load = torch.serialization.load = load
