"""Where submissions of a class run: the executor protocol and the local pool.

An executor takes a function of (item, slot) and items, and yields (item, result)
as they finish. A slot says which GPU a task may use (None: no GPU). The grading
API hands it `grade one submission`; the sandbox inside is the same everywhere.
"""

from grader.executors.local import Executor, LocalExecutor, default_jobs, gpu_indices

__all__ = ["Executor", "LocalExecutor", "default_jobs", "gpu_indices"]
