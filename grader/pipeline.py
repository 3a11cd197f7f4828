"""One submission through the data flow: static inspection -> sandboxed execution -> clean evaluation -> facts.

Modes: `static` (no student code runs), `evaluate` (the submission is an exported
model: no student code runs), `execute` (run the notebook in the sandbox, then evaluate).
Each stage reports what it saw; `grader.verdict.decide` turns that into the verdict,
and `grader.facts.with_derived` adds the facts computed from other facts.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Optional, get_args

import nbformat
import numpy as np

from grader import pysyntax
from grader.data.preprocess import COURSE_PREPROCESS
from grader.data.staging import TestData, prepare_test_data
from grader.errors import GraderError
from grader.evaluate.job import Evaluation, evaluate_model, prestart_evaluator, unreadable_model
from grader.evaluate.keras_job import evaluate_keras_model
from grader.execute.job import Execution, execute_notebook
from grader.execute.records import ModelFile
from grader.facts import EvalFacts, Facts, GradingFacts, HandedFile, LeftOutFile, QuizFacts, with_derived
from grader.handin import HandIn, collect
from grader.inspect.claims import find_claims
from grader.inspect.notebook import cells_of
from grader.inspect.static import StaticReport, inspect_submission
from grader.quiz.answers import from_notebook, has_quiz_cell
from grader.sandbox.failure import environment_failure, exception_failure
from grader.sandbox.readback import Folder, Kind, Missing, ReadbackError
from grader.settings import Options
from grader.verdict import Outcome, decide

MODEL_SUFFIXES = (".pt2",)

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def grade_facts(path: Path, options: Options, progress: Progress = _quiet, *, model_file: Optional[Path] = None,
                data: Optional[TestData] = None, root: Optional[Path] = None,
                handin: Optional[HandIn] = None) -> Facts:
    """Every fact the stages can establish about one submission.

    `model_file`: an exported model handed in with the notebook; in `evaluate` mode it is what gets measured.
    `root`: the hand-in's folder (grader.handin): its files are staged with the notebook and listed in the facts
    (`submission.files`, `submission.left_out`); None: the notebook alone. `handin`: that folder as already listed
    (a fetched link's tree, with what git left out), else listed here.
    `data`: MNIST, staged and loaded once by the caller (a class shares it); found here when not given.
    Raises GraderError only for what stops every submission alike (no bubblewrap, no data, a missing file);
    whatever goes wrong with this one submission becomes its verdict: the grader's own failures (a sandbox that
    never started, a cgroup it could not make, a bug) `grader_failed`, which is not a grade.
    """
    path = Path(path)
    if not path.is_file():
        raise GraderError("no such file", where=str(path), fix="give the path of a .ipynb, .py or .pt2 submission")
    graded = GradingFacts(mode="evaluate" if path.suffix.lower() in MODEL_SUFFIXES else options.mode,
                          dry_run=options.dry_run and options.mode == "execute")
    try:
        if handin is None and root is not None:
            handin = collect(root, path)
        facts = _stages(path, options, progress, model_file, data, handin)
        graded = graded.model_copy(update={"isolation": facts.grading.isolation})  # the run's, when there was one
        return with_derived(facts.model_copy(update={"grading": graded}))
    except GraderError:
        raise
    except Exception as exc:  # the grader failed on one submission (a cgroup, a bug): not graded, not a zero
        return Facts(grading=graded, verdict=decide(Outcome(grader_failure=exception_failure(exc),
                                                            grader_traceback=pysyntax.format_exc()[-2000:])))


def _handed_in(handin: HandIn) -> dict:
    """The facts of what was staged with the notebook (submission.files, submission.left_out)."""
    return {"files": [HandedFile(path=f.path, bytes=f.size, sha256=f.sha256) for f in handin.files],
            "left_out": [LeftOutFile(path=p, reason=why) for p, why in handin.left_out]}


def _stages(path: Path, options: Options, progress: Progress, model_file: Optional[Path],
            data: Optional[TestData], handin: Optional[HandIn]) -> Facts:
    if path.suffix.lower() in MODEL_SUFFIXES:
        return _measure(path, Facts(), Outcome(limits=options.limits), options, progress, data)
    progress("inspecting")
    try:
        report = inspect_submission(path)
    except GraderError as err:  # a broken notebook is a verdict for that student, not an error of the run
        return Facts(verdict=decide(Outcome(unreadable=err.render())))
    facts = Facts(notebook=report.notebook_facts, claims=report.claims,
                  quiz=_quiz_answers(report))
    if handin is not None:
        facts = facts.model_copy(update={"submission": facts.submission.model_copy(update=_handed_in(handin))})
    if options.mode == "static":
        return facts
    if options.mode == "evaluate":
        saved = Outcome(limits=options.limits, saved_failed_cells=report.notebook_facts.saved_error_cells)
        if model_file is None:
            return facts.model_copy(update={"verdict": decide(Outcome(no_model_file=True,
                                                                      saved_failed_cells=saved.saved_failed_cells))})
        return _measure(model_file, facts, saved, options, progress, data)
    return _execute(report, facts, options, progress, _test_data(data, options), handin)


def _execute(report: StaticReport, facts: Facts, options: Options, progress: Progress, data: TestData,
             handin: Optional[HandIn]) -> Facts:
    missing = environment_failure(options.environment)
    if missing is not None:  # the kernel could not start: not the notebook's crash
        return facts.model_copy(update={"verdict": decide(Outcome(grader_failure=missing))})
    with tempfile.TemporaryDirectory(prefix="mnist-grader-") as tmp:
        jobdir = Path(tmp)
        progress("running the notebook" + (" (dry run)" if options.dry_run else ""))
        prestart_evaluator(data.staged, options, measure=not options.dry_run, unseen=_unseen(data, options))
        execution = execute_notebook(report.notebook, options, jobdir=jobdir, staged=data.staged,
                                     mnist_roots=report.mnist_roots, handin=handin)
        outcome = Outcome(execution=execution, limits=options.limits, dry_run=options.dry_run,
                          handed_in=tuple(f.path for f in handin.files) if handin else (),
                          notebook_dir=handin.notebook_dir if handin else "")
        facts = facts.model_copy(update={"grading": GradingFacts(isolation=execution.sandbox.limits_used)})
        if not options.dry_run:  # a dry run trained nothing: its counters and printed accuracy would mislead
            facts = facts.model_copy(update={"train": execution.train, "claims": facts.claims.model_copy(
                update={"run_accuracy": _printed_while_graded(execution)})})
        else:  # which model was graded and why, the shims and pip installs: true in a dry run too
            facts = facts.model_copy(update={"train": execution.observed})
        evaluation = None
        if decide(outcome).kind == "ok":
            progress("reading the model" if options.dry_run else "measuring the model")
            evaluation = _evaluate_execution(execution, data, jobdir, options)
        if options.keep:
            _keep(execution, options.keep)
    return _with_evaluation(facts, evaluation, outcome, execution)


def _evaluate_execution(execution: Execution, data: TestData, jobdir: Path, options: Options) -> Evaluation:
    harness = execution.harness
    assert harness is not None and harness.export is not None, "an ok verdict has the harness's record of the export"
    export = harness.export
    labels = None if options.dry_run else data.labels
    preprocess = harness.preprocess or COURSE_PREPROCESS
    if preprocess.kind == "other":  # the grader makes the test inputs itself; a transform it cannot replay is not run
        preprocess = COURSE_PREPROCESS
    try:
        out = execution.output()
    except ReadbackError as err:  # the notebook replaced the output folder after the records were read
        return Evaluation(EvalFacts(path=export.path), None, None, unreadable_model(err))
    with out:  # export.file is one of the fixed names (records.ModelFile), read relative to the folder
        assert export.file is not None, f"an export by {export.path} names its file"
        if export.path == "keras":  # a .keras file: loaded with safe_mode=True by the grading environment's Python
            assert preprocess.scale is not None and preprocess.shift is not None, "the Keras harness finds affine maps"
            return evaluate_keras_model(out, export.file, options, layout=export.layout, scale=preprocess.scale,
                                        shift=preprocess.shift, staged=data.staged, labels=labels, jobdir=jobdir)
        return evaluate_model(out, export.file, export.path, options, preprocess=preprocess, staged=data.staged,
                              labels=labels, jobdir=jobdir, static_batch=export.batch, unseen=_unseen(data, options))


def _test_data(data: Optional[TestData], options: Options) -> TestData:
    """The class's test data, or loaded here: also when the run asks for unseen digits the class's data lacks."""
    if data is None or (options.unseen and data.unseen is None):
        return prepare_test_data(options.data, unseen=options.unseen)
    return data


def _unseen(data: TestData, options: Options) -> Optional[tuple[Path, np.ndarray]]:
    """QMNIST's digits beyond MNIST, when the run asked for them (Options.unseen)."""
    if not options.unseen or data.unseen is None:
        return None
    assert data.unseen_images is not None, "prepare_test_data writes the unseen digits' images with their labels"
    return data.unseen_images, data.unseen.labels


def _with_evaluation(facts: Facts, evaluation: Optional[Evaluation], outcome: Outcome,
                     execution: Optional[Execution]) -> Facts:
    update: dict = {}
    if evaluation is not None:
        update["eval"] = evaluation.eval
        if evaluation.model is not None:
            update["model"] = evaluation.model
        elif execution is not None and execution.harness and execution.harness.params:
            params = execution.harness.params.model_dump()
            update["model"] = facts.model.model_copy(update={"params": facts.model.params.model_copy(update=params)})
        outcome = replace(outcome, evaluation_error=evaluation.error, evaluated=True, lookup=evaluation.lookup,
                          grader_failure=evaluation.host_failure)
    update["verdict"] = decide(outcome)
    return facts.model_copy(update=update)


def _measure(model_file: Path, facts: Facts, outcome: Outcome, options: Options, progress: Progress,
             data: Optional[TestData]) -> Facts:
    """An exported model (handed in alone, or beside the notebook in evaluate mode): no student code runs."""
    data = _test_data(data, options)
    model_file = model_file.resolve()  # a link the instructor's folder holds is followed here, to a file read as any
    with tempfile.TemporaryDirectory(prefix="mnist-grader-") as tmp, Folder(model_file.parent) as folder:
        progress("measuring the model")
        evaluation = evaluate_model(folder, model_file.name, "export", options, preprocess=COURSE_PREPROCESS,
                                    staged=data.staged, labels=data.labels, jobdir=Path(tmp),
                                    unseen=_unseen(data, options))
    return _with_evaluation(facts, evaluation, outcome, None)


def _printed_while_graded(execution: Execution) -> Optional[float]:
    """The best test accuracy the notebook printed while the grader ran it (a second source of claims)."""
    try:
        with execution.output() as out:
            notebook = nbformat.reads(out.text("executed.ipynb", Kind.NOTEBOOK), as_version=4)
    except (ReadbackError, ValueError, RecursionError):  # missing, tampered with, or not a notebook: no claim
        return None
    code = ((cell.index, cell.outputs) for cell in cells_of(notebook) if cell.kind == "code")
    return find_claims(code).facts().accuracy


def _quiz_answers(report: StaticReport) -> QuizFacts:
    """The answers in the cell tagged `quiz`, read with the rest of the notebook: none when there is no such cell,
    and the reason (`quiz.error`) when there is one that holds nothing readable."""
    if not has_quiz_cell(report.notebook):
        return QuizFacts()
    try:
        return QuizFacts(answers=dict(from_notebook(report.notebook, report.path.name)))
    except GraderError as err:
        return QuizFacts(error=err.render())


def _keep(execution: Execution, keep: Path) -> None:
    """The executed notebook and the saved model, copied for the instructor through grader.sandbox.readback."""
    keep.mkdir(parents=True, exist_ok=True)
    kinds = {"executed.ipynb": Kind.NOTEBOOK, **{name: Kind.MODEL for name in get_args(ModelFile)}}
    try:
        with execution.output() as out:
            for name, kind in kinds.items():
                part = keep / f".{name}.part"  # a file of this run replaces one kept before, never an absent one
                part.unlink(missing_ok=True)
                try:
                    out.copy(name, kind, part)
                except Missing:
                    continue
                except ReadbackError as err:
                    log.warning("not kept: %s", err)
                    continue
                part.replace(keep / name)
    except ReadbackError as err:
        log.warning("nothing kept: %s", err)
