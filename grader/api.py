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

Behind it: the class driver (`grader.class_driver`), what a class writes (`grader.class_outputs`), re-grading
(`grader.regrade`), the LMS files (`grader.report.lms`) and where submissions run (`grader.executors`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from grader.class_driver import ClassSource, grade_class
from grader.class_outputs import write_outputs, write_student_copy
from grader.data.staging import TestData, prepare_test_data
from grader.env.build import Environment, locate
from grader.env.spec import DEFAULT_ENVIRONMENT
from grader.errors import GraderError
from grader.executors import Executor
from grader.executors.facts_task import FactsTask, portable_environment
from grader.executors.local import slots
from grader.executors.named import EXECUTORS, executor_for
from grader.executors.shipped import handed_over
from grader.intake import Submission, content_key, hand_in_at
from grader.pipeline import Progress, grade_facts
from grader.quiz.bank import Bank, load_bank
from grader.regrade import Regrade, keep_previous, read_grading, record_grading, regrade_report, rerun_reasons
from grader.report.lms import LmsExports, canvas_target, check_moodle_worksheet, write_lms_exports
from grader.result import Result, with_quiz, with_submission
from grader.rubric.load import load_rubric
from grader.rubric.schema import Rubric
from grader.rubric.score import score
from grader.settings import Options, RunLimits

__all__ = ["canvas_target", "check_moodle_worksheet", "ClassSource", "Executor", "executor_for", "EXECUTORS",
           "grade_class", "grade_facts", "grade_submission", "grading_environment", "hand_in_at", "keep_previous",
           "LmsExports", "load_bank", "load_rubric", "Options", "options_for", "prepare_test_data", "read_grading",
           "record_grading", "Regrade", "regrade_report", "rerun_reasons", "Result", "RunLimits", "TestData",
           "write_lms_exports", "write_outputs", "write_student_copy"]


def options_for(rubric: Rubric, **overrides) -> Options:
    """What the rubric asks for (mode, limits, model variable, GPU), with overrides (None keeps the rubric's)."""
    base = Options(mode=rubric.mode, variable=rubric.model, limits=rubric.limits.run_limits(),
                   gpu=rubric.limits.gpu_option(), unseen=rubric.unseen,
                   variable_named="model" in rubric.model_fields_set or overrides.get("variable") is not None)
    options = base.with_overrides(**overrides)
    if options.mode == "execute" and options.environment is None:  # only a run needs the grading environment
        env = grading_environment(rubric)
        options = options.with_(environment=env.path, compat=env.compat)
    return options


def grading_environment(rubric: Rubric) -> Environment:
    """The rubric's grading environment, built (GraderError saying to run `grade env build` when it is not)."""
    source = Path(rubric.source)
    return locate(rubric.environment or DEFAULT_ENVIRONMENT, source.parent if source.is_file() else None,
                  rubric=str(source) if source.is_file() else rubric.id)


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
    options = options.with_(limits=options.limits.with_cpus_for(slots(executor)),
                            warm=options.warm or executor is not None)
    if executor is None:
        started = time.monotonic()
        facts = grade_facts(path, options, progress or (lambda _: None), model_file=model_file, data=data, root=root)
        seconds = round(time.monotonic() - started, 2)
    else:
        if not path.is_file():  # what grade_facts would say, before anything is shipped
            raise GraderError("no such file", where=str(path),
                              fix="give the path of a .ipynb, .py or .pt2 submission")
        task = FactsTask(options, data=data, environment=portable_environment(rubric, options))
        [(_, (facts, seconds))] = list(executor.run(task, handed_over(executor, [submission])))
    facts = with_submission(with_quiz(facts, quiz, submission.student), submission)
    return Result(submission, facts, score(facts, rubric, show_hidden=show_hidden), seconds)
