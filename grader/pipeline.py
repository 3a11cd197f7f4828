"""One submission through the data flow: static inspection -> sandboxed execution -> clean evaluation -> facts.

Modes: `static` (no student code runs), `evaluate` (the submission is an exported
model: no student code runs), `execute` (run the notebook in the sandbox, then evaluate).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Optional

from grader.data.fetch import ensure_mnist
from grader.data.locate import load_mnist
from grader.evaluate.job import Evaluation, evaluate_model, score_in_sandbox_predictions
from grader.execute.job import Execution, Limits, execute_notebook
from grader.execute.staging import staged_root
from grader.errors import GraderError
from grader.facts import EvalFacts, Facts, TrainFacts, VerdictFacts
from grader.inspect.static import inspect_submission

Mode = Literal["static", "evaluate", "execute"]
MODEL_SUFFIXES = (".pt2",)
# The course's Normalize((0.1307,), (0.3081,)) after ToTensor(): what an exported model without notes expects.
COURSE_PREPROCESS = {"kind": "affine", "scale": 1 / 0.3081, "shift": -0.1307 / 0.3081,
                     "source": "assumed for an exported model: ToTensor + Normalize((0.1307,), (0.3081,))"}


@dataclass(frozen=True)
class Options:
    mode: Mode = "execute"
    data: Optional[str] = None
    variable: str = "model"
    limits: Limits = field(default_factory=Limits)
    dry_run: bool = False
    sandbox: bool = True
    gpu: Optional[bool] = None
    gpu_index: Optional[int] = None
    keep: Optional[Path] = None  # copy the executed notebook and the exported model here


Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def grade_facts(path: Path, options: Options, progress: Progress = _quiet, *, model_file: Optional[Path] = None) -> Facts:
    """Every fact the stages can establish about one submission. Raises GraderError only for unusable input.

    `model_file`: an exported model handed in with the notebook; in `evaluate` mode it is what gets measured.
    """
    path = Path(path)
    if path.suffix.lower() in MODEL_SUFFIXES:
        return _evaluate_only(path, options, progress)
    if not path.is_file():
        raise GraderError("no such file", where=str(path), fix="give the path of a .ipynb, .py or .pt2 submission")
    progress("inspecting")
    try:
        report = inspect_submission(path)
    except GraderError as err:  # a broken notebook is a verdict for that student, not an error of the run
        return Facts(verdict=VerdictFacts(kind="invalid_notebook", message=err.render()))
    facts = Facts(notebook=report.notebook_facts, claims=report.claims)
    if options.mode == "static":
        return facts
    if options.mode == "evaluate":
        return _evaluate_with_notebook(facts, report.notebook, model_file, options, progress)
    data = ensure_mnist(options.data)
    staged = staged_root(data)
    with tempfile.TemporaryDirectory(prefix="mnist-grader-") as tmp:
        jobdir = Path(tmp)
        progress("running the notebook" + (" (dry run)" if options.dry_run else ""))
        execution = execute_notebook(report.notebook, jobdir=jobdir, staged=staged, mnist_roots=report.mnist_roots,
                                     variable=options.variable, limits=options.limits, dry_run=options.dry_run,
                                     sandbox=options.sandbox, gpu=options.gpu, gpu_index=options.gpu_index)
        facts = facts.model_copy(update={"train": execution.train, "verdict": execution.verdict})
        if execution.verdict.kind == "ok":
            progress("reading the model" if options.dry_run else "measuring the model")
            evaluation = _evaluate_execution(execution, staged, data, jobdir, options)
            facts = _with_evaluation(facts, evaluation, execution)
        if options.dry_run:  # nothing was trained: accuracy and training counters would be misleading
            facts = facts.model_copy(update={"eval": EvalFacts(), "train": TrainFacts(), "claims": report.claims})
        if options.keep:
            _keep(execution.out_dir, options.keep)
    return facts


def _evaluate_execution(execution: Execution, staged: Path, data: Path, jobdir: Path, options: Options) -> Evaluation:
    harness = execution.harness or {}
    export = harness.get("export") or {}
    labels = load_mnist(data, "test").labels
    if export.get("path") == "in-sandbox":
        return score_in_sandbox_predictions(execution.out_dir / "predictions.npy", labels)
    preprocess = harness.get("preprocess") or COURSE_PREPROCESS
    inputs = preprocess.get("inputs_file")
    return evaluate_model(execution.out_dir / export["file"], export["path"], preprocess=preprocess, staged=staged,
                          labels=labels, jobdir=jobdir, static_batch=export.get("batch"),
                          inputs_file=execution.out_dir / inputs if inputs else None, sandbox=options.sandbox,
                          gpu=options.gpu)


def _with_evaluation(facts: Facts, evaluation: Evaluation, execution: Optional[Execution]) -> Facts:
    update: dict = {"eval": evaluation.eval}
    if evaluation.model is not None:
        update["model"] = evaluation.model
    elif execution and (execution.harness or {}).get("params"):
        params = execution.harness["params"]
        update["model"] = facts.model.model_copy(update={"params": facts.model.params.model_copy(update=params)})
    if evaluation.error:
        update["verdict"] = facts.verdict.model_copy(update={"kind": "bad_model", "message": evaluation.error})
    return _merge_claims(facts.model_copy(update=update))


def _evaluate_only(path: Path, options: Options, progress: Progress) -> Facts:
    """An exported model handed in directly: no student code runs at all."""
    data = ensure_mnist(options.data)
    staged = staged_root(data)
    with tempfile.TemporaryDirectory(prefix="mnist-grader-") as tmp:
        progress("measuring the model")
        evaluation = evaluate_model(path.resolve(), "export", preprocess=COURSE_PREPROCESS, staged=staged,
                                    labels=load_mnist(data, "test").labels, jobdir=Path(tmp),
                                    sandbox=options.sandbox, gpu=options.gpu)
    facts = _with_evaluation(Facts(), evaluation, None)
    if facts.verdict.kind is None:
        facts = facts.model_copy(update={"verdict": VerdictFacts(kind="ok", message="the exported model was measured")})
    return facts


def _saved_errors(notebook) -> list[int]:
    """Cells whose saved outputs hold an error: the run that produced them failed there."""
    return [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"
            and any(out.get("output_type") == "error" for out in cell.get("outputs", []))]


def _evaluate_with_notebook(facts: Facts, notebook, model_file: Optional[Path], options: Options,
                            progress: Progress) -> Facts:
    """Evaluate mode: the notebook is read, not run; the exported model beside it is measured."""
    failed = _saved_errors(notebook)
    if model_file is None:
        return facts.model_copy(update={"verdict": VerdictFacts(
            kind="no_model", failed_cells=failed,
            message="evaluate mode measures an exported model (model.pt2) handed in beside the notebook, "
                    "and there is none; grade in execute mode to run the notebook instead")})
    measured = _evaluate_only(model_file, options, progress)
    verdict = measured.verdict.model_copy(update={"failed_cells": failed, "cell": failed[0] if failed else None})
    if failed and verdict.kind == "ok":
        verdict = verdict.model_copy(update={"message": verdict.message + f"; the notebook's saved outputs show "
                                             f"errors in cells {failed}"})
    return _merge_claims(measured.model_copy(update={"notebook": facts.notebook, "claims": facts.claims,
                                                     "verdict": verdict}))


def _merge_claims(facts: Facts) -> Facts:
    claims = facts.claims
    if claims.accuracy is not None and facts.eval.accuracy is not None:
        return facts.model_copy(update={"claims": claims.model_copy(
            update={"accuracy_gap": round(claims.accuracy - facts.eval.accuracy, 4)})})
    return facts


def _keep(out_dir: Path, keep: Path) -> None:
    keep.mkdir(parents=True, exist_ok=True)
    for name in ("executed.ipynb", "model.pt2", "model.ts"):
        if (out_dir / name).exists():
            shutil.copyfile(out_dir / name, keep / name)
