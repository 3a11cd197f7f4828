"""The local executor: a thread pool over this machine's cores or GPUs, one GPU per slot when there are GPUs.

Threads are enough: each task spends its time waiting on a sandboxed process.
"""

from __future__ import annotations

import os
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from queue import Queue
from typing import Callable, Iterable, Iterator, Optional, Protocol, TypeVar

from grader.sandbox.bwrap import gpu_device_nodes

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    def run(self, task: Callable[[T, Optional[int]], R], items: Iterable[T]) -> Iterator[tuple[T, R]]:
        """Run task(item, gpu_index) for every item; yield (item, result) as each finishes."""
        ...


def gpu_indices() -> list[int]:
    """The GPUs of this machine by index (/dev/nvidiaN)."""
    return [int(n[len("/dev/nvidia"):]) for n in gpu_device_nodes() if n[len("/dev/nvidia"):].isdigit()]


def default_jobs(memory_bytes: int, use_gpu: Optional[bool]) -> int:
    """One per GPU when GPUs are used, else one per core, and never more than the memory holds."""
    gpus = gpu_indices()
    if gpus and use_gpu is not False:
        return len(gpus)
    jobs = os.cpu_count() or 1
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        jobs = min(jobs, max(1, total // max(1, memory_bytes)))
    except (ValueError, OSError):
        pass
    return max(1, jobs)


class LocalExecutor:
    """`jobs` tasks at a time on this machine; with GPUs, slot k uses GPU k mod (number of GPUs)."""

    def __init__(self, jobs: int, *, use_gpu: Optional[bool] = None):
        if jobs < 1:
            raise ValueError("an executor needs at least one slot")
        self.jobs = jobs
        gpus = gpu_indices() if use_gpu is not False else []
        self._slots: Queue[Optional[int]] = Queue()
        for slot in range(jobs):
            self._slots.put(gpus[slot % len(gpus)] if gpus else None)

    def run(self, task: Callable[[T, Optional[int]], R], items: Iterable[T]) -> Iterator[tuple[T, R]]:
        def in_slot(item: T) -> R:
            gpu = self._slots.get()
            try:
                return task(item, gpu)
            finally:
                self._slots.put(gpu)

        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            pending: dict[Future[R], T] = {pool.submit(in_slot, item): item for item in items}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield pending.pop(future), future.result()
