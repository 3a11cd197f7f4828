"""Grading a class: every submission through the pipeline in parallel, results cached, reports written.

Resumable: the facts of a submission are cached under the hash of its content and of
the settings that decide what a run measures (mode, limits, model variable, grader
version). Scoring is pure and cheap, so a changed rubric re-scores every cached
submission without running anything again; a changed file runs only that file.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import traceback
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path
from queue import Queue
from typing import Callable, Optional

from grader import __version__
from grader.errors import GraderError
from grader.facts import Facts, VerdictFacts
from grader.intake import Submission
from grader.pipeline import Options, grade_facts
from grader.rubric.schema import Rubric
from grader.rubric.score import score
from grader.rubric.sheet import ScoreSheet
from grader.sandbox.bwrap import gpu_device_nodes


@dataclass(frozen=True)
class Graded:
    submission: Submission
    facts: Facts
    sheet: ScoreSheet
    seconds: float
    cached: bool


Event = Callable[[str, Submission, Optional[Graded]], None]  # ("start" | "done", submission, result)


def options_for(rubric: Rubric, **overrides) -> Options:
    """What the rubric asks for (mode, limits, variable, GPU), with command-line overrides."""
    gpu = {"no": False, "wanted": None, "required": True}[rubric.limits.gpu]
    base = Options(mode=rubric.mode, variable=rubric.model, limits=rubric.limits.to_run_limits(), gpu=gpu)
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def default_jobs(options: Options, memory_bytes: int | None = None) -> int:
    """One per GPU when GPUs are used, else one per core, and never more than the memory holds."""
    gpus = [n for n in gpu_device_nodes() if n[len("/dev/nvidia"):].isdigit()]
    if gpus and options.gpu is not False:
        return len(gpus)
    jobs = os.cpu_count() or 1
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        jobs = min(jobs, max(1, total // max(1, memory_bytes or options.limits.memory_bytes)))
    except (ValueError, OSError):
        pass
    return max(1, jobs)


class FactsCache:
    """facts per (content, run settings), as JSON files under out/.cache/."""

    def __init__(self, out: Path):
        self.folder = out / ".cache"

    @staticmethod
    def key(submission: Submission, options: Options) -> str:
        settings = {"digest": submission.digest, "mode": options.mode, "variable": options.variable,
                    "limits": options.limits.__dict__, "dry_run": options.dry_run, "version": __version__}
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:32]

    def get(self, key: str) -> Optional[tuple[Facts, float]]:
        try:
            data = json.loads((self.folder / f"{key}.json").read_text())
            return Facts.model_validate(data["facts"]), float(data["seconds"])
        except (OSError, ValueError, KeyError):
            return None

    def put(self, key: str, facts: Facts, seconds: float) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f"{key}.tmp"
        tmp.write_text(json.dumps({"facts": facts.to_json(), "seconds": seconds}))
        tmp.replace(self.folder / f"{key}.json")


def _facts_for(submission: Submission, options: Options) -> Facts:
    """One submission's facts; nothing it does can stop the batch."""
    try:
        return grade_facts(submission.path, options, model_file=submission.model)
    except GraderError:
        raise  # the grader's own set-up (no bwrap, no data): every submission would fail the same way
    except Exception as exc:  # a grader bug on one odd submission: that student gets a clear verdict
        return Facts(verdict=VerdictFacts(kind="sandbox_error", message=f"the grader failed on this submission: "
                                          f"{exc.__class__.__name__}: {exc}",
                                          output_tail=traceback.format_exc()[-2000:]))


def grade_batch(submissions: list[Submission], rubric: Rubric, options: Options, *, out: Path, jobs: int,
                force: bool = False, on_event: Event = lambda *_: None,
                extra_facts: Callable[[Submission, Facts], Facts] = lambda s, f: f) -> list[Graded]:
    """Grade every submission (cached ones are only re-scored). `extra_facts` adds e.g. quiz results."""
    cache = FactsCache(out)
    slots: Queue[Optional[int]] = Queue()
    gpus = [n for n in gpu_device_nodes() if n[len("/dev/nvidia"):].isdigit()] if options.gpu is not False else []
    for slot in range(jobs):
        slots.put(int(gpus[slot % len(gpus)][len("/dev/nvidia"):]) if gpus else None)

    def run(submission: Submission) -> Graded:
        key = cache.key(submission, options)
        hit = None if force else cache.get(key)
        if hit is not None:
            facts = extra_facts(submission, hit[0])
            return Graded(submission, facts, score(facts, rubric), hit[1], True)
        gpu_index = slots.get()
        on_event("start", submission, None)
        try:
            started = time.monotonic()
            facts = _facts_for(submission, replace(options, gpu_index=gpu_index))
            seconds = round(time.monotonic() - started, 2)
        finally:
            slots.put(gpu_index)
        cache.put(key, facts, seconds)
        facts = extra_facts(submission, facts)
        return Graded(submission, facts, score(facts, rubric), seconds, False)

    results: list[Graded] = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(run, s) for s in submissions]
        for future in as_completed(futures):
            graded = future.result()
            on_event("done", graded.submission, graded)
            results.append(graded)
    return sorted(results, key=lambda g: g.submission.student)
