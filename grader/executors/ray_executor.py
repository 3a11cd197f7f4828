"""The Ray executor: each item a Ray task on a cluster (or a local Ray started for the run), sized by the rubric.

Ray is an optional extra (`pip install '.[ray]'`), imported only here and only when this executor is made, so the
package works without it. The task is put in Ray's object store once and shipped to each worker process; it must
be picklable and must not need this machine's disk (the grading API hands it a `FactsTask` and the submissions'
bytes). A worker process that dies (killed, out of memory, its node lost) makes Ray run the task again, up to
`max_retries` times; an exception the task raises is not retried: it is the task's answer, raised here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Optional, TypeVar

from grader.errors import GraderError

T = TypeVar("T")
R = TypeVar("R")

INSTALL = "pip install '.[ray]'"


def import_ray() -> Any:
    """The ray module; GraderError saying how to install it when it is not there."""
    try:
        import ray
    except ImportError:
        raise GraderError("--executor ray needs Ray, which is not installed", where="--executor ray",
                          fix=f"run `{INSTALL}` in the grader's checkout (or `pip install 'ray>=2.9'`), "
                              "or leave --executor out to grade on this machine") from None
    return ray


def grade_one(task: Callable[[T, Optional[int]], R], item: T) -> R:
    """The Ray task (worker processes are titled `ray::grade_one` while they run it): task(item, its GPU)."""
    ray = import_ray()
    gpus = ray.get_gpu_ids()
    return task(item, int(gpus[0]) if gpus else None)


class RayExecutor:
    """Items as Ray tasks: `cpus` CPUs each, `memory_bytes` of memory, and 1/`jobs_per_gpu` of a GPU when the class
    uses one (`gpu`: True always, None when the cluster has GPUs, False never). `jobs` caps the tasks in flight
    (None: as many as the cluster's resources admit). Without `address` a local Ray with this machine's cores is
    started, and close() shuts it down; a Ray already started in this process is used as it is."""

    remote = True  # tasks may run on another machine: the class driver ships submissions as bytes

    def __init__(self, address: Optional[str] = None, *, cpus: float = 1, jobs_per_gpu: int = 1,
                 gpu: Optional[bool] = None, memory_bytes: Optional[int] = None, jobs: Optional[int] = None,
                 max_retries: int = 3):
        if cpus <= 0 or jobs_per_gpu < 1 or (jobs is not None and jobs < 1):
            raise GraderError("a Ray task needs cpus > 0, jobs_per_gpu >= 1 and jobs >= 1",
                              where="the rubric's limits", fix="e.g. limits: {cpus: 1, jobs_per_gpu: 2}")
        ray = import_ray()
        self._started = False
        if not ray.is_initialized():
            if address is None:
                ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)
                self._started = True
            else:
                ray.init(address=address, log_to_driver=False)
        if gpu is None:
            gpu = ray.cluster_resources().get("GPU", 0) > 0
        self.jobs = jobs
        self.resources: dict[str, Any] = {"num_cpus": cpus, "num_gpus": 1 / jobs_per_gpu if gpu else 0,
                                          "max_retries": max_retries, "retry_exceptions": False}
        if memory_bytes is not None:
            self.resources["memory"] = memory_bytes

    def run(self, task: Callable[[T, Optional[int]], R], items: Iterable[T]) -> Iterator[tuple[T, R]]:
        ray = import_ray()
        remote = ray.remote(grade_one).options(**self.resources)
        shared = ray.put(task)  # shipped once, not once per item
        waiting = list(items)
        waiting.reverse()
        pending: dict[Any, T] = {}
        try:
            while waiting or pending:
                while waiting and (self.jobs is None or len(pending) < self.jobs):
                    item = waiting.pop()
                    pending[remote.remote(shared, item)] = item
                [done], _ = ray.wait(list(pending), num_returns=1)
                item = pending.pop(done)
                yield item, ray.get(done)
        finally:
            for ref in pending:  # a caller that stops early (or an error) leaves nothing running on the cluster
                ray.cancel(ref, force=True)

    def close(self) -> None:
        if self._started:
            import_ray().shutdown()
            self._started = False

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
