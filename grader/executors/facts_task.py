"""What an executor runs for one submission (`FactsTask`: its facts and the seconds they took), and what such a
task needs to be picklable: the grading environment as requirements (`portable_environment`), MNIST and the
environment prepared once per worker process."""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, TypeVar, cast

from grader.data.staging import TestData, prepare_test_data
from grader.env.build import build, plan
from grader.env.spec import DEFAULT_ENVIRONMENT, EnvironmentSpec
from grader.executors.shipped import Item, Shipped
from grader.facts import Facts
from grader.intake import Submission
from grader.pipeline import grade_facts
from grader.rubric.schema import Rubric
from grader.settings import Options

_NODE: dict[tuple, object] = {}  # per worker process: MNIST and grading environments, prepared once
_NODE_LOCK = threading.Lock()
V = TypeVar("V")


def _once(key: tuple, make: Callable[[], V]) -> V:
    with _NODE_LOCK:
        if key not in _NODE:
            _NODE[key] = make()
        return cast(V, _NODE[key])


@dataclass(frozen=True)
class FactsTask:
    """What an executor runs for one submission: its facts and the seconds they took. The class driver resolves
    cache hits and link errors, caches, scores and reports; this is the part that may run on another machine.

    Pickling leaves `data` behind (host paths and 10,000 images): where it was, the worker stages MNIST itself
    once per process (`prepare_test_data(options.data, ...)`, the data layer caches it per node). `environment`,
    when set, is the grading environment as requirements: the worker finds (or builds) its own copy.
    """

    options: Options
    data: Optional[TestData] = None
    environment: Optional[EnvironmentSpec] = None

    def __getstate__(self) -> dict:
        return {"options": self.options, "data": None, "environment": self.environment}

    def __setstate__(self, state: dict) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)

    def __call__(self, item: Item, gpu_index: Optional[int]) -> tuple[Facts, float]:
        if isinstance(item, Shipped):
            with tempfile.TemporaryDirectory(prefix="mnist-grader-shipped-") as tmp:
                return self._facts(item.unpack(Path(tmp)), gpu_index)
        return self._facts(item, gpu_index)

    def _facts(self, submission: Submission, gpu_index: Optional[int]) -> tuple[Facts, float]:
        options, data = self.options.with_overrides(gpu_index=gpu_index), self.data
        if data is None and options.mode != "static":
            data = _once(("data", options.data, options.unseen),
                         lambda: prepare_test_data(options.data, unseen=options.unseen))
        if self.environment is not None:
            spec = self.environment
            env = _once(("env", spec.model_dump_json()), lambda: build(spec))
            options = options.with_(environment=env.path)
        started = time.monotonic()
        facts = grade_facts(submission.path, options, model_file=submission.model, data=data, root=submission.root,
                            handin=submission.handin)
        return facts, round(time.monotonic() - started, 2)


def portable_environment(rubric: Rubric, options: Options) -> Optional[EnvironmentSpec]:
    """The grading environment `options` runs kernels in, as requirements any machine can build it from; None when
    there is none (no run) or it is not the rubric's (an environment given by path goes as that path)."""
    if options.mode != "execute" or options.environment is None:
        return None
    source = Path(rubric.source)
    env = plan(rubric.environment or DEFAULT_ENVIRONMENT, source.parent if source.is_file() else None)
    if env.path != options.environment:
        return None
    return EnvironmentSpec(packages=list(env.requirements), compat=list(env.compat))
