"""The executor a front end asks for by name (`local` or `ray`), sized by the rubric's limits."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Optional

from grader.errors import GraderError
from grader.executors.local import Executor, LocalExecutor, default_jobs
from grader.settings import Options

EXECUTORS = ("local", "ray")


def local_executor(jobs: Optional[int], options: Options) -> LocalExecutor:
    """A pool of `jobs` slots; by default as many as the cores hold at the rubric's `cpus` each (capped by memory),
    or with GPUs, GPUs x `jobs_per_gpu`."""
    return LocalExecutor(jobs or default_jobs(options.limits.memory_bytes, options.gpu, cpus=options.limits.cpus or 1,
                                              jobs_per_gpu=options.limits.jobs_per_gpu), use_gpu=options.gpu)


@contextlib.contextmanager
def executor_for(name: str = "local", address: Optional[str] = None, jobs: Optional[int] = None,
                 options: Optional[Options] = None) -> Iterator[Executor]:
    """The executor a front end asked for by name, for a `with` block: `local` (a pool of `jobs` slots on this
    machine) or `ray` (each submission a Ray task on the cluster at `address`, `auto` or `ray://host:port`; None
    starts a local Ray with this machine's cores for the block). Ray tasks are sized by the rubric's limits: cpus,
    memory and 1/jobs_per_gpu of a GPU when the class uses one; `jobs` caps the tasks in flight."""
    options = options or Options()
    if name == "local":
        if address is not None:
            raise GraderError("--address names a Ray cluster; the local executor has none", where="--address",
                              fix="add --executor ray, or leave --address out")
        yield local_executor(jobs, options)
        return
    if name != "ray":
        raise GraderError(f"no executor named {name!r}", where="--executor",
                          fix="use one of: " + ", ".join(EXECUTORS))
    from grader.executors.ray_executor import RayExecutor  # Ray is optional: imported only when asked for

    with RayExecutor(address, cpus=options.limits.cpus or 1, jobs_per_gpu=options.limits.jobs_per_gpu,
                     gpu=options.gpu, memory_bytes=options.limits.memory_bytes, jobs=jobs) as executor:
        yield executor
