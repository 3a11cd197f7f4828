"""Where submissions of a class run: the executor protocol and the local pool, and what they are handed.

An executor takes a function of (item, slot) and items, and yields (item, result)
as they finish. A slot says which GPU a task may use (None: no GPU). The class driver
hands it `grade one submission` (a picklable `FactsTask`, `facts_task.py`); the sandbox inside is the same
everywhere. An executor whose tasks may run on another machine (`remote`) is handed each submission's files as
bytes (`Shipped`, `shipped.py`). `named.py`: the executor a front end asks for by name.

`ray_executor.RayExecutor` runs each item as a Ray task on a cluster. Ray is an optional extra: that module is
not imported here, only by `named.executor_for("ray", ...)` when it is asked for.
"""

from grader.executors.local import Executor, LocalExecutor, default_jobs, gpu_indices

__all__ = ["Executor", "LocalExecutor", "default_jobs", "gpu_indices"]
