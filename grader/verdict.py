"""How grading one submission ended, in one word and one sentence: the only place a verdict is decided.

Pure: it reads what the stages reported (`Outcome`) and nothing else.
Precedence: the notebook could not be read > no notebook could be picked from the hand-in > the grader itself
failed (the machine: a sandbox that never started, a cgroup it could not make, a grader
error; `grader_failed`, never the student's grade) > a
limit the sandbox enforced (memory, disk, time, output) > the harness could
not run > no model > a model that cannot be graded > a model nothing could
export > the evaluation failed > a graph that looks answers up > ok. Cells
that failed while a model was still captured and measured do not fail the run:
the message names them, and `verdict.cell` points at the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from grader.data.transforms import SHOWN, describe
from grader.execute.cell_error import cell_error
from grader.execute.hints import hint_for
from grader.execute.job import Execution
from grader.execute.missing_imports import explain, failed_imports, missing_module
from grader.execute.records import CellRecord
from grader.execute.trained import shown
from grader.facts import CellErrorFacts, VerdictFacts
from grader.formatting import cells
from grader.sandbox.failure import HostFailure, sandbox_failure
from grader.settings import RunLimits, show_size


@dataclass(frozen=True)
class Outcome:
    """What the stages of one submission reported; each field is None when that stage did not run."""

    unreadable: Optional[str] = None  # the file is not a notebook we can read: why
    nothing_to_grade: Optional[str] = None  # no file of the hand-in was picked (none, or several notebooks): why
    grader_failure: Optional[HostFailure] = None  # the grader (the machine, or a bug) failed on this submission
    grader_traceback: Optional[str] = None
    execution: Optional[Execution] = None  # execute mode: the sandboxed run
    limits: RunLimits = RunLimits()
    no_model_file: bool = False  # evaluate mode, and no exported model came with the notebook
    saved_failed_cells: Optional[list[int]] = None  # evaluate mode: cells whose saved outputs hold an error
    evaluation_error: Optional[str] = None  # the clean evaluation could not measure the model: why
    evaluated: bool = False  # the clean evaluation measured the model
    lookup: Optional[str] = None  # the exported graph looks answers up (model.ops.unexpected): what it found
    dry_run: bool = False  # loaders gave one pass of a few batches, then nothing: what follows from that is excused
    handed_in: tuple[str, ...] = ()  # the files staged with the notebook (paths relative to the hand-in's root)
    notebook_dir: str = ""  # the notebook's folder relative to that root ("" at the root)


def decide(outcome: Outcome) -> VerdictFacts:
    if outcome.unreadable is not None:
        return VerdictFacts(kind="invalid_notebook", message=outcome.unreadable)
    if outcome.nothing_to_grade is not None:
        return VerdictFacts(kind="nothing_to_grade", message=outcome.nothing_to_grade)
    if outcome.grader_failure is not None:
        return _grader_failed(outcome.grader_failure, outcome.grader_traceback)
    if outcome.execution is not None:
        verdict = _execution(outcome.execution, outcome)
    elif outcome.no_model_file:
        failed = outcome.saved_failed_cells
        return VerdictFacts(kind="no_model", failed_cells=failed, cell=failed[0] if failed else None,
                            message="evaluate mode measures an exported model (model.pt2) handed in beside the "
                                    "notebook, and there is none; grade in execute mode to run the notebook instead")
    else:
        failed = outcome.saved_failed_cells
        message = "the exported model was measured"
        if failed:
            message += f"; the notebook's saved outputs show errors in {cells(failed)}"
        verdict = VerdictFacts(kind="ok", message=message, failed_cells=failed, cell=failed[0] if failed else None)
    if verdict.kind == "ok" and outcome.evaluation_error is not None:
        return verdict.model_copy(update={"kind": "bad_model", "message": outcome.evaluation_error})
    if verdict.kind == "ok" and outcome.lookup is not None:
        return verdict.model_copy(update={"kind": "lookup", "message": outcome.lookup})
    return verdict


def _grader_failed(failure: HostFailure, tail: Optional[str] = None) -> VerdictFacts:
    """The machine's failure: the submission was not graded (scores nothing, never cached, blank in the LMS)."""
    return VerdictFacts(kind="grader_failed", message=failure.message, output_tail=tail)


def _first_failed(cells: list[CellRecord]) -> Optional[CellRecord]:
    return next((c for c in cells if c.status in ("error", "timeout")), None)


def _describe(cell: CellRecord) -> str:
    text = f"code cell {cell.number} failed: {cell.error}"
    hint = hint_for(cell.error or "")
    return f"{text}. {hint}" if hint else text


# What code does when a data loader yields nothing (a dry run's loader after its one full pass): `next(iter(loader))`
# stops, `100 * correct / total` divides by zero, `losses[-1]` indexes an empty list, max() of nothing; later cells
# then miss its variables.
_EMPTY_LOADER_ERRORS = ("StopIteration", "ZeroDivisionError", "IndexError: list index out of range",
                        "ValueError: max() arg is an empty sequence", "ValueError: min() arg is an empty sequence",
                        "RuntimeError: stack expects a non-empty TensorList")


def _dry_run_failures(cells: list[CellRecord]) -> list[CellRecord]:
    """Cells that failed only because a dry run's loaders were empty after their one pass (and NameErrors that follow
    from those)."""
    caused, seen = [], False
    for cell in cells:
        if cell.status != "error" or not cell.error:
            continue
        if cell.error.startswith(_EMPTY_LOADER_ERRORS) or (seen and cell.error.startswith("NameError")):
            caused.append(cell)
            seen = True
    return caused


def _not_exportable(reasons: list[str]) -> str:
    """Why no accuracy: the model could only run in the student's own process, which never scores."""
    why = "; ".join(reasons) or "no reason recorded"
    return ("torch.export could not capture the model, so the grader cannot measure it apart "
            f"from the notebook's code and gives no accuracy credit ({why}). Keep `forward` to torch operations "
            "on tensors (no numpy, `.item()`, Python `if` on tensor values, or checks for tracing); then "
            "`torch.export.export(model, (torch.zeros(2, 1, 28, 28),))` must succeed in the notebook")


def _execution(execution: Execution, outcome: Outcome) -> VerdictFacts:
    limits, dry_run = outcome.limits, outcome.dry_run
    run, harness, result = execution.run, execution.harness, execution.sandbox
    records = run.cells if run else []
    emptied = harness.counters.dry_passes_emptied if harness else 0  # no empty pass: every failure is the notebook's
    excused = _dry_run_failures(records) if dry_run and emptied else []
    records = [c for c in records if c not in excused]
    failed = _first_failed(records)
    cell_index = failed.number if failed else None
    tail = execution.output_tail[-2000:] or None
    failed_cells = [c.number for c in records if c.status in ("error", "timeout")] if run else None

    error = cell_error(failed.number, failed.error, failed.traceback) if failed else CellErrorFacts()

    def verdict(kind: str, message: str, cell: Optional[int] = cell_index) -> VerdictFacts:
        return VerdictFacts(kind=kind, message=message, cell=cell, failed_cells=failed_cells, output_tail=tail,
                            error=error if cell == cell_index else CellErrorFacts())

    failure = sandbox_failure(result, record_written=run is not None or harness is not None
                              or execution.malformed is not None)
    if failure is not None:
        return _grader_failed(failure, tail)
    in_cell = f" (in code cell {cell_index})" if cell_index is not None else ""
    running = next((c.number for c in records if c.status == "not_run"), None)
    if result.memory_exceeded:
        return verdict("memory", f"the notebook used more than {limits.memory_bytes / 2**30:.1f} GiB of memory "
                       f"and was stopped{in_cell}")
    if result.disk_exceeded:
        return verdict("disk", f"the notebook filled its disk quota ({show_size(limits.disk_bytes)} or "
                       f"{limits.disk_files:,} files, folders and links in its working folder) and was stopped"
                       + (f"; code cell {running} was running" if running is not None else ""), running)
    if result.timed_out:
        return verdict("timeout", f"the notebook ran longer than {limits.wall_seconds:g} s and was stopped"
                       + (f"; code cell {running} was running" if running is not None else ""), running)
    timeout_cell = next((c for c in records if c.status == "timeout"), None)
    if timeout_cell:
        return verdict("timeout", f"code cell {timeout_cell.number}: {timeout_cell.error}", timeout_cell.number)
    if result.output_truncated or (run is not None and run.output_limit_hit):
        return verdict("output_limit", "the notebook printed more output than the grader keeps, and was stopped")
    if run is None:
        if execution.malformed:
            return verdict("crash",
                           f"the notebook's runner left a record the grader cannot read ({execution.malformed})")
        return verdict("crash", "the notebook's runner was killed before it could report "
                       "(a cell may have killed its parent process or the whole process group)")
    if run.kernel_died:
        return verdict("crash", f"the kernel died ({run.kernel_died})" + (f" in code cell {cell_index}" if cell_index
                                                                           is not None else ""))
    if harness is None or harness.model_error:
        why = ((harness.model_error if harness else None) or execution.malformed or run.harness_error
               or "no report from the harness")
        return verdict("crash", f"the grader could not read the model after the last cell: {why}")
    if not harness.model_variable:
        if failed:
            if missing_module(failed.error or ""):  # every failed import is named: a Colab one first hides none
                imports = failed_imports(records, handed_in=outcome.handed_in, notebook_dir=outcome.notebook_dir,
                                         pip_asked=[p.package for p in harness.pip_asked])
                return verdict("missing_module", explain(imports, notebook_dir=outcome.notebook_dir)
                               + "; no model could be captured")
            return verdict("crash", _describe(failed) + "; no model could be captured")
        return verdict("no_model", harness.model_found or "no model found")
    if harness.bad_model:
        return verdict("bad_model", harness.bad_model)
    if harness.export is not None and harness.export.path == "none":
        return verdict("not_exportable", _not_exportable(harness.export.reasons))
    notes = [_describe(c) for c in records if c.status == "error"]
    message = "the notebook ran and its model was captured"
    if notes:
        message += "; some cells failed and grading went on: " + " | ".join(notes[:3])
    if excused:
        message += (f"; {cells([c.number for c in excused])} failed only because a dry run's data "
                    "loaders yield nothing after their first full pass (not counted against the notebook)")
    if len(harness.trained_models) > 1:  # which one counts is a choice: the report says it
        trained = ", ".join(shown(t.variable) for t in harness.trained_models)
        message += (f"; the notebook trained several models ({trained}): graded {shown(harness.model_variable)}, "
                    f"because {harness.model_found}")
    prep = harness.preprocess
    if prep is not None and prep.kind == "other":  # the grader never measures on inputs student code made
        message += (f"; the test transform of the {prep.source} is {prep.reason or 'not a per-pixel affine map'}, "
                    "which the grader does not replay: it measured the model on its own inputs, ToTensor + "
                    f"Normalize((0.1307,), (0.3081,)). Give the test set only transforms from {SHOWN}")
    elif prep is not None and prep.kind == "transforms":
        message += (f"; the grader made the test inputs from the raw test images with the test transform of the "
                    f"{prep.source}, rebuilt from its classes and arguments: {describe(prep.steps or [])}")
    return verdict("ok", message)
