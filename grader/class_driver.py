"""The class driver: every hand-in of a class (a folder or an LMS zip) graded, cached and scored.

It answers what needs no run itself (a hand-in that is its own verdict, a cache hit) and hands the rest to an
executor as a `FactsTask`; each Result is built in one place (`grader.result.class_result`). `--only` is a
filter in front of the same loop: it decides who may run, everyone else is answered from the cache.
"""

from __future__ import annotations

import difflib
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Optional, Union

from grader.cache import FactsCache
from grader.data.staging import TestData, prepare_test_data
from grader.errors import GraderError
from grader.executors import Executor
from grader.executors.facts_task import FactsTask, portable_environment
from grader.executors.local import slots
from grader.executors.named import local_executor
from grader.executors.shipped import handed_over, submission_of
from grader.facts import Facts
from grader.intake import (
    DEFAULT_ID_PATTERN,
    Submission,
    discover,
    not_handed_in,
    read_roster,
    safe_extract,
    with_roster,
)
from grader.links import LinkError, fetch, parse_link
from grader.quiz.bank import Bank
from grader.result import Event, Result, class_result, not_run
from grader.rubric.schema import Rubric
from grader.sandbox.preflight import check_sandbox_starts
from grader.settings import Options


@dataclass(frozen=True)
class ClassSource:
    """What the class is: where its hand-ins are, who is in it, how file names name students, when it was due."""

    path: Path  # a folder or an LMS zip
    roster: Optional[Path] = None  # Canvas's gradebook export, Moodle's grading worksheet, or id,name,...
    id_pattern: str = DEFAULT_ID_PATTERN  # a regex with a group named id, on file and folder names
    deadline: Optional[str] = None  # ISO 8601: link submissions naming a branch are graded at its last commit before


def check_deadline(deadline: Optional[str]) -> Optional[str]:
    """The deadline as ISO 8601 (what git's --before reads); GraderError when it is not a date and time."""
    if deadline is None:
        return None
    try:
        return datetime.fromisoformat(deadline.strip().replace("Z", "+00:00")).isoformat()
    except ValueError:
        raise GraderError(f"--deadline {deadline!r} is not a date and time", where="--deadline",
                          fix="write it like 2026-12-01T23:59 (local time) or 2026-12-01T23:59+01:00") from None


def grade_class(source: Union[Path, ClassSource], rubric: Rubric, options: Options, *, out: Path,
                executor: Optional[Executor] = None, jobs: Optional[int] = None, force: bool = False,
                only: Optional[str] = None, quiz: Optional[Bank] = None, data: Optional[TestData] = None,
                on_event: Event = lambda *_: None) -> Iterator[Result]:
    """Grade every submission in a folder or LMS zip (`source`, or a `ClassSource` with its roster, id pattern and
    deadline); yields each Result as it finishes.

    Facts are cached in `out/.cache` (see grader.cache): unchanged submissions are only re-scored; a submission
    the grader failed on (verdict grader_failed) is not cached, so the next run grades it. Before anything runs,
    one trivial sandbox is started here: GraderError when the machine cannot sandbox (local executors).
    MNIST is located and its test set loaded once for the class (or given as `data`). `executor` decides where
    submissions run (default: a local pool of `jobs` slots, one per core or GPU). The roster names the students
    the file names do not. `only` (a student id) grades that student again and gives everyone else's result from
    the cache without running anything; a student with nothing cached is left out (event "skipped"). Link
    submissions are fetched with git (`grader.links`): at the linked commit, else the last commit before the
    deadline. `on_event(kind, submission, result)` is told "queued", "start" and "done" for each submission that
    may run, and "skipped".
    """
    source = source if isinstance(source, ClassSource) else ClassSource(Path(source))
    deadline = check_deadline(source.deadline)
    with tempfile.TemporaryDirectory(prefix="mnist-grader-intake-") as tmp:
        submissions = _hand_ins(source, rubric, Path(tmp))
        if data is None and options.mode != "static":
            data = prepare_test_data(options.data, unseen=options.unseen)
        cache = FactsCache(Path(out))
        # links are fetched every time (a branch moves), also under --only: the cache knows the notebooks, not links
        submissions = [_fetched(s, Path(tmp) / "links" / s.student, deadline, rubric.notebook)
                       if s.link is not None else s for s in submissions]
        may_run = _only(only, submissions, source.path)
        executor = executor or local_executor(jobs, options)
        options = options.with_(limits=options.limits.with_cpus_for(slots(executor)), warm=True)
        run = _Run(cache, options, executor, FactsTask(options, data=data,
                                                       environment=portable_environment(rubric, options)), on_event)
        anew = force if only is None else True  # under --only, that student is graded again, cached or not
        for submission, facts, seconds, cached in run.facts(submissions, may_run, anew=anew):
            result = class_result(submission, facts, seconds, rubric, quiz, cached=cached)
            if may_run(submission):  # under --only, the others' results come from before: nothing to tell
                on_event("done", submission, result)
            yield result


@dataclass(frozen=True)
class _Run:
    """One grading of a class: where its facts are cached, and how those not cached are measured."""

    cache: FactsCache
    options: Options
    executor: Executor
    task: FactsTask
    on_event: Event

    def facts(self, submissions: list[Submission], may_run: Callable[[Submission], bool], *,
              anew: bool) -> Iterator[tuple[Submission, Facts, float, bool]]:
        """(submission, facts, seconds, cached) for each submission: first what needs no run (a hand-in that is
        its own verdict, a cache hit unless graded `anew`), then what the executor measured, as it finishes.
        One that may not run and has nothing cached is left out (event "skipped")."""
        for submission in submissions:
            if may_run(submission):
                self.on_event("queued", submission, None)
        to_run: dict[str, str] = {}  # student -> cache key, for what the executor grades
        runnable = []
        for submission in submissions:
            if submission.error is not None:  # nothing to run: the link or the hand-in is the verdict
                yield submission, not_run(submission, self.options), 0.0, False
                continue
            key = self.cache.key(submission, self.options)
            hit = None if anew and may_run(submission) else self.cache.get(key)
            if hit is not None:
                yield submission, hit[0], hit[1], True
            elif may_run(submission):
                to_run[submission.student] = key
                runnable.append(submission)
            else:
                self.on_event("skipped", submission, None)
        if runnable and self.options.mode != "static" and self.options.sandbox and not self.executor.remote:
            check_sandbox_starts(self.options.limits)  # a machine that cannot sandbox stops here, not once per student
        task: Callable[..., tuple[Facts, float]] = self.task
        if self.executor.remote:  # a remote task's start is not seen here: started once handed over
            for submission in runnable:
                self.on_event("start", submission, None)
        else:
            task = partial(_told_start, self.task, self.on_event)
        for item, (facts, seconds) in self.executor.run(task, handed_over(self.executor, runnable)):
            submission = submission_of(item)
            self.cache.put(to_run[submission.student], facts, seconds)
            yield submission, facts, seconds, False


def _told_start(task: FactsTask, on_event: Event, submission: Submission,
                gpu_index: Optional[int]) -> tuple[Facts, float]:
    on_event("start", submission, None)
    return task(submission, gpu_index)


def _hand_ins(source: ClassSource, rubric: Rubric, intake: Path) -> list[Submission]:
    """The class's submissions (a zip unpacked under `intake`), with the roster's names and its students who
    handed in nothing."""
    root = Path(source.path)
    if root.suffix.lower() == ".zip":
        root = safe_extract(root, intake / "class")
    submissions = discover(root, source.id_pattern, workspace=intake / "handins", notebook=rubric.notebook)
    if source.roster is not None:
        listed = read_roster(source.roster)
        submissions = with_roster(submissions, listed) + not_handed_in(submissions, listed, Path(source.path))
    return submissions


def _fetched(submission: Submission, scratch: Path, deadline: Optional[str], pattern: Optional[str]) -> Submission:
    """A link submission with its notebook fetched (path, digest, commit), or with the reason it could not be."""
    try:
        got = fetch(parse_link(submission.link or ""), scratch, deadline=deadline, pattern=pattern)
    except LinkError as err:
        return replace(submission, link_error=str(err))
    return replace(submission, path=got.path, root=got.root, handin=got.handin, digest=got.handin.digest,
                   commit=got.commit, commit_date=got.commit_date, notebook_path=got.notebook_path)


def _only(only: Optional[str], submissions: list[Submission], source: Path) -> Callable[[Submission], bool]:
    """Who may run: everyone, or under --only that student (GraderError naming the ids here when absent)."""
    if only is None:
        return lambda _: True
    ids = [s.student for s in submissions]
    if only not in ids:
        close = difflib.get_close_matches(only, ids, n=3)
        raise GraderError(f"--only {only}: no submission of that student in this class",
                          where=str(source), fix=(f"did you mean {' or '.join(close)}? " if close else "")
                          + f"the ids here are {', '.join(ids[:10])}" + (", ..." if len(ids) > 10 else ""))
    return lambda submission: submission.student == only
