"""Kernel side of the CPU budget: the cores a submission may use (GRADER_CPUS, set by the sandbox from --cpus).

The sandbox's environment already sizes the OpenMP / MKL / OpenBLAS / TensorFlow pools
(grader.sandbox.bwrap.THREAD_VARIABLES); what an environment variable cannot reach is here:

- torch's inter-op pool (sized by the host's cores whatever OMP_NUM_THREADS says), and its
  intra-op pool once more, in case the grading environment's torch was built without OpenMP;
- DataLoader workers: with one core, num_workers runs with 0 (loading in the training loop's process: a worker
  would only add its pickling, 2.3 s more per epoch of a course net on full MNIST, measured); with c >= 2 cores,
  above c runs with c (a worker waits for the training step as often as it works: on 2 cores, 2 workers took
  23.2-24.9 s an epoch where 1 took 25.6-27.5 s). Said once on stderr and in harness.json's `cpu_budget.notes`;
- TensorFlow's pools through tf.config when Keras runs on that backend.

Standard library only at module level; never raises into the student's code.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any

_notes: list[str] = []
_tensorflow: list[int] = []  # the budget, once TensorFlow's pools took it


def cpus() -> int | None:
    """The budget in cores; None when the run has none (then nothing here changes anything)."""
    try:
        value = int(os.environ.get("GRADER_CPUS", ""))
    except ValueError:
        return None
    return value if value > 0 else None


def note(text: str) -> None:
    """Said once: on the kernel's stderr (the notebook's output) and in the record."""
    if text not in _notes:
        _notes.append(text)
        print(f"[grader] {text}", file=sys.stderr)


def apply_torch(budget: int) -> None:
    """torch's thread pools sized to the budget, and DataLoader workers counted against it."""
    import torch
    from torch.utils.data import DataLoader

    torch.set_num_threads(budget)
    try:
        torch.set_num_interop_threads(budget)
    except RuntimeError:  # only possible before the first inter-op work; the kernel has done none yet
        pass
    most = 0 if budget == 1 else budget
    original_init = DataLoader.__init__
    if getattr(original_init, "__grader_budget__", False):
        return

    @functools.wraps(original_init)
    def budgeted_init(loader, *args, **kwargs):
        original_init(loader, *args, **kwargs)
        asked = loader.num_workers
        if asked > most:
            # After __init__: its checks (persistent_workers, prefetch_factor need workers) passed for what the
            # student wrote; with 0 workers the loader simply loads in this process and ignores them.
            loader.num_workers = most
            cores = "core" if budget == 1 else "cores"
            note(f"DataLoader(num_workers={asked}) runs with {most} workers: this submission's CPU budget is "
                 f"{budget} {cores} (--cpus / the rubric's limits: cpus)"
                 + (", so the data loads in the training loop's process" if most == 0 else ""))

    budgeted_init.__dict__["__grader_budget__"] = True
    loader_class: Any = DataLoader  # its method replaced at run time: more than its declared type can say
    loader_class.__init__ = budgeted_init


def apply_tensorflow(budget: int) -> None:
    """TensorFlow's pools, when Keras runs on it (TF_NUM_*_THREADS cover a TensorFlow that reads them)."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(budget)
        tf.config.threading.set_inter_op_parallelism_threads(budget)
    except RuntimeError:  # TensorFlow already started its pools: the environment variables sized them
        return
    _tensorflow.append(budget)


def record() -> dict[str, Any] | None:
    """harness.json's `cpu_budget`: the budget, the pools after the student's cells, and what was changed for it."""
    budget = cpus()
    if budget is None:
        return None
    threads: dict[str, Any] = {}
    if "torch" in sys.modules:  # as the student's cells left them (a notebook may set its own)
        torch = sys.modules["torch"]
        threads.update(torch=torch.get_num_threads(), torch_interop=torch.get_num_interop_threads())
    if _tensorflow:
        threads["tensorflow"] = _tensorflow[0]
    return {"cpus": budget, "threads": threads, "notes": list(_notes)}
