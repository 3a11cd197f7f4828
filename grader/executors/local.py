"""The local executor: a thread pool over this machine's cores or GPUs, slots spread over the GPUs when there are GPUs.

Threads are enough: each task spends its time waiting on a sandboxed process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from queue import Queue
from typing import Optional, Protocol, TypeVar

from grader.sandbox.bwrap import gpu_device_nodes

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    @property
    def remote(self) -> bool:
        """Whether a task may run on another machine: the class driver then ships each submission's files as
        bytes, cannot see a task start, and leaves the sandbox check to the machines that run them."""
        ...

    @property
    def jobs(self) -> Optional[int]:
        """How many tasks run at once (None: as many as the cluster admits), which share this machine's cores."""
        ...

    def run(self, task: Callable[[T, Optional[int]], R], items: Iterable[T]) -> Iterator[tuple[T, R]]:
        """Run task(item, gpu_index) for every item; yield (item, result) as each finishes."""
        ...


def slots(executor: Optional[Executor]) -> int:
    """How many submissions share this machine's cores at once: the pool's slots (1 without an executor; a Ray
    task's CPUs are its own, so cores // cores = 1 each)."""
    if executor is None:
        return 1
    return executor.jobs or os.cpu_count() or 1


def gpu_indices() -> list[int]:
    """The GPUs of this machine by index (/dev/nvidiaN)."""
    return [int(n[len("/dev/nvidia"):]) for n in gpu_device_nodes() if n[len("/dev/nvidia"):].isdigit()]


def plan_jobs(*, cores: int, memory_total: Optional[int], memory_bytes: int, gpus: int, cpus: int = 1,
              jobs_per_gpu: int = 1) -> int:
    """How many submissions at once: cores // cpus (each job's CPU budget), with GPUs at most GPUs x jobs_per_gpu,
    and never more than the memory holds; at least one. Pure: `default_jobs` reads the host."""
    jobs = max(1, cores // max(1, cpus))
    if gpus:
        jobs = min(jobs, gpus * max(1, jobs_per_gpu))
    if memory_total is not None:
        jobs = min(jobs, memory_total // max(1, memory_bytes))
    return max(1, jobs)


def default_jobs(memory_bytes: int, use_gpu: Optional[bool], *, cpus: int = 1, jobs_per_gpu: int = 1) -> int:
    """`plan_jobs` on this machine: its cores, memory and (unless use_gpu is False) GPUs.

    More jobs than cores // cpus would not be faster: each job's threads, CPU quota and DataLoader workers are
    sized to `cpus` cores (grader.execute.cpu_budget), so more jobs would only share the same cores."""
    try:
        memory_total: Optional[int] = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        memory_total = None
    gpus = len(gpu_indices()) if use_gpu is not False else 0
    return plan_jobs(cores=os.cpu_count() or 1, memory_total=memory_total, memory_bytes=memory_bytes, gpus=gpus,
                     cpus=cpus, jobs_per_gpu=jobs_per_gpu)


class LocalExecutor:
    """`jobs` tasks at a time on this machine; with GPUs, slot k uses GPU k mod (number of GPUs), so the slots
    spread over the GPUs and jobs / GPUs (rounded up) share each one: `default_jobs` with `jobs_per_gpu` sizes
    that, an explicit --jobs is taken as given."""

    remote = False

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
