"""The public grading API: what every front end (the CLI, the service, an autograder) calls.

    from grader.api import load_rubric, options_for, grade_submission, grade_class, write_outputs

    rubric = load_rubric("mnist-s3")                     # a shipped name or a path
    options = options_for(rubric, mode="evaluate")       # the rubric's settings, with overrides
    result = grade_submission(Path("nb.ipynb"), rubric, options, student="1001")
    results = list(grade_class(Path("submissions/"), rubric, options, out=Path("grading-results")))
    write_outputs(results, Path("grading-results"))      # reports per student and gradebook.csv

A `Result` holds the submission, its facts, its score sheet and how long it took.
Quiz answers join through `quiz=`: they are read from the notebook's cell tagged
`quiz` with the other facts, and checked against keys the bank computes.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import shutil
import os
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

import numpy as np

from grader import pysyntax
from grader.cache import FactsCache
from grader.data.staging import TestData, prepare_test_data
from grader.env.build import Environment, build, locate, plan
from grader.env.spec import DEFAULT_ENVIRONMENT, EnvironmentSpec
from grader.executors import Executor, LocalExecutor, default_jobs
from grader.facts import Facts, GradingFacts
from grader.links import LinkError, fetch, parse_link
from grader.errors import GraderError
from grader.handin import collect
from grader.intake import (DEFAULT_ID_PATTERN, Submission, canvas_assignments, content_key, discover, hand_in_at,
                           not_handed_in, read_roster, safe_extract, with_roster)
from grader.pipeline import Progress, grade_facts
from grader.quiz.bank import Bank, load_bank
from grader.quiz.check import check_answers
from grader.report.audience import student_comment
from grader.report.changes import Change, Standing, Tally, diff, read_gradebook, tally, write_changes
from grader.report.canvas import CanvasStudent, canvas_rows, write_canvas_csv
from grader.report.gradebook import GradebookEntry, gradebook_rows, write_gradebook
from grader.report.moodle import MoodleGrade, WorksheetError, feedback_entry, fill_worksheet, has_feedback_column
from grader.report.instructor import Pair, Side, StudentLine
from grader.report.write import write_class_pages, write_student_reports
from grader.rubric.load import load_rubric
from grader.rubric.schema import Rubric
from grader.rubric.score import score
from grader.rubric.sheet import ScoreSheet
from grader.sandbox.failure import exception_failure
from grader.sandbox.preflight import check_sandbox_starts
from grader.settings import Options, RunLimits
from grader.similarity import Code, LookAlike, code_of, look_alikes
from grader.verdict import Outcome, decide

__all__ = ["canvas_target", "check_moodle_worksheet", "Executor", "executor_for", "EXECUTORS", "FactsTask",
           "grade_class", "grade_facts", "grade_submission", "hand_in_at", "LmsExports", "load_bank", "load_rubric", "Options",
           "options_for", "portable_environment", "prepare_test_data", "read_grading", "record_grading", "Regrade",
           "regrade_report", "rerun_reasons", "Result", "write_student_copy", "RunLimits", "Shipped", "TestData", "keep_previous",
           "write_lms_exports", "write_outputs"]


@dataclass(frozen=True)
class Result:
    """One graded submission."""

    submission: Submission
    facts: Facts
    sheet: ScoreSheet
    seconds: float  # time spent grading it (for a cached result: when it was graded)
    cached: bool = False
    code: Optional[Code] = None  # its code cells and modules, read while the files were there (an LMS zip's are unpacked for a while)

    @property
    def student(self) -> str:
        return self.submission.student


Event = Callable[[str, Submission, Optional[Result]], None]  # ("queued" | "start" | "done", submission, result)


def options_for(rubric: Rubric, **overrides) -> Options:
    """What the rubric asks for (mode, limits, model variable, GPU), with overrides (None keeps the rubric's)."""
    base = Options(mode=rubric.mode, variable=rubric.model, limits=rubric.limits.run_limits(),
                   gpu=rubric.limits.gpu_option(), unseen=rubric.unseen,
                   variable_named="model" in rubric.model_fields_set or overrides.get("variable") is not None)
    options = base.with_(**overrides)
    if options.mode == "execute" and options.environment is None:  # only a run needs the grading environment
        env = grading_environment(rubric)
        options = options.with_(environment=env.path, compat=env.compat)
    return options


def grading_environment(rubric: Rubric) -> Environment:
    """The rubric's grading environment, built (GraderError saying to run `grade env build` when it is not)."""
    source = Path(rubric.source)
    return locate(rubric.environment or DEFAULT_ENVIRONMENT, source.parent if source.is_file() else None,
                  rubric=str(source) if source.is_file() else rubric.id)


def _with_quiz(facts: Facts, quiz: Optional[Bank], student: str) -> Facts:
    if quiz is None:
        return facts
    checked = check_answers(quiz, facts.quiz.answers or {}, student).to_facts()
    return facts.model_copy(update={"quiz": checked.model_copy(update={"answers": facts.quiz.answers,
                                                                       "error": facts.quiz.error})})


def _with_submission(facts: Facts, submission: Submission) -> Facts:
    """The hand-in's facts (what the LMS said: late; a link's commit), kept out of the cache: not the content's."""
    return facts.model_copy(update={"submission": facts.submission.model_copy(update={
        "late": submission.late, "link": submission.link, "commit": submission.commit,
        "commit_date": submission.commit_date, "notebook_path": submission.notebook_path})})


def check_deadline(deadline: Optional[str]) -> Optional[str]:
    """The deadline as ISO 8601 (what git's --before reads); GraderError when it is not a date and time."""
    if deadline is None:
        return None
    try:
        return datetime.fromisoformat(deadline.strip().replace("Z", "+00:00")).isoformat()
    except ValueError:
        raise GraderError(f"--deadline {deadline!r} is not a date and time", where="--deadline",
                          fix="write it like 2026-12-01T23:59 (local time) or 2026-12-01T23:59+01:00") from None


def _fetched(submission: Submission, scratch: Path, deadline: Optional[str], pattern: Optional[str]) -> Submission:
    """A link submission with its notebook fetched (path, digest, commit), or with the reason it could not be."""
    try:
        got = fetch(parse_link(submission.link or ""), scratch, deadline=deadline, pattern=pattern)
    except LinkError as err:
        return replace(submission, link_error=str(err))
    return replace(submission, path=got.path, root=got.root, handin=got.handin, digest=got.handin.digest,
                   commit=got.commit, commit_date=got.commit_date, notebook_path=got.notebook_path)


def grade_submission(path: Path, rubric: Rubric, options: Optional[Options] = None, *, student: Optional[str] = None,
                     model_file: Optional[Path] = None, quiz: Optional[Bank] = None, data: Optional[TestData] = None,
                     progress: Optional[Progress] = None, show_hidden: bool = True,
                     late: Optional[bool] = None, executor: Optional[Executor] = None,
                     root: Optional[Path] = None) -> Result:
    """Grade one hand-in: a file (.ipynb, .py, .pt2), or a folder holding the notebook. A bad notebook becomes a
    verdict; GraderError means the set-up is wrong. `root`: the hand-in's folder, whose files are staged with the
    notebook (`hand_in_at` finds it for a path a student gives); a folder given as `path` is its own hand-in; a
    file without `root` is graded alone.
    `late`: what the LMS says (the fact submission.late, for the rubric's late penalty). `executor`: where it runs
    (`executor_for`); by default here, in this thread, with `progress` told each stage."""
    path = Path(path)
    if path.is_dir():
        path, root = hand_in_at(path, rubric.notebook)
    options = options or options_for(rubric)
    submission = Submission(student or path.stem, path, content_key(path, root, model_file) if path.is_file() else "",
                            model_file, late=late, root=root)
    options = options.with_(limits=options.limits.with_cpus_for(_slots(executor)), warm=options.warm or executor is not None)
    if executor is None:
        started = time.monotonic()
        facts = grade_facts(path, options, progress or (lambda _: None), model_file=model_file, data=data, root=root)
        seconds = round(time.monotonic() - started, 2)
    else:
        if not path.is_file():  # what grade_facts would say, before anything is shipped
            raise GraderError("no such file", where=str(path),
                              fix="give the path of a .ipynb, .py or .pt2 submission")
        task = FactsTask(options, data=data, environment=portable_environment(rubric, options))
        [(_, (facts, seconds))] = list(executor.run(task, _items(executor, [submission])))
    facts = _with_submission(_with_quiz(facts, quiz, submission.student), submission)
    return Result(submission, facts, score(facts, rubric, show_hidden=show_hidden), seconds)


def _items(executor: Executor, submissions: list[Submission]) -> "list[Submission] | list[Shipped]":
    """What the executor is handed: the submissions, or their files as bytes when its tasks may run elsewhere."""
    return [Shipped.pack(s) for s in submissions] if getattr(executor, "remote", False) else submissions


# --- what an executor runs ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Shipped:
    """A submission with its files as bytes, for an executor whose tasks may run on another machine."""

    submission: Submission
    files: tuple[tuple[str, bytes], ...]  # (role, bytes): "submission" and, when handed in, "model"
    handin: tuple[tuple[str, bytes], ...] = ()  # the hand-in's staged files besides the notebook: (path, bytes)

    @staticmethod
    def pack(submission: Submission) -> "Shipped":
        files = [("submission", submission.path.read_bytes())]
        if submission.model is not None:
            files.append(("model", submission.model.read_bytes()))
        handin: tuple[tuple[str, bytes], ...] = ()
        if submission.root is not None:
            staged = submission.handin or collect(submission.root, submission.path)
            handin = tuple((f.path, (staged.root / f.path).read_bytes()) for f in staged.files
                           if f.path != staged.notebook)
            files[0] = ("submission/" + staged.notebook, files[0][1])
        return Shipped(submission, tuple(files), handin)

    def unpack(self, folder: Path) -> Submission:
        """The submission with its files written under `folder`, under their own names (facts may read them), its
        hand-in's files around the notebook as they lay."""
        paths = {"submission": self.submission.path, "model": self.submission.model}
        placed = {}
        for role, content in self.files:
            role, _, inside = role.partition("/")
            target = folder / role / (inside or Path(paths[role]).name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            placed[role] = target
        for inside, content in self.handin:
            target = folder / "submission" / inside
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        root = folder / "submission" if self.submission.root is not None else None
        listed = replace(self.submission.handin, root=root) if self.submission.handin is not None else None
        return replace(self.submission, path=placed["submission"], model=placed.get("model"), root=root,
                       handin=listed)


def _submission_of(item: "Submission | Shipped") -> Submission:
    return item.submission if isinstance(item, Shipped) else item


_NODE: dict[tuple, object] = {}  # per worker process: MNIST and grading environments, prepared once
_NODE_LOCK = threading.Lock()


def _once(key: tuple, make: Callable[[], object]) -> object:
    with _NODE_LOCK:
        if key not in _NODE:
            _NODE[key] = make()
        return _NODE[key]


@dataclass(frozen=True)
class FactsTask:
    """What an executor runs for one submission: its facts and the seconds they took. The driver resolves cache
    hits and link errors, caches, scores and reports; this is the part that may run on another machine.

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

    def __call__(self, item: "Submission | Shipped", gpu_index: Optional[int]) -> tuple[Facts, float]:
        if isinstance(item, Shipped):
            with tempfile.TemporaryDirectory(prefix="mnist-grader-shipped-") as tmp:
                return self._facts(item.unpack(Path(tmp)), gpu_index)
        return self._facts(item, gpu_index)

    def _facts(self, submission: Submission, gpu_index: Optional[int]) -> tuple[Facts, float]:
        options, data = self.options.with_(gpu_index=gpu_index), self.data
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


EXECUTORS = ("local", "ray")


def _slots(executor: Optional[Executor]) -> int:
    """How many submissions share this machine's cores at once: the pool's slots (1 without an executor; a Ray
    task's CPUs are its own, so cores // cores = 1 each)."""
    if executor is None:
        return 1
    return getattr(executor, "jobs", None) or os.cpu_count() or 1


def _local_executor(jobs: Optional[int], options: Options) -> LocalExecutor:
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
        yield _local_executor(jobs, options)
        return
    if name != "ray":
        raise GraderError(f"no executor named {name!r}", where="--executor",
                          fix="use one of: " + ", ".join(EXECUTORS))
    from grader.executors.ray_executor import RayExecutor  # Ray is optional: imported only when asked for

    with RayExecutor(address, cpus=options.limits.cpus or 1,
                     jobs_per_gpu=getattr(options.limits, "jobs_per_gpu", 1), gpu=options.gpu,
                     memory_bytes=options.limits.memory_bytes, jobs=jobs) as executor:
        yield executor


def grade_class(source: Path, rubric: Rubric, options: Optional[Options] = None, *, out: Path,
                executor: Optional[Executor] = None, jobs: Optional[int] = None, force: bool = False,
                quiz: Optional[Bank] = None, id_pattern: str = DEFAULT_ID_PATTERN, data: Optional[TestData] = None,
                on_event: Event = lambda *_: None, roster: Optional[Path] = None,
                only: Optional[str] = None, deadline: Optional[str] = None) -> Iterator[Result]:
    """Grade every submission in a folder or LMS zip; yields each Result as it finishes.

    Facts are cached in `out/.cache` (see grader.cache): unchanged submissions are only re-scored; a submission
    the grader failed on (verdict grader_failed) is not cached, so the next run grades it. Before anything runs,
    one trivial sandbox is started here: GraderError when the machine cannot sandbox (local executors).
    MNIST is located and its test set loaded once for the class (or given as `data`). `executor` decides where submissions
    run (default: a local pool of `jobs` slots, one per core or GPU). `roster` (a CSV: Canvas's gradebook
    export, Moodle's grading worksheet, or id,name,...) names the students the file names do not.
    `only` (a student id) grades that student again and gives everyone else's result from the cache without
    running anything; a student with nothing cached is left out (event "skipped"). Link submissions are fetched
    with git (`grader.links`): at the linked commit, else the last commit before `deadline` (ISO 8601).
    """
    deadline = check_deadline(deadline)
    options = options or options_for(rubric)
    with tempfile.TemporaryDirectory(prefix="mnist-grader-intake-") as tmp:
        root = Path(source)
        if root.suffix.lower() == ".zip":
            root = safe_extract(root, Path(tmp) / "class")
        submissions = discover(root, id_pattern, workspace=Path(tmp) / "handins", notebook=rubric.notebook)
        if roster is not None:
            listed = read_roster(roster)
            submissions = with_roster(submissions, listed) + not_handed_in(submissions, listed, Path(source))
        if data is None and options.mode != "static":
            data = prepare_test_data(options.data, unseen=options.unseen)
        cache = FactsCache(Path(out))
        # links are fetched every time (a branch moves), also under --only: the cache knows the notebooks, not links
        submissions = [_fetched(s, Path(tmp) / "links" / s.student, deadline, rubric.notebook)
                       if s.link is not None else s for s in submissions]
        if only is not None:
            ids = [s.student for s in submissions]
            if only not in ids:
                close = difflib.get_close_matches(only, ids, n=3)
                raise GraderError(f"--only {only}: no submission of that student in this class",
                                  where=str(source), fix=(f"did you mean {' or '.join(close)}? " if close else "")
                                  + f"the ids here are {', '.join(ids[:10])}" + (", ..." if len(ids) > 10 else ""))
            for submission in submissions:
                if submission.error is not None and submission.student != only:  # needs no run, nor the cache
                    yield _result(submission, _not_run(submission, options), 0.0, rubric, quiz)
                    continue
                hit = cache.get(cache.key(submission, options)) if submission.student != only else None
                if hit is not None:
                    yield _result(submission, hit[0], hit[1], rubric, quiz, cached=True)
                elif submission.student != only:
                    on_event("skipped", submission, None)
            submissions, force = [s for s in submissions if s.student == only], True
        executor = executor or _local_executor(jobs, options)
        options = options.with_(limits=options.limits.with_cpus_for(_slots(executor)), warm=True)
        task = FactsTask(options, data=data, environment=portable_environment(rubric, options))

        def result(submission: Submission, facts: Facts, seconds: float, cached: bool = False) -> Result:
            return _result(submission, facts, seconds, rubric, quiz, cached=cached)

        to_run: dict[str, str] = {}  # student -> cache key, for what the executor grades
        for submission in submissions:
            on_event("queued", submission, None)
        runnable = []
        for submission in submissions:  # the driver answers what needs no run: a link error, a cache hit
            if submission.error is not None:  # nothing to run: the link or the hand-in is the verdict
                done = result(submission, _not_run(submission, options), 0.0)
            else:
                key = cache.key(submission, options)
                hit = None if force else cache.get(key)
                if hit is None:
                    to_run[submission.student] = key
                    runnable.append(submission)
                    continue
                done = result(submission, hit[0], hit[1], cached=True)
            on_event("done", submission, done)
            yield done
        if runnable and options.mode != "static" and options.sandbox and not getattr(executor, "remote", False):
            check_sandbox_starts(options.limits)  # a machine that cannot sandbox stops here, not once per student
        items = _items(executor, runnable)
        run: Callable[..., tuple[Facts, float]] = task
        if getattr(executor, "remote", False):  # a remote task's start is not seen here: started once handed over
            for submission in runnable:
                on_event("start", submission, None)
        else:
            def run(submission: Submission, gpu_index: Optional[int]) -> tuple[Facts, float]:
                on_event("start", submission, None)
                return task(submission, gpu_index)
        for item, (facts, seconds) in executor.run(run, items):
            submission = _submission_of(item)
            cache.put(to_run[submission.student], facts, seconds)
            done = result(submission, facts, seconds)
            on_event("done", submission, done)
            yield done


def _not_run(submission: Submission, options: Options) -> Facts:
    """The facts of a submission with nothing to run: its verdict says why (the link, the hand-in, no file)."""
    return Facts(grading=GradingFacts(mode=options.mode), verdict=decide(Outcome(
        unreadable=submission.link_error or submission.unreadable, nothing_to_grade=submission.nothing_to_grade)))


def _result(submission: Submission, facts: Facts, seconds: float, rubric: Rubric, quiz: Optional[Bank], *,
            cached: bool = False) -> Result:
    """One student's Result: the hand-in's facts, the quiz checked, scored. A failure here (the quiz checker or
    scoring on this student's odd facts) makes this student not graded, saying what failed; never the class."""
    try:
        facts = _with_submission(_with_quiz(facts, quiz, submission.student), submission)
        sheet = score(facts, rubric)
    except Exception as exc:
        facts = facts.model_copy(update={"verdict": decide(Outcome(
            grader_failure=exception_failure(exc), grader_traceback=pysyntax.format_exc()[-2000:]))})
        sheet = score(facts, rubric)
    code = None if submission.error is not None else code_of(submission.hand_in())
    return Result(submission, facts, sheet, seconds, cached=cached, code=code)


def _predictions(facts: Facts, labels: np.ndarray) -> Optional[np.ndarray]:
    """The whole prediction array, rebuilt from the labels and the misclassified facts."""
    if facts.eval.misclassified is None or facts.eval.misclassified_as is None:
        return None
    predictions = labels.astype(int).copy()
    predictions[facts.eval.misclassified] = facts.eval.misclassified_as
    return predictions


Problem = Callable[[str, str], None]  # (student, what failed for that student in a class-level step)


def write_outputs(results: Iterable[Result], out: Path, *, data: Optional[TestData] = None,
                  on_problem: Problem = lambda *_: None) -> Path:
    """Write each student's report.html, report.md, results.json and facts.json (the student's copies), and the
    instructor's gradebook.csv, similarity.html (look-alike pairs, code side by side) and instructor.html (hidden
    items, look-alikes); returns gradebook.csv's path. Look-alikes go to the instructor's files only.

    The test images (for the misclassified digits) come from `data`, else from MNIST where the grader finds it
    when some result was measured; without them the reports leave the pictures of digits out.
    One student never stops the class: a step that fails for one student (the look-alike comparison, its
    reports) is told to `on_problem` and named in that student's `problems` cell; everyone else is written.
    """
    results = sorted(results, key=lambda r: r.student)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if data is None and any(r.facts.eval.accuracy is not None for r in results):
        data = prepare_test_data(None)
    problems: dict[str, list[str]] = {r.student: [] for r in results}

    def problem(student: str, what: str) -> None:
        problems[student].append(what)
        on_problem(student, what)

    codes = {r.student: r.code if r.code is not None else code_of(r.submission.hand_in()) for r in results}
    alike = look_alikes(codes, on_problem=problem)
    for r in results:  # the student's copies: nothing about look-alikes, no hidden item (grader.report.audience)
        try:
            write_student_copy(out, r.student, r.facts, r.sheet, seconds=r.seconds, name=r.submission.name, data=data)
        except Exception as exc:
            problem(r.student, f"reports not written ({exc.__class__.__name__}: {exc})"[:500])
    named = {r.student: r.submission.name for r in results}
    lines = [StudentLine(r.student, r.submission.name, r.sheet, _similar_to(alike.get(r.student, [])),
                         problems[r.student]) for r in results]
    write_class_pages(out, _pairs(alike, codes, named), lines,
                      title=", ".join(sorted({r.sheet.title for r in results})))
    return write_gradebook(out / "gradebook.csv",
                           gradebook_rows([GradebookEntry(line.student, line.sheet, r.facts, line.name, line.similar_to,
                                                          line.problems)
                                           for r, line in zip(results, lines)]))


def write_student_copy(out: Path, student: str, facts: Facts, sheet: ScoreSheet, *, seconds: float,
                       name: Optional[str] = None, data: Optional[TestData] = None) -> None:
    """One student's report.html, report.md, results.json and facts.json in out/<student>/ (the misclassified
    digits drawn when `data` is given)."""
    write_student_reports(out, student, facts, sheet, execution_time=seconds, name=name,
                          images=data.test.images if data else None, labels=data.labels if data else None,
                          predictions=_predictions(facts, data.labels) if data else None)


def _similar_to(pairs: list[LookAlike]) -> list[str]:
    return [f"{p.other} ({p.similarity:.0%})" for p in pairs]


def _pairs(alike: dict[str, list[LookAlike]], codes: dict[str, Optional[Code]],
           names: dict[str, Optional[str]]) -> list[Pair]:
    """Each look-alike pair once, with the code it was found in: the modules alone when they were the match."""
    def side(student: str, modules: bool) -> Side:
        code = codes[student]
        text = "" if code is None else code.modules if modules else \
            "\n\n".join(part for part in (code.notebook, code.modules) if part)
        return Side(student, names.get(student), text)

    return [Pair(side(a, p.modules), side(p.other, p.modules), p.similarity, p.modules)
            for a, found in alike.items() for p in found if a < p.other]


# --- what goes back to the LMS --------------------------------------------------------------------------------

@dataclass(frozen=True)
class LmsExports:
    written: dict[str, Path]  # "canvas" | "moodle_worksheet" | "moodle_feedback" -> the file
    notes: list[str]  # what was not written, or not matched, and what to do about it


def canvas_target(rubric: Rubric, assignment_id: Optional[str] = None,
                  roster: Optional[Path] = None) -> Optional[tuple[str, str]]:
    """(assignment id, title) for canvas.csv: the id given, else the one assignment of a Canvas gradebook export
    given as the roster (or the one titled like the rubric); None when neither names one."""
    if assignment_id is not None and not str(assignment_id).isdigit():
        raise GraderError(f"--canvas-assignment-id {assignment_id!r} is not a number", where="--canvas-assignment-id",
                          fix="give the number after /assignments/ in the assignment's Canvas address")
    assignments = canvas_assignments(Path(roster)) if roster is not None else {}
    if assignment_id is not None:
        return str(assignment_id), assignments.get(str(assignment_id), rubric.title)
    if len(assignments) == 1:
        return next(iter(assignments.items()))
    titled = [(i, t) for i, t in assignments.items() if t.strip().casefold() == rubric.title.strip().casefold()]
    if len(titled) == 1:
        return titled[0]
    if assignments:
        listed = ", ".join(f"{t} ({i})" for i, t in assignments.items())
        raise GraderError(f"the Canvas gradebook export has {len(assignments)} assignments ({listed}) and none is "
                          f"titled like the rubric ({rubric.title!r})", where=str(roster),
                          fix="say which with --canvas-assignment-id N")
    return None


def write_lms_exports(results: Iterable[Result], out: Path, rubric: Rubric, *,
                      canvas_assignment_id: Optional[str] = None, roster: Optional[Path] = None,
                      moodle_worksheet: Optional[Path] = None) -> LmsExports:
    """Files that import back into the LMS, beside the gradebook in `out` (write_outputs wrote the reports):

    Students on the roster who handed in nothing are left out of these files (their gradebook row is there).
    canvas.csv (Canvas's Gradebook import) when an assignment is known (`canvas_target`); the Moodle grading
    worksheet filled in (same file name, in `out`) when one is given; moodle-feedback.zip (each report.html, for
    "Upload multiple feedback files in a zip") when the submissions carry Moodle's participant numbers and names.
    """
    results = sorted(results, key=lambda r: r.student)
    out = Path(out)
    written: dict[str, Path] = {}
    notes: list[str] = []
    absent = [r.student for r in results if not r.submission.handed_in]
    results = [r for r in results if r.submission.handed_in]  # the LMS's own policy for missing work applies
    target = canvas_target(rubric, canvas_assignment_id, roster)
    if target is not None:
        students = [CanvasStudent(r.student, r.sheet.score_out_of(rubric.max_score), r.submission.name,
                                  r.submission.sis_user_id,
                                  r.submission.sis_login_id, r.submission.section) for r in results]
        written["canvas"] = write_canvas_csv(out / "canvas.csv", canvas_rows(
            students, title=target[1], assignment_id=target[0], points_possible=rubric.max_score))
        odd = [r.student for r in results if not r.student.isdigit()]
        if odd:
            notes.append(f"canvas.csv: {', '.join(odd)} are not Canvas user ids (not numbers), so Canvas will not "
                         "match them; grade the zip Canvas exported, or give --roster")
    elif any(r.submission.lms == "canvas" for r in results):
        notes.append("canvas.csv not written: Canvas file names carry no assignment id; give --canvas-assignment-id N "
                     "(the number after /assignments/ in its address) or --roster with Canvas's gradebook export")
    if moodle_worksheet is not None:
        source = Path(moodle_worksheet)
        text = check_moodle_worksheet(source)
        see = "The attached report.html explains each item."
        grades = [MoodleGrade(r.student, r.sheet.score, r.sheet.max_score, student_comment(r.sheet, see=see))
                  for r in results if r.sheet.score is not None]  # not graded: the row is left as Moodle wrote it
        filled, unmatched = fill_worksheet(text, grades)
        target_path = out / source.name
        with open(target_path, "w", encoding="utf-8", newline="") as fh:
            fh.write(filled)
        written["moodle_worksheet"] = target_path
        if unmatched:
            notes.append(f"{source.name}: no row for participant {', '.join(unmatched)} (graded, but not in the "
                         "worksheet: download it again after they submitted)")
        if not has_feedback_column(text):
            notes.append(f"{source.name}: no Feedback comments column, so only grades were written; turn on "
                         "Feedback comments (and the offline grading worksheet) in the assignment's settings")
    moodle = [r for r in results if r.submission.lms == "moodle" or moodle_worksheet is not None]
    if moodle:
        named = [r for r in moodle if r.submission.name and r.sheet.score is not None
                 and (out / r.student / "report.html").is_file()]
        if named:
            path = out / "moodle-feedback.zip"
            with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
                for r in named:
                    zf.write(out / r.student / "report.html", feedback_entry(r.submission.name, r.student))
            written["moodle_feedback"] = path
        nameless = [r.student for r in moodle if not r.submission.name]
        if nameless:
            notes.append("moodle-feedback.zip leaves out " + ", ".join(nameless)
                         + ": no name known (Moodle matches on name and participant); give --roster")
    if absent and written:
        notes.append(f"{', '.join(absent)}: on the roster with no hand-in, so left as they are in every file for the "
                     "LMS (its policy for missing work applies); their gradebook rows say so")
    not_graded = [r.student for r in results if r.sheet.score is None]
    if not_graded and written:
        notes.append(f"{', '.join(not_graded)}: not graded (the grader failed), so left blank in every file for "
                     "the LMS; grade again once the grader works")
    return LmsExports(written, notes)


def check_moodle_worksheet(path: Path) -> str:
    """The worksheet's text, checked to be one (GraderError says what to download instead)."""
    text = _read_worksheet(path)
    try:
        fill_worksheet(text, [])
    except WorksheetError as err:
        raise GraderError(f"not a Moodle grading worksheet: {err}", where=str(path),
                          fix="download it from the assignment: View all submissions > Grading action > "
                              "Download grading worksheet") from None
    return text


def _read_worksheet(path: Path) -> str:
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return fh.read()
    except OSError as exc:
        raise GraderError(f"cannot read the Moodle grading worksheet ({exc.strerror})", where=str(path),
                          fix="give the CSV Moodle's Download grading worksheet saved") from None
    except UnicodeDecodeError:
        raise GraderError("the Moodle grading worksheet is not UTF-8 (it was saved by a spreadsheet?)",
                          where=str(path), fix="download it again from Moodle and give that file unchanged") from None


# --- re-grading: what the last grading was, and what a new one changed -----------------------------------------

GRADING_RECORD = "grading.json"  # beside gradebook.csv: the rubric and run settings it was graded with


def record_grading(folder: Path, rubric: Rubric, options: Options) -> Path:
    """Write `folder`/grading.json: the rubric (id, title, file, its SHA-256) and the settings the facts were
    measured under (`FactsCache.settings`), which the next grading into the folder compares with."""
    source = Path(rubric.source)
    record = {"rubric": rubric.id, "title": rubric.title, "source": str(rubric.source),
              "rubric_sha256": hashlib.sha256(source.read_bytes()).hexdigest() if source.is_file() else None,
              "settings": FactsCache.settings(options)}
    path = Path(folder) / GRADING_RECORD
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def read_grading(folder: Path) -> Optional[dict]:
    """What `record_grading` wrote in `folder`; None when nothing (or something unreadable) is there."""
    try:
        record = json.loads((Path(folder) / GRADING_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def rerun_reasons(recorded: Optional[dict], options: Options) -> list[str]:
    """Each run setting that differs between a grading record's and `options` ("mode static→evaluate"): facts
    measured under other settings cannot be re-scored, the submission must run again."""
    before = (recorded or {}).get("settings") or {}
    now = FactsCache.settings(options)
    return [f"{name} {_shown(before.get(name))}→{_shown(now.get(name))}" for name in sorted(set(before) | set(now))
            if before.get(name) != now.get(name)]


def _shown(value: object) -> str:
    return "none" if value is None else value if isinstance(value, str) else json.dumps(value, sort_keys=True)


@dataclass(frozen=True)
class Previous:
    """The gradebook a grading into an existing folder replaces, kept as gradebook.previous.csv."""

    standings: dict[str, Standing]
    record: Optional[dict]  # its grading.json; None when it was graded before grading.json was written
    path: Path


def keep_previous(out: Path) -> Optional[Previous]:
    """Before a grading writes `out`: copy its gradebook.csv to gradebook.previous.csv (the "before" of the diff,
    kept for audit) and read it with its grading record; None when `out` holds no gradebook."""
    current = Path(out) / "gradebook.csv"
    if not current.is_file():
        return None
    kept = shutil.copyfile(current, Path(out) / "gradebook.previous.csv")
    return Previous(read_gradebook(kept), read_grading(out), kept)


@dataclass(frozen=True)
class Regrade:
    """What grading a class again into the same folder changed."""

    changes: list[Change]
    tally: Tally
    rescored: int  # from cached facts, nothing run
    rerun: int  # run again: new or changed files, or facts measured under other settings
    before: str  # what "before" is, in words
    settings_changed: list[str]  # rerun_reasons against the last grading
    path: Path  # changes.csv
    previous: Path  # gradebook.previous.csv

    def lines(self) -> list[str]:
        said = [f"re-grade: {self.tally.line()}; {self.rescored} re-scored from cached facts (not run), "
                f"{self.rerun} run", f"before: {self.before}"]
        if self.settings_changed:
            said.append("the facts were measured under other run settings (" + ", ".join(self.settings_changed)
                        + "): submissions graded under them ran again")
        said.append(f"changes: {self.path} (before: {self.previous})")
        return said


def regrade_report(previous: Previous, results: Iterable[Result], rubric: Rubric, options: Options,
                   out: Path) -> Regrade:
    """After a grading wrote `out` over `previous`: the changes (written to changes.csv) and what they compare."""
    results = list(results)
    changes = diff(previous.standings, {r.student: Standing.of(r.student, r.sheet) for r in results})
    record = previous.record
    if record is None:
        before = (f"{previous.path.name}, graded before the rubric was recorded: if that was not rubric "
                  f"{rubric.id}, these changes compare two rubrics")
    elif record.get("rubric") != rubric.id:
        before = (f"rubric {record.get('rubric')} ({record.get('title')}), another rubric than {rubric.id} "
                  f"({rubric.title}): the changes compare two rubrics' scores")
    else:
        source = Path(rubric.source)
        digest = hashlib.sha256(source.read_bytes()).hexdigest() if source.is_file() else None
        same = "the same file, unchanged" if digest is not None and digest == record.get("rubric_sha256") else \
            f"as graded from {record.get('source')}" + (" (since changed)" if digest is not None else "")
        before = f"rubric {rubric.id}, {same}"
    return Regrade(changes, tally(changes), sum(r.cached for r in results),
                   sum(not r.cached and r.submission.error is None for r in results), before,
                   rerun_reasons(record, options) if record is not None else [],
                   write_changes(Path(out) / "changes.csv", changes), previous.path)
