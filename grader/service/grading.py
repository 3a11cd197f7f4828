"""The one place the service grades: a job's files through grader.api, reports written per attempt; and
self-checks, which stop at the score sheet (no report, no gradebook: checked, not graded)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Optional

from grader.api import (
    Executor,
    Options,
    TestData,
    executor_for,
    grade_submission,
    options_for,
    prepare_test_data,
    read_grading,
    record_grading,
    rerun_reasons,
    write_outputs,
    write_student_copy,
)
from grader.errors import GraderError
from grader.facts import Facts
from grader.links import LinkError, fetch, parse_link
from grader.rubric.score import score
from grader.rubric.sheet import ScoreSheet
from grader.service.assignments import Assignment, Assignments
from grader.service.store import Job, JobResult, Unusable

DEPTHS: dict[str, dict[str, Any]] = {"static": {"mode": "static"},
                                     "dry-run": {"dry_run": True}}  # a self-check's options, by its depth

# Matplotlib's pyplot state is process-wide: two threads drawing report plots at once can mix figures.
_REPORTS = threading.Lock()


def folder_name(student: str) -> str:
    """The student id as one safe path component (LTI user ids are opaque strings of up to 255 characters)."""
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}", student):
        return student
    return "student-" + hashlib.sha256(student.encode()).hexdigest()[:16]


class Grader:
    """Grades jobs. Reports go to reports/<job id>/attempt-<n>/<student>/: an attempt that lost its
    lease never overwrites the files of the attempt that completed.

    Each job runs through the executor named `executor` (grader.api.executor_for): `local`, a pool of `slots` on
    this machine, or `ray`, a Ray task on the cluster at `address`, sized by the assignment's rubric."""

    def __init__(self, assignments: Assignments, reports: Path, scratch: Path, data: Optional[str] = None, *,
                 executor: str = "local", address: Optional[str] = None, slots: int = 1):
        self.assignments, self.reports, self.scratch, self.data = assignments, Path(reports), Path(scratch), data
        self.executor, self.address, self.slots = executor, address, slots
        self._test_data: Optional[TestData] = None
        self._loading = threading.Lock()
        self._executors: dict[str, Executor] = {}  # per assignment: its rubric sizes the tasks
        self._open = contextlib.ExitStack()

    def open(self) -> None:
        """At start: reach the executor once (Ray missing or a wrong --address stops the server here, not a job)."""
        with self._loading:
            self._open.enter_context(executor_for(self.executor, self.address, self.slots, Options()))

    def close(self) -> None:
        """At stop, after the workers: shut down what open() and the jobs started (a local Ray)."""
        with self._loading:
            self._executors.clear()
            self._open.close()

    def executor_of(self, assignment: str, options: Options) -> Executor:
        with self._loading:
            if assignment not in self._executors:
                self._executors[assignment] = self._open.enter_context(
                    executor_for(self.executor, self.address, self.slots, options))
            return self._executors[assignment]

    def clear_scratch(self) -> None:
        """At start, before any worker runs: what a killed server was grading is no one's any more."""
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.scratch.mkdir(parents=True, exist_ok=True)

    def test_data(self) -> TestData:
        """MNIST's test set, loaded once for every job that measures a model."""
        with self._loading:
            if self._test_data is None:
                self._test_data = prepare_test_data(self.data)
            return self._test_data

    def __call__(self, job: Job, notebook: bytes, model: Optional[bytes]) -> JobResult:
        assignment = self.assignments.get(job.assignment)
        if job.selfcheck:
            return self._selfcheck(job, assignment, notebook)
        options = options_for(assignment.rubric, data=self.data)
        data = None if options.mode == "static" else self.test_data()
        student = folder_name(job.student)
        with tempfile.TemporaryDirectory(prefix=f"{job.id}-", dir=self.scratch) as tmp:
            path = Path(tmp) / "notebook.ipynb"
            path.write_bytes(notebook)
            model_file = None
            if model is not None:
                model_file = Path(tmp) / "model.pt2"
                model_file.write_bytes(model)
            result = grade_submission(path, assignment.rubric, options, student=student, model_file=model_file,
                                      data=data, executor=self.executor_of(assignment.id, options))
        attempt = Path(job.id) / f"attempt-{job.attempts}"
        with _REPORTS:
            write_outputs([result], self.reports / attempt, data=data)
        record_grading(self.reports / attempt, assignment.rubric, options)  # what a re-grade compares with
        return _job_result(job, result.sheet, str(attempt / student))

    def _selfcheck(self, job: Job, assignment: Assignment, notebook: bytes) -> JobResult:
        """A static check or a dry run of the uploaded notebook, or of the linked repository's (fetched here, with
        git): the whole sheet, which only ever leaves as the student's copy (`selfcheck.describe`: hidden items as
        one untitled line, as results.json serves them); nothing written besides the scratch folder."""
        assert job.depth is not None, f"self-check job {job.id} without its depth"
        options = options_for(assignment.rubric, data=self.data, **DEPTHS[job.depth])
        with tempfile.TemporaryDirectory(prefix=f"{job.id}-", dir=self.scratch) as tmp:
            root = None
            if job.link:
                try:
                    got = fetch(parse_link(job.link), Path(tmp) / "link", pattern=assignment.rubric.notebook)
                except LinkError as err:
                    raise Unusable(str(err)) from None
                path, root = got.path, got.root
            else:
                path = Path(tmp) / "notebook.ipynb"
                path.write_bytes(notebook)
            result = grade_submission(path, assignment.rubric, options, student="selfcheck", root=root,
                                      executor=self.executor_of(assignment.id, options))
        return _job_result(job, result.sheet, "")


    def rescored(self, job: Job, assignment: Assignment, options: Options) -> ScoreSheet | str:
        """The sheet the assignment's rubric now gives a graded job, from the facts stored with its report; or,
        as text, why its facts cannot be re-scored and the submission must run again."""
        folder = self.reports / (job.report_dir or "")
        try:
            facts = Facts.model_validate(json.loads((folder / "facts.json").read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return f"its stored facts ({folder / 'facts.json'}) are missing or unreadable"
        record = read_grading(folder.parent)
        if record is None:  # graded before grading.json was written: the depth is all that is known
            why = [] if facts.grading.mode == options.mode else [f"mode {facts.grading.mode}→{options.mode}"]
        else:
            why = rerun_reasons(record, options)
        if why:
            return "its facts were measured under other run settings (" + ", ".join(why) + ")"
        return score(facts, assignment.rubric)

    def rewrite_report(self, job: Job, assignment: Assignment, options: Options, sheet: ScoreSheet) -> None:
        """The job's report, written again for its new sheet (the student's page shows what was passed back)."""
        folder = self.reports / (job.report_dir or "")
        facts = Facts.model_validate(json.loads((folder / "facts.json").read_text(encoding="utf-8")))
        data = self.test_data() if facts.eval.accuracy is not None else None
        seconds = round((job.finished or 0) - (job.started or job.finished or 0), 2)
        with _REPORTS:
            write_student_copy(folder.parent, folder.name, facts, sheet, seconds=seconds, data=data)
        record_grading(folder.parent, assignment.rubric, options)


def _job_result(job: Job, sheet: ScoreSheet, report_dir: str) -> JobResult:
    if sheet.score is None:  # the machine failed, not the submission: no grade goes back; the job fails
        raise GraderError(f"not graded, the grader failed: {sheet.verdict_message}", where=f"job {job.id}",
                          fix="fix the grading server; the job can then be graded again")
    return JobResult(score=sheet.score, max_score=sheet.max_score, passed=sheet.passed,
                     sheet=sheet.model_dump(mode="json"), report_dir=report_dir)
